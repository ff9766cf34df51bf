"""Every way a run can end is recorded as what it is (issue 14: divergence, failures, budgets)."""

from __future__ import annotations

import signal

import pytest

from helpers import QUICK
from rnnbench.training import runner
from rnnbench.training.module import DIVERGENCE_FACTOR
from rnnbench.core.errors import BenchmarkError, DivergedError, RunInterrupted
from rnnbench.store import ResultStore


def test_a_loss_that_explodes_is_diverged_not_completed(tmp_path):
    """Adam at lr=1e6 gives finite but enormous losses: more than DIVERGENCE_FACTOR times the
    first step's loss is divergence."""
    with pytest.raises(DivergedError, match="lower optim.lr"):
        runner.run("gru", "copy", {**QUICK, "optim.lr": "1e6", "optim.clip_norm": "none"},
                   store=tmp_path / "r.sqlite", progress=False)
    frame = ResultStore(tmp_path / "r.sqlite").runs_frame()
    assert list(frame.status) == ["diverged"]


def test_the_divergence_rule():
    module = runner.TrainingModule.__new__(runner.TrainingModule)
    module.initial_loss = 2.0
    assert not module.diverged(2.0 * DIVERGENCE_FACTOR)
    assert module.diverged(2.0 * DIVERGENCE_FACTOR * 1.01)
    assert module.diverged(float("nan")) and module.diverged(float("inf"))


def test_a_run_that_fails_while_its_trainer_is_built_is_recorded_as_failed(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no accelerator today")

    monkeypatch.setattr(runner.pl, "Trainer", broken)
    with pytest.raises(RuntimeError):
        runner.run("gru", "copy", QUICK, store=tmp_path / "r.sqlite", progress=False)
    record = ResultStore(tmp_path / "r.sqlite").runs_frame().iloc[0]
    assert record.status == "failed" and "no accelerator today" in record.error


@pytest.mark.parametrize("settings", [
    {"trainer.max_steps": "5", "trainer.val_every_steps": "100"},   # the budget ends first
    {"trainer.max_steps": "5", "trainer.val_every_steps": "none"},  # ends inside the first epoch
])
def test_every_run_ends_with_a_validation_whatever_the_interval(settings, tmp_path):
    result = runner.run("gru", "copy", {**QUICK, **settings, "task.train_size": "320"},
                        store=tmp_path / "r.sqlite", progress=False)
    assert "val/accuracy" in result.metrics and "test/accuracy" in result.metrics
    steps = {step for _, step, *_ in ResultStore(tmp_path / "r.sqlite").history(result.run_id)}
    assert steps == {5}


@pytest.mark.data("ud_english_ewt")
def test_a_tagging_budget_shorter_than_an_epoch_completes(tmp_path):
    result = runner.run("bilstm", "pos", {"trainer.max_steps": "5", "task.train_sentences": "400",
                                          "task.eval_sentences": "50", "arch.hidden_size": "8"},
                        preset="quick", store=tmp_path / "r.sqlite", progress=False)
    assert result.status == "completed" and "val/accuracy" in result.metrics


@pytest.mark.parametrize("setting", ["arch.num_layers=1e9", "arch.hidden_size=1e7"])
def test_a_model_too_large_for_memory_is_refused_before_it_is_built(setting, tmp_path):
    key, value = setting.split("=")
    with pytest.raises(BenchmarkError, match=r"would have about .* parameters.*lower arch"):
        runner.run("lstm", "copy", {**QUICK, key: value}, store=tmp_path / "r.sqlite", progress=False)
    assert not (tmp_path / "r.sqlite").exists() or ResultStore(tmp_path / "r.sqlite").runs_frame().empty


def test_an_estimate_of_a_stack_matches_the_built_model():
    from rnnbench.training.config import resolve
    from rnnbench.training.model import build_model, check_model_fits
    from rnnbench.core import registry

    for name in ("lstm", "deep_rnn"):
        architecture, task = registry.get_architecture(name), registry.get_task("copy")
        config = resolve(architecture, task, {"arch.num_layers": "3"})
        model = build_model(architecture(), task(config.task_options), config, 16)
        built = sum(t.numel() for t in (*model.parameters(), *model.buffers()))
        assert check_model_fits(architecture(), task(config.task_options), config, 16) == built


def test_an_interrupt_says_whether_the_run_was_recorded(tmp_path, monkeypatch):
    def ctrl_c(self, batch, index):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.TrainingModule, "training_step", ctrl_c)
    handler = signal.getsignal(signal.SIGINT)  # Lightning ignores SIGINT after a Ctrl-C
    try:
        with pytest.raises(RunInterrupted):
            runner.run("gru", "copy", QUICK, store=tmp_path / "r.sqlite", progress=False)
    finally:
        signal.signal(signal.SIGINT, handler)
    assert list(ResultStore(tmp_path / "r.sqlite").runs_frame().status) == ["interrupted"]


@pytest.mark.parametrize("argv", [
    ["check", "lstm", "--set", "arch.num_layers=1e9"],
    ["sweep", "--architectures", "lstm", "--tasks", "copy", "--set", "arch.num_layers=1e9"],
    ["run", "deep_rnn", "copy", "--set", "arch.num_layers=1e9"],
])
def test_no_command_hangs_on_a_huge_stack(argv, tmp_path, capsys):
    """The conformance check builds the encoder too: it estimates first, like the run."""
    from rnnbench.cli import main

    store = [] if argv[0] == "check" else ["--store", str(tmp_path / "r.sqlite")]
    assert main([*argv, *store]) == 2
    assert "parameters" in capsys.readouterr().err


def _cli_run(tmp_path, *settings: str) -> list[str]:
    argv = ["run", "gru", "copy", "--no-progress", "--store", str(tmp_path / "r.sqlite")]
    for setting in (*(f"{key}={value}" for key, value in QUICK.items()), *settings):
        argv += ["--set", setting]
    return argv


def test_exit_codes_tell_refused_input_from_runs_that_did_not_complete_and_internal_errors(
        tmp_path, capsys, monkeypatch):
    """2: refused input, nothing recorded; 1: a run that started and diverged or failed (recorded
    as such); 3: an internal error, with its traceback."""
    from rnnbench.cli import main

    assert main(_cli_run(tmp_path, "optim.lr=-1")) == 2
    assert not (tmp_path / "r.sqlite").exists()
    capsys.readouterr()

    assert main(_cli_run(tmp_path, "optim.lr=1e6", "optim.clip_norm=none")) == 1
    assert "diverged" in capsys.readouterr().err

    def broken(*args, **kwargs):
        raise RuntimeError("no accelerator today")

    monkeypatch.setattr(runner.pl, "Trainer", broken)
    assert main(_cli_run(tmp_path, "optim.lr=0.01")) == 1
    err = capsys.readouterr().err
    assert "recorded as failed" in err and "no accelerator today" in err
    assert sorted(ResultStore(tmp_path / "r.sqlite").runs_frame().status) == ["diverged", "failed"]

    def bug(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("rnnbench.cli.cmd_list", bug)
    assert main(["list"]) == 3
    assert "internal error" in capsys.readouterr().err


def test_a_reader_that_goes_away_ends_the_command_quietly():
    """`rnnbench list tasks | head -1`: no BrokenPipeError traceback, exit code 141 (as a shell
    reports a command killed by SIGPIPE)."""
    import subprocess
    import sys

    command = [sys.executable, "-c", "import sys; from rnnbench.cli import main; sys.exit(main(['list']))"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        process.stdout.close()   # the reader goes away before the listing is written
        err = process.stderr.read()
        assert process.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_a_best_checkpoint_worse_than_a_model_that_learned_nothing_diverged(tmp_path, monkeypatch):
    """The audit's Elman RNN on PTB: test perplexity 6.1e5, worse than the uniform guess over
    10,000 words, recorded as completed. A loss above the task's uninformed loss (ln V for a
    language model) is now recorded as diverged."""
    import math

    from rnnbench.core import registry

    copy = registry.get_task("copy")
    monkeypatch.setattr(copy, "uninformed_loss", lambda self: 0.01)   # any trained copy model is above it
    with pytest.raises(DivergedError, match="above the 0.01 of a model that learned nothing"):
        runner.run("gru", "copy", QUICK, store=tmp_path / "r.sqlite", progress=False)
    assert list(ResultStore(tmp_path / "r.sqlite").runs_frame().status) == ["diverged"]
    ptb = registry.get_task("ptb")
    assert ptb(ptb.Options()).uninformed_loss() == pytest.approx(math.log(10_000))


def test_a_run_records_why_it_stopped_and_whether_it_was_still_improving(tmp_path):
    """A learning rate too small to move the model: the validation loss stays flat, early
    stopping ends the run after its patience, and the run is not improving at its end. The same
    run without early stopping is stopped by its budget."""
    store = tmp_path / "r.sqlite"
    flat = {**QUICK, "optim.lr": "1e-12", "trainer.max_steps": "30", "trainer.val_every_steps": "3",
            "trainer.early_stopping": "true", "trainer.patience": "2"}
    runner.run("gru", "copy", flat, store=store, progress=False)
    runner.run("gru", "copy", {**flat, "trainer.early_stopping": "false"}, store=store, progress=False)
    first, second = (environment["convergence"] for environment in ResultStore(store).runs_frame().environment)
    assert first["stopped_by"] == "early_stopping" and first["rounds"] < 10
    assert second["stopped_by"] == "budget" and second["rounds"] == 10
    assert first["improving_at_end"] is False and second["improving_at_end"] is False


def test_a_run_records_how_often_clipping_acted(tmp_path):
    store = tmp_path / "r.sqlite"
    runner.run("gru", "copy", {**QUICK, "optim.clip_norm": "1e-9"}, store=store, progress=False)
    runner.run("gru", "copy", {**QUICK, "optim.clip_norm": "1e9"}, store=store, progress=False)
    runner.run("gru", "copy", {**QUICK, "optim.clip_norm": "none"}, store=store, progress=False)
    tight, loose, none = (environment.get("clipping") for environment in ResultStore(store).runs_frame().environment)
    steps = int(QUICK["trainer.max_steps"])
    assert tight == {"clipped": steps, "steps": steps} and loose == {"clipped": 0, "steps": steps}
    assert none is None
