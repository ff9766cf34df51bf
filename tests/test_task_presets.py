"""Every registered task, with its defaults and each of its presets, trains one step end to end
through `rnnbench.training.runner.run` (as timm's tests run every model config): a preset that names an
unknown setting, a bad value or a combination the task cannot run fails here, not in a user's
sweep. Each run takes a small slice of the data (the task's own slicing options, found in its
Options dataclass), a tiny model and one training step, with a compatible architecture."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from conftest import require_datasets
from rnnbench.core import registry
from rnnbench.training import runner
from rnnbench.core.errors import BenchmarkError, DivergedError
from rnnbench.store import ResultStore

TASKS = {name: cls for name, cls in registry.tasks().items() if not name.startswith("test-")}
ARCHITECTURES = {name: cls for name, cls in registry.architectures().items() if not name.startswith("test-")}
PREFERRED = ("gru", "recursive", "pixelrnn")  # the cheapest reader of each structure

# slicing options, applied where the task's Options has them
SLICE = {"train_size": 32, "eval_size": 16, "val_size": 16, "test_size": 16,
         "train_sentences": 24, "eval_sentences": 16, "train_tokens": 2_000, "eval_tokens": 500,
         "train_steps": 400, "val_steps": 200, "test_steps": 200, "bptt": 20, "washout": 10,
         "free_run_windows": 4, "free_run_warmup": 40, "free_run_steps": 10,
         "eval_per_length": 1, "test_length_step": 50}
# one step ends every run before its first validation interval: the runner validates at the end
ONE_STEP = {"trainer.max_steps": "1", "trainer.max_epochs": "1",
            "trainer.batch_size": "8", "arch.hidden_size": "8", "arch.embedding_size": "8"}
MISSING = re.compile(r"dataset '([\w-]+)' is (?:missing|corrupt)")


def _architecture(task_cls) -> str | None:
    compatible = [name for name, cls in ARCHITECTURES.items() if registry.pair_compatibility(cls, task_cls).ok]
    return next((name for name in PREFERRED if name in compatible), compatible[0] if compatible else None)


def _cases() -> list:
    return [pytest.param(task, preset, id=f"{task}-{preset or 'defaults'}")
            for task, cls in TASKS.items() for preset in (None, *cls.presets)]


def test_every_task_has_a_quick_preset_and_an_architecture_that_can_run_it():
    assert TASKS
    for name, cls in TASKS.items():
        assert "quick" in cls.presets, name
        assert _architecture(cls) is not None, name


@pytest.mark.parametrize("task_name, preset", _cases())
def test_one_training_step_with_each_preset(task_name: str, preset: str | None, tmp_path) -> None:
    task_cls = TASKS[task_name]
    architecture = _architecture(task_cls)
    fields = {field.name for field in dataclasses.fields(task_cls.Options)}
    overrides = {**ONE_STEP, **{f"task.{name}": str(value) for name, value in SLICE.items() if name in fields}}
    try:
        metrics = runner.run(architecture, task_name, overrides, preset=preset, store=tmp_path / "r.sqlite",
                             progress=False).metrics
    except DivergedError as error:
        # one step at a language model's learning rate can leave it worse than a uniform guess,
        # which is recorded as diverged (Task.uninformed_loss), its metrics measured
        assert "a model that learned nothing" in str(error), error
        metrics = ResultStore(tmp_path / "r.sqlite").runs_frame().metrics.iloc[0]
    except BenchmarkError as error:
        missing = MISSING.search(str(error))
        if missing is None:
            raise
        require_datasets((missing.group(1),))  # skipped here, failed under CI=true
        raise
    value = metrics[f"test/{task_cls.primary_metric}"]
    assert math.isfinite(value), f"{architecture} on {task_name} (preset {preset}): {value}"
