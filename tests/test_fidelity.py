"""Defects that changed numbers without an error (issue 8): each test failed before its fix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import QUICK
from rnnbench.training import runner
from rnnbench.store import ResultStore

ROOT = Path(__file__).resolve().parent.parent
SERIES = {"task.train_steps": "600", "task.val_steps": "200", "task.test_steps": "200",
          "task.washout": "10", "task.bptt": "25", "trainer.batch_size": "4",
          "arch.hidden_size": "16", "optim.lr": "0.01", "trainer.max_steps": "none",
          "trainer.max_epochs": "2", "trainer.early_stopping": "false"}


def _final_weights(monkeypatch) -> list[dict[str, torch.Tensor]]:
    captured: list[dict[str, torch.Tensor]] = []

    def on_fit_end(self):
        captured.append({name: value.detach().clone() for name, value in self.model.state_dict().items()})

    monkeypatch.setattr(runner.TrainingModule, "on_fit_end", on_fit_end, raising=False)
    return captured


def _same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_validating_mid_stream_does_not_reset_the_training_state(tmp_path, monkeypatch):
    """Training a state-carrying task ends with the same weights whether it validates every 2
    steps or only at the end of each epoch: validation has its own carried state."""
    weights = _final_weights(monkeypatch)
    runner.run("lstm", "narma10", {**SERIES, "trainer.val_every_steps": "2"},
               store=tmp_path / "a.sqlite", progress=False)
    runner.run("lstm", "narma10", {**SERIES, "trainer.val_every_steps": "none"},
               store=tmp_path / "b.sqlite", progress=False)
    assert len(weights) == 2
    assert _same_weights(*weights)


def test_runs_ask_for_deterministic_kernels_and_record_whether_they_got_them(tmp_path, monkeypatch):
    seen = []
    original = runner.TrainingModule.training_step

    def watched(self, batch, index):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return original(self, batch, index)

    monkeypatch.setattr(runner.TrainingModule, "training_step", watched)
    runner.run("gru", "copy", QUICK, store=tmp_path / "r.sqlite", progress=False)
    assert seen and all(seen)
    environment = ResultStore(tmp_path / "r.sqlite").runs_frame().iloc[0].environment
    assert environment["deterministic_algorithms"] == "warn"
    assert environment["deterministic"] is True and environment["nondeterministic_ops"] == []


# --------------------------------------------------------------------------- resume

DROPOUT_RUNS = {
    "lstm": {"arch.num_layers": "2", "arch.dropout": "0.5"},
    "deep_rnn": {"arch.cell": "gru", "arch.num_layers": "2", "arch.dropout": "0.5",
                 "arch.variational": "true"},
}
SMALL_COPY = {"task.length": "5", "task.train_size": "96", "task.eval_size": "32",
              "arch.hidden_size": "16", "trainer.batch_size": "16", "trainer.max_steps": "24",
              "trainer.val_every_steps": "8", "trainer.early_stopping": "false"}

# runs the CLI with a resume point every 3 steps and a slowed-down training step, so that the
# test can kill it in the middle of training
SLOW_CLI = """
import os, signal, sys, time
import rnnbench.training.resume, rnnbench.training.module, rnnbench.training.callbacks
rnnbench.training.resume.CHECKPOINT_EVERY_STEPS = 3
train = rnnbench.training.module.TrainingModule.training_step
def slow(self, batch, index):
    time.sleep(0.1)
    return train(self, batch, index)
rnnbench.training.module.TrainingModule.training_step = slow
kill_after_round_at = int(os.environ.get("KILL_AFTER_ROUND_AT", "0"))
record = rnnbench.training.callbacks.RecordProgress.on_validation_end
def record_then_die(self, trainer, module):
    record(self, trainer, module)
    if trainer.global_step == kill_after_round_at:
        os.kill(os.getpid(), signal.SIGKILL)   # after the history write, before the checkpoint
rnnbench.training.callbacks.RecordProgress.on_validation_end = record_then_die
kill_after_resume_point_at = os.environ.get("KILL_AFTER_RESUME_POINT_AT", "")   # e.g. validation:6
save_point = {"batch": rnnbench.training.resume.SaveResumePoint.on_train_batch_end,
              "validation": rnnbench.training.resume.SaveResumePoint.on_validation_end}
def saved_then_die(hook):
    def hooked(self, trainer, *args):
        save_point[hook](self, trainer, *args)
        if kill_after_resume_point_at == f"{hook}:{trainer.global_step}":
            os.kill(os.getpid(), signal.SIGKILL)   # right after the resume point is written
    return hooked
rnnbench.training.resume.SaveResumePoint.on_train_batch_end = saved_then_die("batch")
rnnbench.training.resume.SaveResumePoint.on_validation_end = saved_then_die("validation")
from rnnbench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _cli_command(tmp_path: Path, store: Path, architecture: str, settings: dict[str, str]) -> list[str]:
    script = tmp_path / "slow_cli.py"
    script.write_text(SLOW_CLI)
    command = [sys.executable, str(script), "run", architecture, "copy", "--no-progress", "--store", str(store)]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    return command


def _best_weights(store: Path, run_id: str) -> dict[str, torch.Tensor]:
    return torch.load(store.parent / "checkpoints" / run_id / "best.ckpt", weights_only=False)["state_dict"]


@pytest.mark.parametrize("architecture", sorted(DROPOUT_RUNS))
def test_a_run_killed_mid_training_resumes_to_exactly_the_uninterrupted_result(architecture, tmp_path):
    """SIGKILL after the first resume point, then the same run again: with dropout (plain and
    variational), the metrics and weights equal those of a run that was never interrupted."""
    settings = {**SMALL_COPY, **DROPOUT_RUNS[architecture]}
    reference = runner.run(architecture, "copy", settings, store=tmp_path / "a" / "r.sqlite", progress=False)

    store = tmp_path / "b" / "r.sqlite"
    process = subprocess.Popen(_cli_command(tmp_path, store, architecture, settings), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    resume_point = store.parent / "checkpoints" / reference.run_id / "last.ckpt"
    deadline = time.time() + 120
    while not resume_point.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.kill()
    _, stderr = process.communicate(timeout=60)
    assert resume_point.exists(), stderr
    assert ResultStore(store).status_of(reference.run_id) == "running", "killed too late to test"

    resumed = runner.run(architecture, "copy", settings, store=store, progress=False)
    assert resumed.metrics == reference.metrics
    assert _same_weights(_best_weights(store, resumed.run_id),
                         _best_weights(tmp_path / "a" / "r.sqlite", reference.run_id))


def test_a_kill_between_a_history_write_and_its_checkpoint_leaves_no_duplicate_round(tmp_path):
    settings = {**SMALL_COPY, "trainer.max_steps": "15", "trainer.val_every_steps": "5"}
    reference = runner.run("gru", "copy", settings, store=tmp_path / "a" / "r.sqlite", progress=False)
    store = tmp_path / "b" / "r.sqlite"
    process = subprocess.run(_cli_command(tmp_path, store, "gru", settings), cwd=ROOT,
                             env={**os.environ, "KILL_AFTER_ROUND_AT": "10"}, capture_output=True, text=True)
    assert process.returncode == -signal.SIGKILL, process.stderr
    resumed = runner.run("gru", "copy", settings, store=store, progress=False)

    def rounds(path: Path) -> list[tuple[int, int]]:
        return sorted({(epoch, step) for epoch, step, *_ in ResultStore(path).history(reference.run_id)})

    assert rounds(store) == rounds(tmp_path / "a" / "r.sqlite") == [(0, 5), (1, 10), (2, 15)]
    assert resumed.metrics == reference.metrics

    def convergence(path: Path) -> dict:   # the rounds before the kill travel in the resume point
        return ResultStore(path).runs_frame().environment.iloc[0]["convergence"]

    assert convergence(store) == convergence(tmp_path / "a" / "r.sqlite")

    def clipping(path: Path) -> dict:   # the clip counts too
        return ResultStore(path).runs_frame().environment.iloc[0]["clipping"]

    assert clipping(store) == clipping(tmp_path / "a" / "r.sqlite") and clipping(store)["steps"] == 15
    assert convergence(store)["rounds"] == 3 and convergence(store)["stopped_by"] == "budget"


def test_a_run_resumed_mid_window_logs_the_same_training_history(tmp_path):
    """Killed right after the resume point of step 40, in the middle of the loss window of steps
    26-50 (LOG_EVERY = 25): resumed, its train/loss at every round equals the uninterrupted
    run's, window for window (the window's losses travel with the resume point)."""
    settings = {**SMALL_COPY, "trainer.max_steps": "60", "trainer.val_every_steps": "20"}
    reference = runner.run("gru", "copy", settings, store=tmp_path / "a" / "r.sqlite", progress=False)
    store = tmp_path / "b" / "r.sqlite"
    process = subprocess.run(_cli_command(tmp_path, store, "gru", settings), cwd=ROOT, capture_output=True,
                             env={**os.environ, "KILL_AFTER_RESUME_POINT_AT": "validation:40"}, text=True)
    assert process.returncode == -signal.SIGKILL, process.stderr
    runner.run("gru", "copy", settings, store=store, progress=False)

    def losses(path: Path) -> list[tuple[int, float]]:
        return sorted((step, value) for _, step, name, value in ResultStore(path).history(reference.run_id)
                      if name == "train/loss")

    assert [step for step, _ in losses(store)] == [20, 40, 60]
    assert losses(store) == losses(tmp_path / "a" / "r.sqlite")


def test_a_run_resumed_after_its_last_validation_keeps_its_validation_metrics(tmp_path, monkeypatch):
    """Ctrl-C in the last training step: the run stops after the final validation; resumed, it
    has nothing left to train, and still records the validation metrics of its best checkpoint."""
    settings = {**SMALL_COPY, "trainer.max_steps": "10", "trainer.val_every_steps": "5"}
    reference = runner.run("gru", "copy", settings, store=tmp_path / "a" / "r.sqlite", progress=False)
    assert "val/accuracy" in reference.metrics
    original = runner.TrainingModule.training_step

    def ctrl_c_in_the_last_step(self, batch, index):
        if self.global_step == 9:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, batch, index)

    monkeypatch.setattr(runner.TrainingModule, "training_step", ctrl_c_in_the_last_step)
    handler = signal.getsignal(signal.SIGINT)
    store = tmp_path / "b" / "r.sqlite"
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run("gru", "copy", settings, store=store, progress=False)
    finally:
        signal.signal(signal.SIGINT, handler)
    monkeypatch.setattr(runner.TrainingModule, "training_step", original)
    resumed = runner.run("gru", "copy", settings, store=store, progress=False)
    assert resumed.metrics == reference.metrics


def test_the_stored_validation_metrics_are_those_of_the_tested_checkpoint(tmp_path):
    """val/* in the record belong to the best checkpoint (the one the test evaluates), not to the
    last validation round."""
    settings = {**SMALL_COPY, "trainer.max_steps": "40", "trainer.val_every_steps": "4",
                "optim.lr": "0.05"}
    result = runner.run("gru", "copy", settings, store=tmp_path / "r.sqlite", progress=False)
    rounds = {}
    for epoch, step, name, value in ResultStore(tmp_path / "r.sqlite").history(result.run_id):
        rounds.setdefault(epoch, {})[name] = value
    best = max(rounds.values(), key=lambda values: values["val/accuracy"])
    last = rounds[max(rounds)]
    assert best["val/accuracy"] != last["val/accuracy"], "pick settings whose best round is not the last"
    assert result.metrics["val/accuracy"] == pytest.approx(best["val/accuracy"])
    assert result.metrics["val/loss"] == pytest.approx(best["val/loss"])


# --------------------------------------------------------------------------- measurements


def test_peak_memory_is_measured_per_run(tmp_path):
    """A run after a 1 GiB allocation in the same process reports its own peak, not the
    process's; the record says what was measured."""
    import resource
    spike = torch.ones(2**28)  # 1 GiB, touched
    peak_with_spike_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del spike
    runner.run("gru", "copy", QUICK, store=tmp_path / "r.sqlite", progress=False)
    row = ResultStore(tmp_path / "r.sqlite").runs_frame().iloc[0]
    if "ru_maxrss" in row.environment["peak_memory"]:
        pytest.skip("this kernel cannot reset a process's peak RSS (/proc/self/clear_refs)")
    assert row.peak_memory_mb < peak_with_spike_mb - 500
    assert "during the run" in row.environment["peak_memory"]


def test_throughput_is_recorded_with_its_unit(tmp_path):
    runner.run("gru", "copy", QUICK, store=tmp_path / "r.sqlite", progress=False)
    runner.run("gru", "adding", QUICK, store=tmp_path / "r.sqlite", progress=False)
    frame = ResultStore(tmp_path / "r.sqlite").runs_frame()
    units = {row.task: row.task_info["item_unit"] for row in frame.itertuples()}
    assert units == {"copy": "steps", "adding": "sequences"}


# --------------------------------------------------------------------------- leaderboard


def _record(store: ResultStore, architecture: str, seed: int, status: str, score: float | None,
            length: int = 20, steps: int = 100) -> None:
    config = {"task.length": length, "trainer.max_steps": steps, "trainer.batch_size": 16,
              "optim.lr": 0.001}
    run_id = f"{architecture}-{length}-{steps}-{seed}"
    store.start_run(run_id=run_id, config_id=f"{architecture}-{length}-{steps}", architecture=architecture,
                    task="copy", architecture_version=1, task_version=1, seed=seed, preset=None,
                    config=config, task_info={"primary_metric": "accuracy", "direction": "max",
                                              "head": "tagging", "item_unit": "steps", "references": []})
    metrics = {"test/accuracy": score} if score is not None else {}
    store.finish_run(run_id, status, metrics=metrics, parameters=100, items_per_second=10.0)


def test_the_leaderboard_shows_every_seed_and_ranks_unstable_configurations_last(tmp_path):
    from rnnbench.reports.leaderboard import leaderboard_frames, render

    store = ResultStore(tmp_path / "r.sqlite")
    _record(store, "rnn", 0, "completed", 0.95)      # best surviving seed, but one seed diverged
    _record(store, "rnn", 1, "diverged", None)
    _record(store, "gru", 0, "completed", 0.80)
    _record(store, "gru", 1, "completed", 0.82)
    (table,) = leaderboard_frames(store).values()
    assert list(table.architecture) == ["gru", "rnn"]
    assert list(table["not completed"]) == ["-", "1 diverged"]
    assert list(table.seeds) == [2, 1]
    assert "steps/s" in table.columns
    assert "1 diverged" in render(store)


def test_the_leaderboard_ranks_only_comparable_settings_and_budgets_together(tmp_path):
    from rnnbench.reports.leaderboard import leaderboard_frames

    store = ResultStore(tmp_path / "r.sqlite")
    _record(store, "rnn", 0, "completed", 0.9, length=20)
    _record(store, "lstm", 0, "completed", 0.5, length=50)
    _record(store, "gru", 0, "completed", 0.7, length=50, steps=200)
    tables = leaderboard_frames(store)
    assert len(tables) == 3
    assert all(len(table) == 1 for table in tables.values())
    assert any("task.length=50" in title and "steps=200" in title for title in tables)


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm", "bilstm"])
def test_dropout_between_fused_layers_draws_from_torch_like_the_fused_module(name):
    """With dropout, the fused plugins stack one-layer fused modules so that dropout draws from
    torch's generator (which a checkpoint restores) instead of cuDNN's: on a CPU the numbers are
    exactly those of the multi-layer fused module (same initialisation, same masks)."""
    from torch import nn
    from rnnbench.core import registry
    from rnnbench.core.contracts import SequenceBatch

    architecture = registry.get_architecture(name)()
    torch.manual_seed(0)
    stacked = architecture.build(5, 7, architecture.Options(num_layers=3, dropout=0.4))
    torch.manual_seed(0)
    extra = {"nonlinearity": "tanh"} if architecture.module is nn.RNN else {}
    fused = architecture.module(5, 7, num_layers=3, dropout=0.4, batch_first=True,
                                bidirectional=architecture.bidirectional, **extra)
    values, lengths = torch.randn(4, 9, 5), torch.tensor([9, 5, 9, 2])
    torch.manual_seed(1)
    ours = stacked(SequenceBatch(values, lengths)).outputs
    torch.manual_seed(1)
    packed = nn.utils.rnn.pack_padded_sequence(values, lengths, batch_first=True, enforce_sorted=False)
    theirs, _ = nn.utils.rnn.pad_packed_sequence(fused(packed)[0], batch_first=True, total_length=9)
    assert isinstance(stacked.rnn, nn.ModuleList)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("kill_at", ["batch:6", "validation:6", "validation:12"])
def test_a_run_killed_at_an_epochs_last_batch_resumes_with_the_next_epoch_in_its_own_order(kill_at, tmp_path):
    """96 items in batches of 16: 6 batches an epoch, validated every 6 steps. A kill right after a
    resume point written at the end of an epoch, before its validation (batch:6) or after it, must
    go on with the next epoch's order (not skip one) and validate where the run would have."""
    settings = {**SMALL_COPY, "trainer.val_every_steps": "6", "optim.schedule": "constant"}
    reference = runner.run("gru", "copy", settings, store=tmp_path / "a" / "r.sqlite", progress=False)
    store = tmp_path / "b" / "r.sqlite"
    process = subprocess.run(_cli_command(tmp_path, store, "gru", settings), cwd=ROOT,
                             env={**os.environ, "KILL_AFTER_RESUME_POINT_AT": kill_at}, capture_output=True, text=True)
    assert process.returncode == -signal.SIGKILL, process.stderr
    resumed = runner.run("gru", "copy", settings, store=store, progress=False)
    assert resumed.metrics == reference.metrics

    def rounds(path: Path) -> list[tuple[int, float]]:   # every validation, where and what it measured
        return [(step, value) for _, step, name, value in ResultStore(path).history(reference.run_id)
                if name == "val/loss"]

    assert [step for step, _ in rounds(store)] == [6, 12, 18, 24]
    assert rounds(store) == rounds(tmp_path / "a" / "r.sqlite")
