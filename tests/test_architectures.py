"""Every registered architecture, iterated from the registry: its declaration, the conformance kit
(one test case per architecture and check, and per option variant worth checking: the only place
the kit runs over the registry), and one
training step through a probe task's head."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rnnbench.core import registry
from rnnbench.cli import matrix_text
from rnnbench.training.config import resolve
from rnnbench.conformance.kit import check_architecture, conformance_checks
from rnnbench.training.model import build_model

# the registered plugins; not the "test-..." encoders other test modules register for themselves
ARCHITECTURES = {name: cls for name, cls in registry.architectures().items() if not name.startswith("test-")}

# option variants that take other code paths than the defaults
VARIANTS: dict[str, list[dict]] = {
    "deep_rnn": [{"cell": "rnn", "residual": False}, {"cell": "gru", "dropout": 0.3, "variational": True},
                 {"cell": "lstm", "num_layers": 1}],
    "esn": [{"leak_rate": 0.3, "spectral_radius": 0.5}],
    "lstm": [{"num_layers": 2, "dropout": 0.3}],      # stacked one-layer fused modules
    "bilstm": [{"num_layers": 3, "dropout": 0.3}],
    "recursive": [{"cell": "treelstm"}],
    "pixelrnn": [{"variant": "row_lstm"}, {"variant": "diagonal_bilstm", "num_layers": 3, "first_kernel": 3}],
    "jordan": [{"state_decay": 0.5}],                 # Jordan's self-connected state units
    "leaky_rnn": [{"leak_rates": "fixed", "min_leak_rate": 0.05}],   # rates in a buffer
    "skip_rnn": [{"delays": "1"}, {"delays": "1+2+4+8"}],   # no cat of delayed states; a long window
    "mamba": [{"negative_eigenvalues": True}, {"conv_kernel": 1}],   # transitions in (-1, 1); no window
    "deltanet": [{"num_heads": 2, "chunk_size": 4}],    # several chunks and heads
    "gated_deltanet": [{"num_heads": 2, "chunk_size": 4}],
    "mlstm": [{"num_heads": 2}],
    "slstm": [{"num_heads": 2}],
    "lru": [{"state_size": 3}],                       # N below the hidden size
    "s4d": [{"state_size": 2}],                       # one complex mode
}

# what each architecture must declare: (causal, structures, state layout, carries state, closed form)
DECLARED = {
    "rnn": (True, ("sequence",), "single", True, False),
    "gru": (True, ("sequence",), "single", True, False),
    "lstm": (True, ("sequence",), "single", True, False),
    "bilstm": (False, ("sequence",), "bidirectional", False, False),
    "deep_rnn": (True, ("sequence",), "single", True, False),
    "esn": (True, ("sequence",), "single", True, True),
    "recursive": (False, ("tree", "sequence"), "single", False, False),
    "pixelrnn": (True, ("grid",), "single", False, False),
    "jordan": (True, ("sequence",), "single", True, False),
    "leaky_rnn": (True, ("sequence",), "single", True, False),
    "skip_rnn": (True, ("sequence",), "single", True, False),
    **{name: (True, ("sequence",), "single", True, False)
       for name in ("mingru", "minlstm", "lru", "rglru", "s4d", "mamba", "deltanet", "gated_deltanet", "mlstm",
                    "slstm", "indrnn")},
}


def _cases() -> list:
    cases = []
    for name, cls in ARCHITECTURES.items():
        for options in [None, *VARIANTS.get(name, [])]:
            label = name if options is None else f"{name}[{','.join(f'{k}={v}' for k, v in options.items())}]"
            for check in conformance_checks(cls, _options(cls, options)):
                cases.append(pytest.param(name, options, check.name, id=f"{label}-{check.name}"))
    return cases


def _options(cls, overrides: dict | None):
    return None if overrides is None else dataclasses.replace(cls.Options(), **overrides)


@pytest.mark.parametrize("name, options, check_name", _cases())
def test_conformance(name: str, options: dict | None, check_name: str) -> None:
    cls = ARCHITECTURES[name]
    checks = {check.name: check for check in conformance_checks(cls, _options(cls, options))}
    checks[check_name].run()


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_the_whole_kit_is_fast(name: str) -> None:
    """Runs check the architecture before they count: the whole kit must take well under a second
    (about 0.1 s each here); the bound leaves room for a busy machine."""
    import time
    started = time.perf_counter()
    check_architecture(ARCHITECTURES[name])
    assert time.perf_counter() - started < 2.0


def test_all_eight_architectures_load() -> None:
    assert registry.load_errors() == {}
    assert set(DECLARED) <= set(ARCHITECTURES)


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_declared_capabilities(name: str) -> None:
    caps = ARCHITECTURES[name].capabilities
    assert (caps.causal, caps.structures, caps.state_layout, caps.carries_state,
            caps.closed_form_readout) == DECLARED[name]


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_variant_options_exist(name: str) -> None:
    known = {field.name for field in dataclasses.fields(ARCHITECTURES[name].Options)}
    for variant in VARIANTS.get(name, []):
        assert set(variant) <= known


def test_matrix_shows_every_architecture_with_its_verdicts() -> None:
    text = matrix_text(ARCHITECTURES, {name: registry.get_task(name) for name in ("adding", "copy")})
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[3:] if line.strip()
            and line.split()[0] in ARCHITECTURES}
    assert set(rows) == set(ARCHITECTURES)
    # columns: adding, copy; copy needs causality, neither gives grids
    assert rows["bilstm"][0] == "ok" and rows["bilstm"][1] == "a"   # the first reason: not causal
    assert rows["recursive"][0] == "ok" and rows["recursive"][1] == "a"
    assert rows["esn"][:2] == ["ok", "ok"] and rows["deep_rnn"][:2] == ["ok", "ok"]
    assert rows["pixelrnn"][0] == "b" and "  b  reads grid" in text and "  a  not causal" in text


PROBES = ("copy", "adding")


def _probe_pairs() -> list:
    return [pytest.param(arch, task, id=f"{arch}-{task}") for arch in ARCHITECTURES for task in PROBES
            if registry.pair_compatibility(ARCHITECTURES[arch], registry.get_task(task)).ok]


@pytest.mark.parametrize("architecture_name, task_name", _probe_pairs())
def test_one_training_step_on_a_probe(architecture_name: str, task_name: str) -> None:
    """The encoder meets the task's head: a finite loss whose gradient reaches the head."""
    architecture, task_cls = ARCHITECTURES[architecture_name](), registry.get_task(task_name)
    config = resolve(type(architecture), task_cls, {"task.length": "6", "task.train_size": "8",
                                                    "task.eval_size": "8", "arch.hidden_size": "8"})
    task = task_cls(config.task_options)
    torch.manual_seed(0)
    model = build_model(architecture, task, config, hidden_size=8)
    batch = next(iter(task.splits(batch_size=4, seed=0).train))
    output, _ = model(batch)
    loss = output.loss_sum / output.count
    loss.backward()
    assert torch.isfinite(loss)
    assert model.head.linear.weight.grad.abs().sum() > 0


def test_bilstm_concatenates_both_directions() -> None:
    """Per-step outputs are [forward; backward]; `final` holds the forward state after the last
    real step and the backward state after the first, and 'last' pooling concatenates them."""
    from rnnbench.core.contracts import EncoderOutput, SequenceBatch
    from rnnbench.toolkit.pooling import pool

    torch.manual_seed(0)
    encoder = ARCHITECTURES["bilstm"]().build(3, 5, ARCHITECTURES["bilstm"].Options()).eval()
    lengths = torch.tensor([6, 3])
    batch = SequenceBatch(torch.randn(2, 6, 3), lengths)
    with torch.no_grad():
        out: EncoderOutput = encoder(batch)
    assert out.outputs.shape == (2, 6, 10) and out.final.shape == (2, 2, 5)
    for item, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(out.final[item, 0], out.outputs[item, length - 1, :5])
        torch.testing.assert_close(out.final[item, 1], out.outputs[item, 0, 5:])
    torch.testing.assert_close(pool(out, batch, "last"), out.final.reshape(2, 10))


def test_every_in_tree_task_declares_its_baselines() -> None:
    """A leaderboard says which rows learned only where the task computes its trivial
    predictors (Task.baselines); publishing refuses a table without them."""
    from rnnbench.core.contracts import Task

    bare = [name for name, cls in registry.tasks().items()
            if cls.__module__.startswith("rnnbench.") and cls.baselines is Task.baselines]
    assert not bare, f"tasks without baselines: {bare}"
