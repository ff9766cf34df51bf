"""Echo-state network: a fixed reservoir of the requested spectral radius, the leaky update, and
the two readouts (gradient, closed-form ridge through the runner)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnbench.plugins.echo_state import MAX_RESERVOIR, EchoState, EchoStateOptions
from rnnbench.training.config import resolve
from rnnbench.store import ResultStore
from rnnbench.core.contracts import SequenceBatch
from rnnbench.core.errors import BenchmarkError
from rnnbench.training.model import build_model, count_parameters, hidden_size_for_budget
from rnnbench.core.registry import get_task
from rnnbench.training.runner import prepare, run


def _encoder(hidden: int = 50, inputs: int = 2, seed: int = 0, **options):
    torch.manual_seed(seed)
    return EchoState().build(inputs, hidden, EchoStateOptions(**options))


def _batch(items: int = 4, steps: int = 6, features: int = 2) -> SequenceBatch:
    values = torch.randn(items, steps, features, generator=torch.Generator().manual_seed(3))
    return SequenceBatch(values, torch.full((items,), steps))


@pytest.mark.parametrize("radius", [0.5, 0.9, 1.3])
def test_reservoir_has_the_requested_spectral_radius(radius: float) -> None:
    reservoir = _encoder(hidden=80, spectral_radius=radius).reservoir
    measured = torch.linalg.eigvals(reservoir.double()).abs().max().item()
    assert measured == pytest.approx(radius, rel=1e-4)


def test_reservoir_is_sparse_at_the_requested_density() -> None:
    reservoir = _encoder(hidden=200, density=0.05).reservoir
    assert (reservoir != 0).float().mean().item() == pytest.approx(0.05, abs=0.01)


def test_reservoir_gets_no_gradient_and_only_the_readout_learns() -> None:
    encoder = _encoder()
    assert list(encoder.parameters()) == []
    head = nn.Linear(encoder.output_size, 1)
    before = {name: buffer.clone() for name, buffer in encoder.named_buffers()}
    optimizer = torch.optim.SGD([*encoder.parameters(), *head.parameters()], lr=0.1)
    batch = _batch()
    batch.values.requires_grad_(True)
    for _ in range(3):
        loss = head(encoder(batch).final[:, 0]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, buffer in encoder.named_buffers():
        assert not buffer.requires_grad and buffer.grad is None, name
        assert torch.equal(buffer, before[name]), f"{name} changed in training"
    assert head.weight.grad.abs().sum() > 0
    assert batch.values.grad.abs().sum() > 0  # the gradient still flows through the reservoir


def test_leaky_update_follows_the_equations() -> None:
    leak = 0.3
    encoder = _encoder(hidden=10, leak_rate=leak)
    batch = _batch(items=2, steps=3)
    state = torch.zeros(2, 10)
    expected = []
    for step in range(3):
        candidate = torch.tanh(batch.values[:, step] @ encoder.input_weights.t() + encoder.input_bias
                               + state @ encoder.reservoir.t())
        state = (1 - leak) * state + leak * candidate
        expected.append(state)
    with torch.no_grad():
        out = encoder(batch)
    torch.testing.assert_close(out.outputs, torch.stack(expected, dim=1))
    torch.testing.assert_close(out.state, expected[-1])


def test_ridge_readout_recovers_a_linear_map() -> None:
    encoder = _encoder(ridge=1e-9)
    weight, bias = torch.randn(2, 7), torch.randn(2)
    features = torch.randn(300, 7, generator=torch.Generator().manual_seed(0))
    targets = features @ weight.t() + bias
    readout = nn.Linear(7, 2)
    encoder.fit_readout(((features[i:i + 64], targets[i:i + 64]) for i in range(0, 300, 64)), readout)
    torch.testing.assert_close(readout.weight.data, weight, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(readout.bias.data, bias, atol=1e-4, rtol=1e-4)


def test_ridge_penalty_shrinks_the_weights_but_not_the_bias() -> None:
    features = torch.randn(200, 5, generator=torch.Generator().manual_seed(0))
    targets = features.sum(dim=1, keepdim=True) + 3.0
    norms = []
    for ridge in (1e-9, 10.0):
        readout = nn.Linear(5, 1)
        _encoder(ridge=ridge).fit_readout([(features, targets)], readout)
        norms.append((readout.weight.norm().item(), readout.bias.item()))
    assert norms[1][0] < 0.2 * norms[0][0]
    assert norms[1][1] == pytest.approx(3.0, abs=0.3)


def test_ridge_readout_needs_items() -> None:
    with pytest.raises(BenchmarkError, match="no training items"):
        _encoder().fit_readout([], nn.Linear(50, 1))


def test_closed_form_run_through_the_runner(tmp_path) -> None:
    """optim.optimizer=ridge: one pass, no gradient step, and a readout far better than chance."""
    settings = {"optim.optimizer": "ridge", "arch.hidden_size": "100", "task.length": "10",
                "task.train_size": "1000", "task.eval_size": "200"}
    result = run("esn", "adding", settings, store=tmp_path / "runs.sqlite", progress=False)
    assert result.status == "completed"
    assert result.metrics["test/mse"] < 0.12  # predicting the mean scores 1/6
    assert result.items_per_second > 0
    # the fixed reservoir and input weights are counted apart from the trained readout (101)
    (row,) = ResultStore(tmp_path / "runs.sqlite").runs_frame().itertuples()
    encoder = _encoder()
    assert row.parameters == 101 and encoder.fixed_weights()
    assert row.environment["fixed_parameters"] > 100 * 100 * 0.05   # a sparse 100-unit reservoir and more


@pytest.mark.parametrize("architecture, task, message", [
    ("lstm", "adding", "closed-form readout"),
    ("esn", "copy", "squared-error readout"),
])
def test_ridge_is_refused_where_it_does_not_apply(architecture: str, task: str, message: str) -> None:
    with pytest.raises(BenchmarkError, match=message):
        prepare(architecture, task, {"optim.optimizer": "ridge"})


def test_parameter_budget_counts_only_the_readout() -> None:
    task_cls = get_task("adding")
    config = resolve(EchoState, task_cls, {"arch.params": "2001"})
    hidden = hidden_size_for_budget(EchoState(), task_cls(config.task_options), config, 2001)
    assert hidden == 2000
    model = build_model(EchoState(), task_cls(config.task_options), config, 20)
    assert count_parameters(model) == 21


def test_oversized_or_bad_reservoirs_raise() -> None:
    with pytest.raises(BenchmarkError, match="too large"):
        _encoder(hidden=MAX_RESERVOIR + 1)
    with pytest.raises(BenchmarkError, match="leak_rate"):
        _encoder(leak_rate=0.0)
    with pytest.raises(BenchmarkError, match="spectral_radius"):
        _encoder(spectral_radius=-1.0)
