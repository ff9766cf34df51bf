"""The recurrences of 2023-2026 (minGRU/minLSTM, LRU, RG-LRU, S4D, Mamba, DeltaNet, Gated DeltaNet,
mLSTM, sLSTM, IndRNN): the scan toolkit against its reference loop, the kit's parallel = recurrent
= chunked check catching planted errors, and every one training through the runner."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import QUICK
from rnnbench import (ConformanceError, SequenceBatch, check_architecture, conformance_checks, linear_scan,
                      log_space_scan, sequential_scan)
from rnnbench.core import registry
from rnnbench.plugins.min_rnn import MinGRU, MinRNNEncoder
from rnnbench.plugins.rglru import RGLRU, RGLRUEncoder
from rnnbench.training.runner import run

MODERN = ("mingru", "minlstm", "lru", "rglru", "s4d", "mamba", "deltanet", "gated_deltanet", "mlstm", "slstm",
          "indrnn")


def _random(*shape, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    if dtype.is_complex:
        return torch.complex(torch.randn(*shape, generator=generator), torch.randn(*shape, generator=generator))
    return torch.randn(*shape, generator=generator)


@pytest.mark.parametrize("kind", ["positive", "signed", "complex"])
@pytest.mark.parametrize("steps", [1, 7, 64, 257])
def test_the_parallel_scan_equals_the_loop_for_decays_of_any_sign_and_phase(kind, steps):
    shape = (3, steps, 5)
    if kind == "complex":
        decays = torch.polar(torch.rand(*shape, generator=torch.Generator().manual_seed(1)) * 0.99,
                             _random(*shape, seed=2))
        inputs, initial = _random(*shape, dtype=torch.complex64, seed=3), _random(3, 5, dtype=torch.complex64, seed=4)
    else:
        decays = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
        decays = decays * 2 - 1 if kind == "signed" else decays
        inputs, initial = _random(*shape, seed=3), _random(3, 5, seed=4)
    for start in (None, initial):
        expected = sequential_scan(decays, inputs, start)
        assert torch.allclose(linear_scan(decays, inputs, start), expected, atol=1e-5, rtol=1e-4)


def test_the_log_space_scan_equals_the_loop_for_positive_decays_and_inputs():
    decays, inputs = torch.rand(2, 100, 4) * 0.98 + 0.01, torch.rand(2, 100, 4) + 0.1
    initial = torch.rand(2, 4) + 0.1
    for start in (None, initial):
        logged = log_space_scan(decays.log(), inputs.log(), None if start is None else start.log())
        assert torch.allclose(logged.exp(), sequential_scan(decays, inputs, start), rtol=1e-4)


class _MismatchedLoop(MinRNNEncoder):
    """Planted: the step-by-step path differs from the parallel one by 1e-3."""

    def forward_recurrent(self, inputs, state=None):
        out = super().forward_recurrent(inputs, state)
        return out._replace(outputs=out.outputs + 1e-3)


class _OffByOneAtTheBoundary(RGLRUEncoder):
    """Planted: a carried state is decayed twice at a chunk's first step (the whole sequence, which
    starts from zero, is right)."""

    def forward(self, inputs, state=None):
        decays, driven, branch = self._coefficients(inputs)
        start = None if state is None else state * decays[:, 0]
        return self._output(linear_scan(decays, driven, start), branch, inputs.lengths)


class _Planted(MinGRU):
    encoder = _MismatchedLoop

    def build(self, input_size, hidden_size, options):
        if self.encoder is _MismatchedLoop:
            return _MismatchedLoop(input_size, hidden_size, "gru")
        return _OffByOneAtTheBoundary(input_size, hidden_size)


def test_the_kit_catches_a_parallel_path_that_disagrees_with_its_loop():
    with pytest.raises(ConformanceError, match="fails sequence:parallel_equals_recurrent: the parallel and "
                                               "step-by-step outputs"):
        check_architecture(_Planted)


def test_the_kit_catches_a_state_lost_at_a_chunk_boundary():
    class Boundary(_Planted):
        encoder = _OffByOneAtTheBoundary
        capabilities = RGLRU.capabilities

    with pytest.raises(ConformanceError, match="carried_state"):
        check_architecture(Boundary)
    parallel = {check.name: check for check in conformance_checks(Boundary)}["sequence:parallel_equals_recurrent"]
    with pytest.raises(ConformanceError, match="run in chunks of 1 step"):
        parallel.run()


@pytest.mark.parametrize("name", MODERN)
def test_every_modern_architecture_is_registered_and_passes_the_kit(name):
    architecture = registry.get_architecture(name)
    assert architecture.capabilities.parallel_form == (name not in ("slstm", "indrnn"))
    check_architecture(architecture)


@pytest.mark.parametrize("name", MODERN)
def test_every_modern_architecture_trains_the_quick_copy_probe_to_a_finite_loss(name, tmp_path):
    result = run(name, "copy", QUICK, store=tmp_path / "r.sqlite", progress=False)
    assert result.status == "completed" and math.isfinite(result.metrics["val/loss"])


@pytest.mark.parametrize("name", MODERN)
def test_a_parameter_budget_sizes_a_modern_architecture(name, tmp_path):
    result = run(name, "adding", {**{k: v for k, v in QUICK.items() if k != "arch.hidden_size"},
                                  "arch.params": "5k"}, store=tmp_path / "r.sqlite", progress=False)
    assert abs(result.parameters - 5_000) <= 0.05 * 5_000


def test_negative_eigenvalues_put_mambas_transitions_in_minus_one_one():
    """Grazzi et al. 2025: 2 exp(Delta A) - 1 reaches below 0, the published form does not."""
    batch = SequenceBatch(torch.randn(4, 12, 3), torch.full((4,), 12))
    for negative, lowest in ((False, 0.0), (True, -1.0)):
        architecture = registry.get_architecture("mamba")
        encoder = architecture().build(3, 8, architecture.Options(negative_eigenvalues=negative))
        x, _, _ = encoder._convolved(batch, None)
        decays, _, _ = encoder._selective(x, batch.mask())
        assert decays.min() >= lowest and decays.max() < 1.0
        assert (decays.min() < 0) == negative


def _quick_cases() -> list:
    tasks = {name: cls for name, cls in registry.tasks().items() if not name.startswith("test-")}
    return [pytest.param(name, task, id=f"{name}-{task}") for name in MODERN for task, cls in tasks.items()
            if registry.pair_compatibility(registry.get_architecture(name), cls).ok]


@pytest.mark.slow
@pytest.mark.parametrize("name, task", _quick_cases())
def test_every_modern_architecture_takes_the_quick_preset_of_every_task_it_can_run(name, task, tmp_path):
    """One training step with the task's quick preset on a slice of its data (as
    tests/test_task_presets.py does with one architecture per task)."""
    import dataclasses

    from conftest import require_datasets
    from rnnbench.core.errors import BenchmarkError
    from test_task_presets import MISSING, ONE_STEP, SLICE

    fields = {field.name for field in dataclasses.fields(registry.get_task(task).Options)}
    overrides = {**ONE_STEP, **{f"task.{key}": str(value) for key, value in SLICE.items() if key in fields}}
    try:
        result = run(name, task, overrides, preset="quick", store=tmp_path / "r.sqlite", progress=False)
    except BenchmarkError as error:
        missing = MISSING.search(str(error))
        if missing is None:
            raise
        require_datasets((missing.group(1),))
        raise
    assert result.status == "completed"


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_min_rnns_agree_with_the_papers_log_space_scan(name):
    architecture = registry.get_architecture(name)
    encoder = architecture().build(3, 6, architecture.Options())
    batch = SequenceBatch(torch.randn(3, 40, 3), torch.tensor([40, 25, 7]))
    first = encoder(SequenceBatch(batch.values[:, :20], torch.tensor([20, 20, 7])))
    for state in (None, first.state):
        assert torch.allclose(encoder(batch, state).outputs, encoder.forward_log_space(batch, state).outputs,
                              atol=1e-5, rtol=1e-4)
