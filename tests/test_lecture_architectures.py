"""The lectures' three recurrences: Jordan's output feedback, leaky-integrator units and skip
connections through time. Each against a per-step reference loop written from its equations, the
carried state, the option checks, and (slow) the effect each was designed for."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from helpers import QUICK
from rnnbench.training.config import resolve
from rnnbench.core.contracts import SequenceBatch
from rnnbench.core.errors import BenchmarkError
from rnnbench.training.model import build_model, count_parameters, hidden_size_for_budget
from rnnbench.plugins.jordan import Jordan, JordanOptions
from rnnbench.plugins.leaky_rnn import LEARNED_START_CAP, LeakyRNN, LeakyRNNOptions, leak_rate_spread
from rnnbench.plugins.skip_rnn import SkipRNN, SkipRNNOptions
from rnnbench.core.registry import get_architecture, get_task
from rnnbench.tasks.probes import make_adding

FEATURES, HIDDEN = 3, 5


def _build(architecture, options, hidden: int = HIDDEN, features: int = FEATURES, seed: int = 0):
    torch.manual_seed(seed)
    return architecture().build(features, hidden, options).eval()


def _batch(lengths: list[int], steps: int | None = None, seed: int = 1, padding: float = 0.0,
           features: int = FEATURES) -> SequenceBatch:
    steps = steps or max(lengths)
    values = torch.randn(len(lengths), steps, features, generator=torch.Generator().manual_seed(seed))
    lengths_tensor = torch.tensor(lengths)
    values[torch.arange(steps).unsqueeze(0) >= lengths_tensor.unsqueeze(1)] = padding
    return SequenceBatch(values, lengths_tensor)


# --------------------------------------------------------------------------- reference loops


def _jordan_reference(encoder, x: torch.Tensor, decay: float, s: torch.Tensor | None = None):
    """h_t = tanh(W_x x_t + W_y s_{t-1} + b), y_t = W_o h_t + b_o, s_t = mu s_{t-1} + y_t, one
    item (T, I) at a time, weight by weight."""
    W_x, b = encoder.input_projection.weight, encoder.input_projection.bias
    W_y = encoder.feedback.weight
    W_o, b_o = encoder.output_projection.weight, encoder.output_projection.bias
    s = torch.zeros(W_y.shape[0]) if s is None else s
    ys, states = [], []
    for x_t in x:
        h = torch.tanh(W_x @ x_t + W_y @ s + b)
        y = W_o @ h + b_o
        s = decay * s + y
        ys.append(y), states.append(s)
    return torch.stack(ys), states


def _leaky_reference(encoder, x: torch.Tensor, rates: torch.Tensor, h: torch.Tensor | None = None):
    """h_t = (1 - a) h_{t-1} + a tanh(W_x x_t + W_h h_{t-1} + b), unit by unit."""
    W_x, b = encoder.input_projection.weight, encoder.input_projection.bias
    W_h = encoder.recurrent.weight
    h = torch.zeros(W_h.shape[0]) if h is None else h
    out = []
    for x_t in x:
        candidate = torch.tanh(W_x @ x_t + W_h @ h + b)
        h = torch.stack([(1 - rates[i]) * h[i] + rates[i] * candidate[i] for i in range(len(h))])
        out.append(h)
    return torch.stack(out)


def _skip_reference(encoder, x: torch.Tensor, delays: tuple[int, ...], before: list | None = None):
    """h_t = tanh(W_x x_t + sum_d W_d h_{t-d} + b), h_t = 0 for t < 0 (or `before`, oldest first)."""
    W_x, b = encoder.input_projection.weight, encoder.input_projection.bias
    H = W_x.shape[0]
    W = {d: encoder.recurrent.weight[:, k * H:(k + 1) * H] for k, d in enumerate(delays)}
    span = max(delays)
    history = list(before) if before is not None else [torch.zeros(H)] * span
    for x_t in x:
        total = W_x @ x_t + b
        for d in delays:
            total = total + W[d] @ history[-d]
        history.append(torch.tanh(total))
    return torch.stack(history[span:]), history


# --------------------------------------------------------------------------- the equations


@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_jordan_follows_its_equations(decay: float) -> None:
    encoder = _build(Jordan, JordanOptions(state_decay=decay))
    batch = _batch([6, 4], steps=6)
    with torch.no_grad():
        out = encoder(batch)
        for item, length in enumerate(batch.lengths.tolist()):
            expected, states = _jordan_reference(encoder, batch.values[item, :length], decay)
            torch.testing.assert_close(out.outputs[item, :length], expected)
            torch.testing.assert_close(out.final[item, 0], expected[-1])
            torch.testing.assert_close(out.state[item], states[-1])
            assert (out.outputs[item, length:] == 0).all()
    if decay == 0.0:
        torch.testing.assert_close(out.state, out.final[:, 0])   # the state carried is y itself


def test_jordan_reaches_the_past_only_through_its_output_feedback() -> None:
    """There is no hidden-to-hidden matrix: with the output feedback W_y at zero, the output at
    step 4 depends on step 4 alone; with W_y it depends on step 0 too."""
    reached = {}
    for feedback in (True, False):
        encoder = _build(Jordan, JordanOptions())
        if not feedback:
            with torch.no_grad():
                encoder.feedback.weight.zero_()
        values = torch.randn(1, 5, FEATURES, requires_grad=True)
        encoder(SequenceBatch(values, torch.tensor([5]))).outputs[0, 4].sum().backward()
        reached[feedback] = (values.grad[0].abs().sum(dim=1) > 0).tolist()
    assert reached[False] == [False, False, False, False, True]
    assert all(reached[True])


@pytest.mark.parametrize("mode", ["learned", "fixed"])
def test_leaky_rnn_follows_its_equations(mode: str) -> None:
    encoder = _build(LeakyRNN, LeakyRNNOptions(leak_rates=mode, min_leak_rate=0.1))
    batch = _batch([7, 3], steps=7)
    with torch.no_grad():
        rates = encoder.leak_rates
        out = encoder(batch)
        for item, length in enumerate(batch.lengths.tolist()):
            expected = _leaky_reference(encoder, batch.values[item, :length], rates)
            torch.testing.assert_close(out.outputs[item, :length], expected)
            torch.testing.assert_close(out.final[item, 0], expected[-1])
            torch.testing.assert_close(out.state[item], expected[-1])
            assert (out.outputs[item, length:] == 0).all()


def test_leaky_rates_spread_geometrically_over_time_scales() -> None:
    fixed = _build(LeakyRNN, LeakyRNNOptions(leak_rates="fixed", min_leak_rate=0.01), hidden=5)
    torch.testing.assert_close(fixed.leak_rates, torch.tensor([1.0, 0.01 ** 0.25, 0.1, 0.01 ** 0.75, 0.01]))
    assert "fixed_rates" in dict(fixed.named_buffers())              # a buffer: never trained
    assert not any("leak" in name or "rates" in name for name, _ in fixed.named_parameters())
    learned = _build(LeakyRNN, LeakyRNNOptions(leak_rates="learned", min_leak_rate=0.01), hidden=5)
    expected = torch.tensor([min(r, LEARNED_START_CAP) for r in leak_rate_spread(5, 0.01)])
    torch.testing.assert_close(learned.leak_rates, expected)
    assert learned.leak_logit.requires_grad
    learned(_batch([4])).outputs.sum().backward()
    assert learned.leak_logit.grad.abs().min() > 0                   # every rate learns
    assert leak_rate_spread(1, 0.01) == [1.0]


def test_leaky_rnn_with_every_rate_one_is_the_elman_rnn() -> None:
    encoder = _build(LeakyRNN, LeakyRNNOptions(leak_rates="fixed", min_leak_rate=1.0))
    fused = nn.RNN(FEATURES, HIDDEN, batch_first=True)
    with torch.no_grad():
        fused.weight_ih_l0.copy_(encoder.input_projection.weight)
        fused.bias_ih_l0.copy_(encoder.input_projection.bias)
        fused.weight_hh_l0.copy_(encoder.recurrent.weight)
        fused.bias_hh_l0.zero_()
        batch = _batch([6, 6])
        torch.testing.assert_close(encoder(batch).outputs, fused(batch.values)[0])


@pytest.mark.parametrize("delays", ["1+4", "1+2+5", "1"])
def test_skip_rnn_follows_its_equations(delays: str) -> None:
    parsed = tuple(int(d) for d in delays.split("+"))
    encoder = _build(SkipRNN, SkipRNNOptions(delays=delays))
    batch = _batch([9, 6, 2], steps=9)
    with torch.no_grad():
        out = encoder(batch)
        assert out.state.shape == (3, max(parsed), HIDDEN)
        for item, length in enumerate(batch.lengths.tolist()):
            expected, history = _skip_reference(encoder, batch.values[item, :length], parsed)
            torch.testing.assert_close(out.outputs[item, :length], expected)
            torch.testing.assert_close(out.final[item, 0], expected[-1])
            # the last max(delays) states, oldest first (zeros before the first step)
            torch.testing.assert_close(out.state[item], torch.stack(history[-max(parsed):]))
            assert (out.outputs[item, length:] == 0).all()
        torch.testing.assert_close(encoder.delay_weight(parsed[-1]),
                                   encoder.recurrent.weight[:, -HIDDEN:])


def test_skip_rnn_with_delay_one_is_the_elman_rnn() -> None:
    encoder = _build(SkipRNN, SkipRNNOptions(delays="1"))
    fused = nn.RNN(FEATURES, HIDDEN, batch_first=True)
    with torch.no_grad():
        fused.weight_ih_l0.copy_(encoder.input_projection.weight)
        fused.bias_ih_l0.copy_(encoder.input_projection.bias)
        fused.weight_hh_l0.copy_(encoder.recurrent.weight)
        fused.bias_hh_l0.zero_()
        batch = _batch([8, 8])
        torch.testing.assert_close(encoder(batch).outputs, fused(batch.values)[0])


def test_skip_rnn_reaches_back_by_its_longest_delay_in_one_step() -> None:
    """With only W_4 (W_1 zeroed), step 8 depends on steps 0, 4 and 8 and on nothing between."""
    encoder = _build(SkipRNN, SkipRNNOptions(delays="1+4"))
    with torch.no_grad():
        encoder.recurrent.weight[:, :HIDDEN].zero_()
    values = torch.randn(1, 9, FEATURES, requires_grad=True)
    encoder(SequenceBatch(values, torch.tensor([9]))).outputs[0, 8].sum().backward()
    reached = values.grad[0].abs().sum(dim=1) > 0
    assert reached.tolist() == [t % 4 == 0 for t in range(9)]


# --------------------------------------------------------------------------- carried state and padding

CASES = [
    pytest.param(Jordan, JordanOptions(), id="jordan"),
    pytest.param(Jordan, JordanOptions(state_decay=0.7), id="jordan-decay"),
    pytest.param(LeakyRNN, LeakyRNNOptions(), id="leaky_rnn"),
    pytest.param(LeakyRNN, LeakyRNNOptions(leak_rates="fixed"), id="leaky_rnn-fixed"),
    pytest.param(SkipRNN, SkipRNNOptions(), id="skip_rnn"),
    pytest.param(SkipRNN, SkipRNNOptions(delays="1+3+7"), id="skip_rnn-1+3+7"),
]


@pytest.mark.parametrize("architecture, options", CASES)
def test_many_short_padded_chunks_with_the_state_carried_equal_the_whole(architecture, options) -> None:
    """Chunks shorter than the longest delay (the state must hold more than one chunk's states),
    padded with inf, mixed lengths, one chunk empty for one item (its state passes through);
    every chunk resumes from each item's last real step."""
    encoder = _build(architecture, options)
    lengths = [13, 9, 11]
    whole = _batch(lengths, seed=3)
    with torch.no_grad():
        reference = encoder(whole)
        cuts = [[0, 2, 3, 6, 8, 13], [0, 1, 4, 4, 7, 9], [0, 3, 4, 6, 9, 11]]   # item 1: an empty chunk
        state, pieces = None, [[] for _ in lengths]
        for part in range(5):
            spans = [(cut[part], cut[part + 1]) for cut in cuts]
            steps = max(end - start for start, end in spans)
            chunk = torch.full((3, steps, FEATURES), math.inf)
            for item, (start, end) in enumerate(spans):
                chunk[item, :end - start] = whole.values[item, start:end]
            sizes = torch.tensor([end - start for start, end in spans])
            out = encoder(SequenceBatch(chunk, sizes), state)
            assert torch.isfinite(out.outputs).all()
            for item, size in enumerate(sizes.tolist()):
                pieces[item].append(out.outputs[item, :size])
            state = out.state
    for item, length in enumerate(lengths):
        torch.testing.assert_close(torch.cat(pieces[item]), reference.outputs[item, :length])
        torch.testing.assert_close(out.final[item], reference.final[item])
    for mine, theirs in zip(torch.atleast_1d(state), torch.atleast_1d(reference.state)):
        torch.testing.assert_close(mine, theirs)


@pytest.mark.parametrize("architecture, options", CASES)
def test_padding_holding_nan_reaches_neither_outputs_nor_gradients(architecture, options) -> None:
    torch.manual_seed(0)
    encoder = architecture().build(FEATURES, HIDDEN, options)
    batch = _batch([6, 2], padding=math.nan)
    out = encoder(batch)
    assert torch.isfinite(out.outputs).all() and torch.isfinite(out.final).all()
    (out.outputs.sum() + out.final.sum()).backward()
    for name, parameter in encoder.named_parameters():
        assert torch.isfinite(parameter.grad).all(), name


@pytest.mark.parametrize("architecture, options", CASES)
def test_runs_under_bf16_autocast_with_the_state_carried(architecture, options) -> None:
    """trainer.precision=bf16-mixed: the recurrence keeps the dtype autocast gives its inputs."""
    torch.manual_seed(0)
    encoder = architecture().build(FEATURES, HIDDEN, options)
    batch = _batch([7, 4])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        first = encoder(batch)
        second = encoder(batch, first.state)
        second.outputs.float().sum().backward()
    assert torch.isfinite(second.outputs.float()).all()


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("architecture, setting, value, fix", [
    ("skip_rnn", "arch.delays", "1,4", "arch.delays=1+4"),
    ("skip_rnn", "arch.delays", "4", "arch.delays=1+4"),
    ("skip_rnn", "arch.delays", "4+1", "arch.delays=1+4"),
    ("skip_rnn", "arch.delays", "1+1", "arch.delays=1"),
    ("skip_rnn", "arch.delays", "0+1", "arch.delays=1+4"),
    ("skip_rnn", "arch.delays", "", "arch.delays=1+4"),
    ("skip_rnn", "arch.delays", "1+2000", "arch.delays=1+4"),
    ("skip_rnn", "arch.delays", "1+x", "arch.delays=1+4"),
    ("leaky_rnn", "arch.min_leak_rate", "0", "arch.min_leak_rate=0.01"),
    ("leaky_rnn", "arch.min_leak_rate", "1.5", "arch.min_leak_rate=0.01"),
    ("leaky_rnn", "arch.min_leak_rate", "nan", "arch.min_leak_rate"),
    ("leaky_rnn", "arch.leak_rates", "learnt", "learned"),
    ("jordan", "arch.state_decay", "1", "arch.state_decay=0"),
    ("jordan", "arch.state_decay", "-0.1", "arch.state_decay=0"),
])
def test_bad_options_are_refused_before_a_run_with_the_fix(architecture, setting, value, fix) -> None:
    with pytest.raises(BenchmarkError) as error:
        resolve(get_architecture(architecture), get_task("adding"), {setting: value})
    assert setting in str(error.value) and fix in str(error.value), str(error.value)


@pytest.mark.parametrize("architecture, options, fix", [
    (SkipRNN, SkipRNNOptions(delays="1,4"), "arch.delays=1+4"),
    (SkipRNN, SkipRNNOptions(delays="2+4"), "arch.delays=1+2+4"),
    (LeakyRNN, LeakyRNNOptions(min_leak_rate=0.0), "arch.min_leak_rate=0.01"),
    (LeakyRNN, LeakyRNNOptions(leak_rates="sometimes"), "arch.leak_rates=learned"),
    (Jordan, JordanOptions(state_decay=1.0), "arch.state_decay=0"),
])
def test_bad_options_given_to_build_directly_raise_with_the_fix(architecture, options, fix) -> None:
    with pytest.raises(BenchmarkError, match="arch\\.") as error:
        architecture().build(FEATURES, HIDDEN, options)
    assert fix in str(error.value)


def _at_budget(name: str, settings: dict, budget: int):
    """(architecture class, adding task, resolved config, hidden size meeting `budget`)."""
    architecture, task_cls = get_architecture(name), get_task("adding")
    config = resolve(architecture, task_cls, settings)
    task = task_cls(config.task_options)
    return architecture, task, config, hidden_size_for_budget(architecture(), task, config, budget)


@pytest.mark.parametrize("name, setting", [("jordan", {}), ("leaky_rnn", {"arch.leak_rates": "fixed"}),
                                           ("skip_rnn", {"arch.delays": "1+2+4+8"})])
def test_a_parameter_budget_is_met(name: str, setting: dict) -> None:
    architecture, task, config, hidden = _at_budget(name, setting, 20_000)
    parameters = count_parameters(build_model(architecture(), task, config, hidden))
    assert abs(parameters - 20_000) <= 1_000, (hidden, parameters)


@pytest.mark.parametrize("name, settings", [("jordan", {"arch.state_decay": "0.5"}),
                                            ("leaky_rnn", {"arch.min_leak_rate": "0.05"}),
                                            ("skip_rnn", {"arch.delays": "1+3"})])
def test_a_quick_run_through_the_runner_completes(tmp_path, name: str, settings: dict) -> None:
    from rnnbench.training.runner import run

    result = run(name, "copy", {**QUICK, **settings}, store=tmp_path / "r.sqlite", progress=False)
    assert math.isfinite(result.metrics["test/loss"])


# --------------------------------------------------------------------------- what each is for (slow)

# The probes leaderboard's budget: 50k trained parameters, 1,500 steps, the task's other defaults.
PROBE_BUDGET = {"trainer.max_steps": "1500", "trainer.val_every_steps": "250", "arch.params": "50k"}


def _probe(name: str, task: str, length: int, folder) -> float:
    from rnnbench.training.runner import run

    settings = {**PROBE_BUDGET, "task.length": str(length)}
    result = run(name, task, settings, store=folder / f"{name}.sqlite", progress=False)
    return result.metrics["test/accuracy" if task == "copy" else "test/mse"]


@pytest.mark.slow
def test_leaky_units_remember_further_than_the_elman_rnn(tmp_path) -> None:
    """Copy at T = 50 (Arjovsky et al. 2016; chance 1/8): leaky units with slow time scales carry
    the symbols across the delay where the Elman RNN of the same parameter count stays at chance.
    Calibrated on the probes sweep (seeds 0-2): leaky_rnn 0.264-0.292, rnn 0.117-0.126."""
    leaky, elman = _probe("leaky_rnn", "copy", 50, tmp_path), _probe("rnn", "copy", 50, tmp_path)
    assert elman < 0.14, elman
    assert leaky > 0.2, (leaky, elman)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="not at the probes budget: skip_rnn's adding MSE at T = 50 is "
                   "0.164 over 3 seeds (leaderboards/probes/), the Elman RNN's 0.161")
def test_skip_connections_reach_further_than_the_elman_rnn(tmp_path) -> None:
    """Adding at T = 50 (predicting 1 scores 1/6 = 0.167): a 4-step skip connection carries the
    first marked value across the 50 steps where the Elman RNN of the same parameter count stays
    at the baseline (0.157-0.161 over 3 seeds). The probes sweep says it does not at this budget
    (nor on copy: 0.128), so the claim is an expected failure until a budget shows it."""
    skip, elman = _probe("skip_rnn", "adding", 50, tmp_path), _probe("rnn", "adding", 50, tmp_path)
    assert elman > 0.14, elman
    assert skip < 0.5 * elman, (skip, elman)


def _gradient_reach(name: str, length: int, seed: int) -> float:
    """At initialisation, on adding inputs of `length` steps, a 50k-parameter encoder of `name`
    (hidden size matched to the budget): the mean norm of d(sum of h_T) / dx_t at t = T / 2,
    relative to the same at t = T - 1 (how much of the gradient reaches half-way back)."""
    architecture, _, config, hidden = _at_budget(name, {"task.length": str(length)}, 50_000)
    torch.manual_seed(seed)
    encoder = architecture().build(2, hidden, config.arch_options)
    inputs, _ = make_adding(16, length, torch.Generator().manual_seed(seed))
    inputs.requires_grad_(True)
    encoder(SequenceBatch(inputs, torch.full((16,), length))).final.sum().backward()
    reached = inputs.grad.norm(dim=2).mean(dim=0)
    return (reached[length // 2] / reached[-1]).item()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_skip_connections_carry_the_gradient_further_back_than_the_elman_rnn(seed: int) -> None:
    """Lin et al. 1996's argument for delays: a path k steps back crosses about k / max(D) squashing
    nonlinearities instead of k. On adding at T = 100, at the same 50k parameters, the gradient
    that reaches 50 steps back through skip_rnn (delays 1+4) is at least 1,000 times the Elman
    RNN's share (measured: 1e-5 to 4e-5 against 6e-13 to 1e-11). Whether training turns that into
    a better score is the expected failure above."""
    skip, elman = _gradient_reach("skip_rnn", 100, seed), _gradient_reach("rnn", 100, seed)
    assert skip > 1_000 * elman, (skip, elman)


def _train_jordan_on_adding(feedback: bool, steps: int = 2000, length: int = 10, hidden: int = 32) -> float:
    """Test MSE of a Jordan network (feedback W_y trained, or held at zero: a memoryless network of
    the same shape) after `steps` Adam steps on the adding problem at T = `length`."""
    torch.manual_seed(0)
    encoder = Jordan().build(2, hidden, JordanOptions())
    if not feedback:
        with torch.no_grad():
            encoder.feedback.weight.zero_()
        encoder.feedback.weight.requires_grad_(False)
    head = nn.Linear(hidden, 1)
    parameters = [p for p in (*encoder.parameters(), *head.parameters()) if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=3e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        inputs, targets = make_adding(64, length, generator)
        out = encoder(SequenceBatch(inputs, torch.full((64,), length)))
        loss = ((head(out.final[:, 0]).squeeze(-1) - targets) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
    inputs, targets = make_adding(1024, length, torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = encoder(SequenceBatch(inputs, torch.full((1024,), length)))
        return ((head(out.final[:, 0]).squeeze(-1) - targets) ** 2).mean().item()


@pytest.mark.slow
def test_jordan_network_remembers_through_its_output_feedback() -> None:
    """Adding at T = 10: the first marked value must reach the last step through y alone. With the
    feedback W_y the Jordan network learns it; the same network with W_y held at zero sees only
    the current step and stays near the memoryless optimum (about 0.15: it knows the second value
    only when it is marked at the last step). 2,000 steps: the feedback network sits on that
    plateau for the first 800 (0.137 there), then learns (0.042 at 1,200, 0.003 at 2,000)."""
    with_feedback, without = _train_jordan_on_adding(True), _train_jordan_on_adding(False)
    assert without > 0.12, without
    assert with_feedback < 0.04, with_feedback
