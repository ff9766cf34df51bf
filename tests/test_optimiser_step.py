"""The runner's optimisation step (it takes the step itself, Lightning's manual optimisation):
learning-rate schedules stepped per step (cosine) or per epoch (decay, Zaremba et al.), and a run
interrupted under the earlier runner, which left the step to Lightning, resuming at its step.
Clipping is in test_tricks.py."""

from __future__ import annotations

import math
import signal

import pytest
import torch

from helpers import QUICK, at_batch_end, ctrl_c_at
import rnnbench.training.resume
from rnnbench.training import runner
from rnnbench.store import ResultStore


def _learning_rate(trainer, module, batch_index):
    return trainer.current_epoch, batch_index, trainer.optimizers[0].param_groups[0]["lr"]


def test_the_cosine_schedule_steps_after_every_optimiser_step(tmp_path, monkeypatch):
    seen = at_batch_end(monkeypatch, _learning_rate)
    settings = {**QUICK, "optim.schedule": "cosine", "optim.optimizer": "sgd", "optim.lr": "0.1"}
    runner.run("rnn", "copy", settings, store=tmp_path / "r.sqlite", progress=False, check=False)
    rates = [rate for *_, rate in seen]
    steps = int(QUICK["trainer.max_steps"])
    assert rates == pytest.approx([0.05 * (1 + math.cos(math.pi * k / steps)) for k in range(1, steps + 1)],
                                  abs=1e-9)


def test_the_decay_schedule_steps_at_the_end_of_every_epoch(tmp_path, monkeypatch):
    """lr * factor ** max(0, e + 1 - decay_start) in epoch e counting from 1; the rate changes with
    the epoch's last batch, before the callbacks see it (so a resume point written there has it)."""
    seen = at_batch_end(monkeypatch, _learning_rate)
    start, factor = 2, 0.5
    settings = {**QUICK, "optim.schedule": "decay", "optim.decay_start": str(start),
                "optim.decay_factor": str(factor), "optim.optimizer": "sgd", "optim.lr": "1.0",
                "trainer.max_steps": "none", "trainer.max_epochs": "3", "trainer.val_every_steps": "none"}
    runner.run("rnn", "copy", settings, store=tmp_path / "r.sqlite", progress=False, check=False)
    per_epoch = 64 // 16
    assert len(seen) == 3 * per_epoch
    for epoch, index, rate in seen:
        in_force = epoch + 1 + (index == per_epoch - 1)   # the epoch (from 1) the rate is set for
        assert rate == pytest.approx(factor ** max(0, in_force + 1 - start)), (epoch, index)


def _as_written_by_automatic_optimisation(path) -> None:
    """Rewrite a resume point's loop progress as Lightning wrote it while it stepped the optimiser
    (automatic optimisation, the runner before 2026-12-01): the optimiser's steps counted under
    `automatic_optimization`, none under `manual_optimization`."""
    checkpoint = torch.load(path, weights_only=False)
    loops = checkpoint["loops"]["fit_loop"]
    manual = loops["epoch_loop.manual_optimization.optim_step_progress"]
    automatic = loops["epoch_loop.automatic_optimization.optim_progress"]["optimizer"]
    for scope in ("total", "current"):
        done = manual[scope]["completed"]
        automatic["step"][scope] = {"ready": done, "completed": done}
        automatic["zero_grad"][scope] = {"ready": done, "started": done, "completed": done}
        manual[scope] = {"ready": 0, "completed": 0}
    torch.save(checkpoint, path)


def test_a_resume_point_written_by_the_earlier_runner_resumes_at_its_step(tmp_path, monkeypatch):
    monkeypatch.setattr(rnnbench.training.resume, "CHECKPOINT_EVERY_STEPS", 3)
    settings = {**QUICK, "trainer.max_steps": "10", "trainer.val_every_steps": "none",
                "trainer.early_stopping": "false", "task.train_size": "80"}
    reference = runner.run("lstm", "copy", settings, store=tmp_path / "a" / "r.sqlite", progress=False)
    original = ctrl_c_at(6, monkeypatch)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    store = ResultStore(tmp_path / "b" / "r.sqlite")
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run("lstm", "copy", settings, store=store, progress=False)
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    _as_written_by_automatic_optimisation(store.checkpoint_root / reference.run_id / "last.ckpt")
    monkeypatch.setattr(runner.TrainingModule, "training_step", original)
    steps = at_batch_end(monkeypatch, lambda trainer, module, index: trainer.global_step)
    resumed = runner.run("lstm", "copy", settings, store=store, progress=False)
    assert steps == [8, 9, 10]
    assert resumed.metrics == pytest.approx(reference.metrics, rel=1e-6)
