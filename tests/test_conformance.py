"""The conformance kit against deliberately broken encoders: each check must catch what it is
for, and say what it measured. (The kit over every registered architecture and its option variants
runs in tests/test_architectures.py.)"""

import importlib
import sys
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from helpers import QUICK
from rnnbench import cli
from rnnbench.conformance import common as conformance_common
from rnnbench.core import registry
from rnnbench.training import conformance_verdicts as verdicts
from rnnbench.conformance.kit import ConformanceError, check_architecture, conformance_checks
from rnnbench.core.contracts import Architecture, Capabilities, Encoder, EncoderOutput
from rnnbench.core.errors import BenchmarkError
from rnnbench.training.runner import run
from rnnbench.store import ResultStore


def _pack(inputs):
    return nn.utils.rnn.pack_padded_sequence(inputs.values, inputs.lengths.cpu(), batch_first=True, enforce_sorted=False)


class _Correct(Encoder):
    """A packed GRU that honours the contract; the broken encoders each break one thing."""

    bidirectional = False

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.rnn = nn.GRU(input_size, hidden_size, batch_first=True, bidirectional=self.bidirectional)
        self.output_size = hidden_size * (2 if self.bidirectional else 1)

    def forward(self, inputs, state=None):
        outputs, last = self.rnn(_pack(inputs), state)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True,
                                                      total_length=inputs.values.shape[1])
        return EncoderOutput(outputs, last.transpose(0, 1), last)


class _CorrectBidirectional(_Correct):
    """Outputs [forward; backward]; final[:, 0] after the last real step, final[:, 1] after the first."""

    bidirectional = True


class LeaksPadding(_Correct):
    """Runs the padded batch unpacked: padding steps update the state (final and state leak)."""

    def forward(self, inputs, state=None):
        outputs, last = self.rnn(inputs.values, state)
        return EncoderOutput(outputs, outputs[:, -1:], last)


class LeaksPaddingIntoOutputs(_Correct):
    """Non-causal: adds the sum over all steps, padding included, to every output; final is right."""

    def forward(self, inputs, state=None):
        result = super().forward(inputs, state)
        return result._replace(outputs=result.outputs + inputs.values.sum(dim=1, keepdim=True)[..., :1])


class LeaksPaddingIntoFinal(_Correct):
    """Outputs and state right, but final is the state after running over the padding too."""

    def forward(self, inputs, state=None):
        result = super().forward(inputs, state)
        _, over_padding = self.rnn(inputs.values, state)
        return result._replace(final=over_padding.transpose(0, 1))


class StateRunsOverPadding(_Correct):
    """Outputs and final right, but the returned state has run over the padding."""

    def forward(self, inputs, state=None):
        result = super().forward(inputs, state)
        _, over_padding = self.rnn(inputs.values, state)
        return result._replace(state=over_padding)


class WrongFinal(_Correct):
    """final is the output at the first step, not the last real one."""

    def forward(self, inputs, state=None):
        result = super().forward(inputs, state)
        return result._replace(final=result.outputs[:, :1])


class WrongBackwardFinal(_CorrectBidirectional):
    """final[:, 1] is the backward half at each item's last real step instead of its first."""

    def forward(self, inputs, state=None):
        result = super().forward(inputs, state)
        rows = torch.arange(inputs.values.shape[0])
        backward = result.outputs[rows, inputs.lengths - 1, self.rnn.hidden_size:]
        return result._replace(final=torch.stack([result.final[:, 0], backward], dim=1))


class LeaksBatch(_Correct):
    """Adds the batch mean to every item (as a careless normalisation would)."""

    def forward(self, inputs, state=None):
        result = super().forward(inputs, state)
        shift = result.outputs.mean(dim=0, keepdim=True)
        return result._replace(outputs=result.outputs + shift, final=result.final + shift[:, -1:])


class LeaksFuture(_Correct):
    """Adds the next step's output to every output (padding stays invariant: padded outputs are 0)."""

    def forward(self, inputs, state=None):
        result = super().forward(inputs, state)
        following = torch.cat([result.outputs[:, 1:], torch.zeros_like(result.outputs[:, :1])], dim=1)
        return result._replace(outputs=result.outputs + following)


class IgnoresState(_Correct):
    """Drops the state it is given."""

    def forward(self, inputs, state=None):
        return super().forward(inputs, None)


class WrongOutputSize(_Correct):
    """Says hidden_size but returns twice as wide outputs and final (a head would fail in a matmul)."""

    def forward(self, inputs, state=None):
        result = super().forward(inputs, state)
        return result._replace(outputs=torch.cat([result.outputs] * 2, dim=-1),
                               final=torch.cat([result.final] * 2, dim=-1))


class DetachesState(_Correct):
    """Detaches the state at every step (backpropagation truncated to one step): the values are
    right, but the gradient of the last step never reaches the first."""

    def forward(self, inputs, state=None):
        real = inputs.mask()
        h = state if state is not None else inputs.values.new_zeros(1, inputs.values.shape[0], self.output_size)
        outputs = []
        for t in range(inputs.values.shape[1]):
            out, new = self.rnn(inputs.values[:, t:t + 1], h.detach())
            h = torch.where(real[:, t].view(1, -1, 1), new, h)
            outputs.append(out * real[:, t, None, None])
        return EncoderOutput(torch.cat(outputs, dim=1), h.transpose(0, 1), h)


class Raises(_Correct):
    def forward(self, inputs, state=None):
        return nn.functional.linear(inputs.values, torch.zeros(3, 2))


def _architecture(encoder_class, causal=True, carries_state=True):
    bidirectional = encoder_class.bidirectional

    class Wrapped(Architecture):
        capabilities = Capabilities(causal=causal and not bidirectional, structures=("sequence",),
                                    state_layout="bidirectional" if bidirectional else "single",
                                    carries_state=carries_state and not bidirectional)
        name = encoder_class.__name__

        def build(self, input_size, hidden_size, options):
            return encoder_class(input_size, hidden_size)
    return Wrapped


def _run_check(architecture, check_name):
    [check] = [c for c in conformance_checks(architecture) if c.name == f"sequence:{check_name}"]
    check.run()


@pytest.mark.parametrize("correct", [_Correct, _CorrectBidirectional])
def test_a_correct_encoder_passes_everything(correct):
    check_architecture(_architecture(correct))
    check_architecture(_architecture(correct, causal=False, carries_state=False))


# (encoder, its declaration, the check check_architecture reports with what it says, other checks that catch it)
BROKEN = [
    (LeaksFuture, {}, "causality", "changing step 1 changes outputs before it", ()),
    (LeaksPadding, {}, "padding_invariance", "padding leaks into the final state", ("carried_state",)),
    (LeaksPaddingIntoOutputs, {"causal": False}, "padding_invariance", "padding leaks into the outputs", ()),
    (LeaksPaddingIntoFinal, {}, "padding_invariance", "padding leaks into the final state", ()),
    (StateRunsOverPadding, {}, "padding_invariance", "padding leaks into the returned state", ("carried_state",)),
    (WrongFinal, {"carries_state": False}, "final_is_last_step", "not the output at the last real step", ()),
    (WrongBackwardFinal, {}, "final_is_last_step", "backward half of the output at the first step", ()),
    (LeaksBatch, {}, "batch_invariance", "depend on the other items of its batch", ()),
    (IgnoresState, {}, "carried_state", "two halves with the state carried differ", ()),
    (DetachesState, {}, "gradient_reaches_first_step", "reaches the first step's input in none of 8 draws", ()),
]


@pytest.mark.parametrize("broken, declaration, reported, says, also", BROKEN, ids=[row[0].__name__ for row in BROKEN])
def test_broken_encoders_are_caught(broken, declaration, reported, says, also):
    architecture = _architecture(broken, **declaration)
    for check_name in (reported, *also):
        with pytest.raises(ConformanceError, match=f"^{broken.__name__} fails sequence:{check_name}: "):
            _run_check(architecture, check_name)
    with pytest.raises(ConformanceError, match=f"^{broken.__name__} fails sequence:{reported}: .*{says}"):
        check_architecture(architecture)


def test_a_carried_state_over_padded_chunks_is_checked_even_when_padding_invariance_is_not_run():
    with pytest.raises(ConformanceError, match="padded chunks.*second chunk's outputs differ"):
        _run_check(_architecture(StateRunsOverPadding), "carried_state")


def test_a_wrong_output_size_fails_every_check_with_a_message():
    """No check gets as far as a matmul on the wrong size: each says which shape it expected."""
    for check in conformance_checks(_architecture(WrongOutputSize)):
        with pytest.raises(ConformanceError, match=r"ha(s|ve) shape \(\d+, \d+, 12\), expected \(\d+, \d+, 6\)"):
            check.run()


def test_a_wrong_declared_output_size_is_caught():
    class Doubles(_architecture(_Correct)):
        def output_size(self, hidden_size):
            return 2 * hidden_size
    with pytest.raises(ConformanceError, match="encoder.output_size is 6, the architecture declares 12"):
        _run_check(Doubles, "shapes")


def test_an_encoder_that_raises_fails_with_its_error_named():
    with pytest.raises(ConformanceError, match="Raises fails sequence:shapes: the encoder raised RuntimeError"):
        check_architecture(_architecture(Raises))


# --------------------------------------------------------------------------- names


@registry.register_architecture("test-conformance-leaky")
class _RegisteredLeaky(Architecture):
    capabilities = Capabilities(causal=True, structures=("sequence",))

    @dataclass
    class Options:
        width: int = 1

    def build(self, input_size, hidden_size, options):
        return LeaksBatch(input_size, hidden_size)


def test_messages_name_the_architecture_by_its_registered_name_and_options():
    with pytest.raises(ConformanceError, match=r"^test-conformance-leaky fails sequence:batch_invariance"):
        check_architecture(_RegisteredLeaky)
    with pytest.raises(ConformanceError, match=r"^test-conformance-leaky fails"):
        check_architecture(_RegisteredLeaky())
    with pytest.raises(ConformanceError, match=r"^test-conformance-leaky\[width=3\] fails"):
        check_architecture(_RegisteredLeaky, _RegisteredLeaky.Options(width=3))


def test_an_unregistered_class_is_named_by_its_class_not_type():
    class Unnamed(Architecture):
        capabilities = Capabilities(causal=True, structures=("sequence",))

        def build(self, input_size, hidden_size, options):
            return LeaksBatch(input_size, hidden_size)
    with pytest.raises(ConformanceError, match=r"^test_an_unregistered_class_is_named_by_its_class_not_type"
                                               r"\.<locals>\.Unnamed \(unregistered\) fails"):
        check_architecture(Unnamed)


# --------------------------------------------------------------------------- gradient check: IndRNN


class IndRNNEncoder(Encoder):
    """IndRNN (Li et al. 2018), one layer: h_t = relu(W x_t + u * h_{t-1} + b), u elementwise, at the
    paper's initialisation: u ~ U(0, 1), W ~ N(0, 0.001), b = 0. Padding leaves h unchanged."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_weights = nn.Parameter(torch.randn(hidden_size, input_size) * 0.001)
        self.recurrent = nn.Parameter(torch.rand(hidden_size))
        self.bias = nn.Parameter(torch.zeros(hidden_size))
        self.output_size = hidden_size

    def forward(self, inputs, state=None):
        driven = nn.functional.linear(inputs.values, self.input_weights, self.bias)
        h = driven.new_zeros(driven.shape[0], driven.shape[2]) if state is None else state
        real = inputs.mask().unsqueeze(-1)
        outputs = []
        for t in range(driven.shape[1]):
            h = torch.where(real[:, t], torch.relu(driven[:, t] + self.recurrent * h), h)
            outputs.append(h)
        return EncoderOutput(torch.stack(outputs, dim=1) * real, h.unsqueeze(1), h)


class IndRNN(Architecture):
    capabilities = Capabilities(causal=True, structures=("sequence",))

    def build(self, input_size, hidden_size, options):
        return IndRNNEncoder(input_size, hidden_size)


def _gradient_check(seed):
    [check] = [c for c in conformance_checks(IndRNN, seed=seed) if c.name == "sequence:gradient_reaches_first_step"]
    return check


def test_a_correct_relu_recurrence_passes_the_whole_kit():
    check_architecture(IndRNN)


def test_a_correct_relu_recurrence_passes_the_gradient_check_for_100_seeds_in_a_row():
    for seed in range(100):
        _gradient_check(seed).run()


def test_one_draw_would_fail_the_relu_recurrence_for_some_seeds(monkeypatch):
    """Why there are several draws: dead ReLU units block the gradient in one draw now and then."""
    monkeypatch.setattr(conformance_common, "GRADIENT_DRAWS", 1)
    failures = []
    for seed in range(30):
        try:
            _gradient_check(seed).run()
        except ConformanceError as error:
            failures.append(str(error))
    assert failures
    assert "reaches the first step's input in none of 1 draws" in failures[0]
    assert "largest |gradient| at the first step's input 0, at the last step's input" in failures[0]


# --------------------------------------------------------------------------- verdicts: checked before results count

@registry.register_architecture("test-conformance-wide")
class _RegisteredWide(Architecture):
    """Returns outputs twice as wide as it declares: its head would fail in a matmul."""
    capabilities = Capabilities(causal=True, structures=("sequence",))

    def build(self, input_size, hidden_size, options):
        return WrongOutputSize(input_size, hidden_size)


def _settings(**extra):
    return [item for key, value in {**QUICK, **extra}.items() for item in ("--set", f"{key}={value}")]


def test_a_verdict_is_computed_once_and_kept_in_the_store(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    first = verdicts.verdict(registry.get_architecture("gru"), store=store)
    again = verdicts.verdict(registry.get_architecture("gru"), store=store)
    assert first.passed and first.message == "passed" and not first.cached
    assert again.cached and (again.architecture, again.source_hash) == ("gru", first.source_hash)
    failing = verdicts.verdict(_RegisteredLeaky, store=store)
    assert not failing.passed and failing.message.startswith("test-conformance-leaky fails sequence:batch_invariance")
    assert verdicts.verdict(_RegisteredLeaky, store=store).cached
    other = verdicts.verdict(_RegisteredLeaky, _RegisteredLeaky.Options(width=2), store=store)
    assert not other.cached and other.options_hash != failing.options_hash   # other options: checked again


def test_an_edited_plugin_or_a_new_version_is_checked_again(tmp_path, monkeypatch):
    plugin = tmp_path / "edited_plugin.py"
    source = '''
from rnnbench.core.contracts import Architecture, Capabilities
from test_conformance import _Correct

class Edited(Architecture):
    capabilities = Capabilities(causal=True, structures=("sequence",))
    def build(self, input_size, hidden_size, options):
        return _Correct(input_size, hidden_size)
'''
    plugin.write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "edited_plugin", raising=False)
    module = importlib.import_module("edited_plugin")
    store = ResultStore(tmp_path / "r.sqlite")
    assert not verdicts.verdict(module.Edited, store=store).cached
    assert verdicts.verdict(module.Edited, store=store).cached
    plugin.write_text(source + "\n# an edit\n")
    module = importlib.reload(module)
    assert not verdicts.verdict(module.Edited, store=store).cached
    monkeypatch.setattr(module.Edited, "version", 2)
    assert not verdicts.verdict(module.Edited, store=store).cached


def test_the_kit_leaves_the_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    verdicts.verdict(registry.get_architecture("lstm"))
    torch.testing.assert_close(torch.rand(3), expected)


def test_a_run_of_a_failing_architecture_is_refused_with_the_kits_message(tmp_path):
    path = tmp_path / "r.sqlite"
    with pytest.raises(BenchmarkError, match="conformance kit refuses it: test-conformance-leaky fails "
                                             "sequence:batch_invariance.*--no-check"):
        run("test-conformance-leaky", "adding", QUICK, store=path, progress=False, check=True)
    assert ResultStore(path).runs_frame().empty                      # nothing recorded as a run


def test_a_wrong_output_size_is_refused_with_the_kits_message_not_a_matmul_error(tmp_path):
    with pytest.raises(BenchmarkError, match=r"test-conformance-wide fails sequence:shapes: outputs have "
                                             r"shape \(3, 7, 12\), expected \(3, 7, 6\)"):
        run("test-conformance-wide", "adding", QUICK, store=tmp_path / "r.sqlite", progress=False, check=True)


def test_cli_run_refuses_a_failing_architecture_and_no_check_overrides_it(tmp_path, capsys):
    store = str(tmp_path / "r.sqlite")
    argv = ["run", "test-conformance-leaky", "adding", "--store", store, "--no-progress", *_settings()]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("rnnbench: error: the conformance kit refuses it: test-conformance-leaky fails "
                            "sequence:batch_invariance: the outputs of an item")
    assert ResultStore(store).runs_frame().empty
    assert cli.main([*argv, "--no-check"]) == 0
    [row] = ResultStore(store).runs_frame().itertuples()
    assert row.status == "completed" and row.environment["conformance"] == "skipped (--no-check)"


def test_cli_run_records_the_verdict_of_a_passing_architecture(tmp_path):
    store = str(tmp_path / "r.sqlite")
    assert cli.main(["run", "gru", "adding", "--store", store, "--no-progress", *_settings()]) == 0
    [row] = ResultStore(store).runs_frame().itertuples()
    assert row.environment["conformance"] == "passed"


def test_a_sweep_with_a_failing_architecture_is_refused_before_anything_runs(tmp_path, capsys):
    store = str(tmp_path / "r.sqlite")
    argv = ["sweep", "--architectures", "gru,test-conformance-leaky", "--tasks", "adding", "--store", store,
            "--no-progress", *_settings()]
    assert cli.main(argv) == 2
    assert "test-conformance-leaky fails sequence:batch_invariance" in capsys.readouterr().err
    assert ResultStore(store).runs_frame().empty
    cli.main([*argv, "--no-check"])   # the workers run both, and each run records that it was not checked
    runs = ResultStore(store).runs_frame()
    assert sorted(runs.architecture) == ["gru", "test-conformance-leaky"]
    assert {row.environment["conformance"] for row in runs.itertuples()} == {"skipped (--no-check)"}
    cli.main(["sweep", "--architectures", "gru", "--tasks", "adding", "--seeds", "2", "--store", store,
              "--no-progress", *_settings()])
    seed_1 = ResultStore(store).runs_frame().query("seed == 1")
    assert seed_1.environment.iloc[0]["conformance"] == "passed"   # it passes: its runs check


def test_cli_check_runs_the_kit_with_the_architectures_options(capsys):
    assert cli.main(["check", "deep_rnn", "--set", "arch.cell=gru", "--set", "arch.num_layers=3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("deep_rnn[cell=gru, num_layers=3] (version 1) passes the conformance kit: 8 of 8")
    assert "  ok    sequence:carried_state" in out
    assert cli.main(["check", "test-conformance-leaky"]) == 1
    out = capsys.readouterr().out
    assert "fails the conformance kit" in out and "  FAIL  sequence:batch_invariance: the outputs" in out
    assert cli.main(["check", "lstm", "--set", "task.length=3"]) == 2
    assert "not an option of 'lstm'" in capsys.readouterr().err
