"""Sweeps: sweep files, the plan, long-lived workers, claims, crashes, tuning (issue 10)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import sweep_plugins  # noqa: F401  (registers test-sweep-crash and test-sweep-missing-data)
from helpers import QUICK
from rnnbench import cli
from rnnbench.core.errors import BenchmarkError
from rnnbench.reports.leaderboard import leaderboard_frames, render
from rnnbench.store import ResultStore
from rnnbench.sweeps.plan import plan, plan_sweep
from rnnbench.sweeps.spec import load, parse
from rnnbench.sweeps.workers import execute

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _quick_file(tmp_path: Path, **extra) -> Path:
    return _write(tmp_path, {"name": "t", "architectures": ["rnn", "gru"], "tasks": ["adding"],
                             "seeds": 2, "set": dict(QUICK), **extra})


# --------------------------------------------------------------------------- sweep files


@pytest.mark.parametrize("document, message", [
    ({"architecture": ["rnn"]}, "unknown key 'architecture'. Did you mean 'architectures'?"),
    ({"architectures": ["lstmm"]}, "unknown architecture 'lstmm' in architectures. Did you mean 'lstm'?"),
    ({"tasks": ["coppy"]}, "unknown task 'coppy' in tasks. Did you mean 'copy'?"),
    ({"seeds": "three"}, "seeds must be a count"),
    ({"seeds": 0}, "seeds must be between 1"),
    ({"set": {"lr": 0.1}}, "'lr' is not a setting"),
    ({"set": {"optim.lr": [0.1]}}, "set.optim.lr must be a single value"),
    ({"vary": {"task.length": 50}}, "vary.task.length must be a non-empty list"),
    ({"budget": {"step": 10}}, "unknown budget 'step'. Did you mean 'steps'?"),
    ({"budget": {"steps": "many"}}, "budget.steps must be a number"),
    ({"tune": {"trials": 4, "space": {"optim.lr": {"loguniform": [0.001, 0.1]}}}},
     "unknown distribution 'loguniform' in tune.space.optim.lr. Did you mean 'log_uniform'?"),
    ({"tune": {"trials": 4, "space": {"optim.lr": {"log_uniform": [0, 0.1]}}}}, "needs a positive low"),
    ({"tune": {"trials": "4", "space": {"optim.lr": {"uniform": [0.1, 0.2]}}}}, "tune.trials must be a whole number"),
    ({"tasks": ["copy", "adding"], "overrides": {"architectures": {"rnn": {"tasks": ["narma10"]}}}},
     "overrides.architectures.rnn.tasks names narma10, which the sweep's tasks do not include"),
    ({"overrides": {"architectures": {"rnn": {"tasks": ["addding"]}}}}, "Did you mean 'adding'?"),
    ({"tune": {"trials": 4, "sampler": "grid", "space": {"optim.lr": {"uniform": [0.1, 0.2]}}}},
     "unknown tune.sampler 'grid'"),
    ({"overrides": {"task": {}}}, "unknown key 'overrides.task'. Did you mean 'tasks'?"),
    (["rnn"], "expected a mapping of keys"),
    ({"set": {"trainer.max_steps": -5}, "budget": {"steps": 5}},
     "trainer.max_steps is given in set and by budget"),
    ({"set": {"trainer.max_epochs": 3}, "budget": {"steps": 5}}, "trainer.max_epochs is given in set and by budget"),
    ({"set": {"optim.lr": 0.1}, "tune": {"trials": 2, "space": {"optim.lr": {"uniform": [0.1, 0.2]}}}},
     "optim.lr is both fixed and tuned"),
    ({"params": "20k", "tune": {"trials": 2, "space": {"arch.hidden_size": {"int": [4, 8]}}}},
     "params chooses the hidden size, and tune.space tunes arch.hidden_size"),
    ({"params": "20k", "vary": {"arch.hidden_size": [4, 8]}}, "chooses the hidden size, and arch.hidden_size is given too"),
    ({"set": {"task.length": 5}, "vary": {"task.length": [5, 6]}}, "task.length is both fixed in set and varied"),
    ({"vary": {"task.length": [5, 6]}, "overrides": {"tasks": {"copy": {"task.length": 7}}}},
     "overrides.tasks.copy fixes task.length, which the sweep varies"),
    ({"architectures": ["rnn"], "overrides": {"architectures": {"lstm": {"arch.forget_bias": 1}}}},
     "overrides.architectures names lstm, which the sweep's architectures do not include"),
    ({"tasks": ["copy"], "overrides": {"tasks": {"adding": {"task.length": 7}}}},
     "overrides.tasks names adding, which the sweep's tasks do not include"),
])
def test_a_bad_sweep_file_is_refused_with_one_line_naming_the_key(document, message):
    with pytest.raises(BenchmarkError, match=message.replace("(", r"\(").replace("?", r"\?").replace(".", r"\.")):
        parse(document, source="s.yaml")


def test_bad_yaml_and_bad_settings_are_one_line_errors_on_the_command_line(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("tasks: [copy\nseeds: 2\n")
    assert cli.main(["sweep", str(broken), "--store", str(tmp_path / "r.sqlite")]) == 2
    assert "is not valid YAML at line" in capsys.readouterr().err
    unknown = _quick_file(tmp_path, set={**QUICK, "optim.lrr": 0.1})
    assert cli.main(["sweep", str(unknown), "--dry-run", "--store", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "optim.lrr" in err and "Did you mean 'optim.lr'" in err and len(err.strip().splitlines()) == 1
    both = _quick_file(tmp_path)
    assert cli.main(["sweep", str(both), "--tasks", "copy", "--store", str(tmp_path / "r.sqlite")]) == 2
    assert "--tasks cannot be combined with a sweep file" in capsys.readouterr().err
    assert cli.main(["sweep", str(both), "--address", "10.0.0.1:6379", "--store", str(tmp_path / "r.sqlite")]) == 2
    assert "--address and --storage belong to the Ray backend: add --backend ray" in capsys.readouterr().err
    assert cli.main(["sweep", str(both), "--workers", "0", "--store", str(tmp_path / "r.sqlite")]) == 2
    assert "--workers" in capsys.readouterr().err


def _without(settings: dict[str, str], *keys: str) -> dict[str, str]:
    """`settings` less `keys`: what a sweep file may fix beside a budget, a grid or a search
    space that gives those keys their values."""
    return {key: value for key, value in settings.items() if key not in keys}


def test_a_file_plans_its_grid_overrides_budget_and_parameter_budget(tmp_path):
    spec = parse({"architectures": ["rnn", "gru"], "tasks": ["adding"], "seeds": [3, 5],
                  "set": _without(QUICK, "trainer.max_steps", "arch.hidden_size", "task.length"),
                  "budget": {"epochs": 2}, "params": "2k",
                  "vary": {"task.length": [6, 8]},
                  "overrides": {"architectures": {"gru": {"optim.lr": 0.01}}}})
    runs = plan_sweep(spec).runs
    assert len(runs) == 2 * 2 * 2
    assert {run.seed for run in runs} == {3, 5}
    assert {run.config["task.length"] for run in runs} == {6, 8}
    assert all(run.config["trainer.max_epochs"] == 2 and run.config["trainer.max_steps"] is None
               for run in runs)
    assert all(run.config["arch.params"] == 2000 for run in runs)
    assert {run.config["optim.lr"] for run in runs if run.architecture == "gru"} == {0.01}
    assert {run.config["optim.lr"] for run in runs if run.architecture == "rnn"} == {1e-3}
    assert runs[0].label == "rnn on adding (task.length=6, seed 3)"     # what the sweep prints


def test_an_architecture_override_can_restrict_the_architecture_to_some_tasks(tmp_path):
    spec = load(_write(tmp_path, {"architectures": ["rnn", "gru"], "tasks": ["copy", "adding"], "seeds": 1,
                                  "set": dict(QUICK),
                                  "overrides": {"architectures": {"gru": {"tasks": ["adding"],
                                                                          "arch.hidden_size": 4}}}}))
    pairs = sorted((run.architecture, run.task) for run in plan_sweep(spec).runs)
    assert pairs == [("gru", "adding"), ("rnn", "adding"), ("rnn", "copy")]
    assert spec.architecture_settings["gru"] == {"arch.hidden_size": "4"}   # the rest still applies


def test_the_flags_are_shorthand_for_the_same_plan(tmp_path):
    from_file = plan_sweep(load(_quick_file(tmp_path))).runs
    assert [run.run_id for run in from_file] == [run.run_id for run in plan(["rnn", "gru"], ["adding"],
                                                                            [0, 1], QUICK, None)]


def test_the_committed_main_job_file_plans_every_architecture_on_the_probes():
    spec = load(ROOT / "leaderboards" / "quick" / "sweep.yaml")
    from rnnbench.core import registry

    runs = [run for run in plan_sweep(spec).runs if not run.architecture.startswith("test-")]
    pairs = {(name, task) for name, cls in registry.architectures().items() for task in ("copy", "adding")
             if not name.startswith("test-") and registry.pair_compatibility(cls, registry.get_task(task)).ok}
    assert spec.name == "quick" and len(pairs) >= 40   # the classic and the modern architectures
    assert sorted((run.architecture, run.task, run.seed) for run in runs) == \
        sorted((name, task, seed) for name, task in pairs for seed in (0, 1))


# --------------------------------------------------------------------------- the plan


def test_dry_run_prints_the_plan_with_an_estimate_and_runs_nothing(tmp_path, capsys):
    path, store_path = _quick_file(tmp_path), tmp_path / "r.sqlite"
    assert cli.main(["sweep", str(path), "--dry-run", "--store", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert "sweep t: 4 runs planned" in out and "0 completed, 4 to do" in out
    assert "estimated time: unknown" in out
    store = ResultStore(store_path)
    assert store.runs_frame().empty and store.sweep_spec("t") is None   # nothing recorded
    # one run done (by hand): the plan counts it and estimates the rest from its wall time
    first = plan(["rnn"], ["adding"], [0], QUICK, None)[0]
    store.start_run(run_id=first.run_id, config_id=first.config_id, architecture="rnn", task="adding",
                    architecture_version=1, task_version=first.task_version, seed=0, preset=None,
                    config=first.config, task_info={})
    store.finish_run(first.run_id, "completed", metrics={"test/mse": 0.1}, wall_time_s=40.0)
    assert cli.main(["sweep", str(path), "--dry-run", "--workers", "2", "--store", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert "1 completed, 3 to do" in out
    assert "estimated time: 20 s for 1 runs with 2 worker(s)" in out and "2 runs without an estimate" in out


def test_a_sweep_records_its_plan_and_status_says_where_it_stands(tmp_path, capsys):
    path, store_path = _quick_file(tmp_path), str(tmp_path / "r.sqlite")
    assert cli.main(["sweep", str(path), "--store", store_path, "--no-progress", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "sweep t done: 4 completed" in out
    assert out.count(": completed, test mse") == 4      # a line per finished run, with its metric
    store = ResultStore(store_path)
    frame = store.sweep_frame("t")
    assert len(frame) == 4 and set(frame.status) == {"completed"} and set(frame.role) == {"run"}
    runs = store.runs_frame()
    assert len(set(runs.pid)) == 2 and os.getpid() not in set(runs.pid)   # two workers, many runs each
    assert cli.main(["sweep", "status", str(path), "--store", store_path]) == 0
    out = capsys.readouterr().out
    assert "4 of 4 runs completed" in out and "adding / gru" in out and "2 completed" in out
    # started again: nothing to do, every run skipped
    assert cli.main(["sweep", str(path), "--store", store_path, "--no-progress"]) == 0
    assert "sweep t done: 4 skipped" in capsys.readouterr().out
    # finished runs keep only their best checkpoint
    assert sorted(path.name for path in (tmp_path / "checkpoints").rglob("*.ckpt")) == ["best.ckpt"] * 4


def test_the_leaderboard_ranks_a_sweeps_seeds(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    runs = plan(["rnn", "bilstm"], ["adding"], [0, 1], QUICK, None)
    assert execute(runs, store, progress=False) == {"completed": 4}
    adding = leaderboard_frames(store)["adding"]
    assert set(adding.architecture) == {"rnn", "bilstm"} and list(adding.seeds) == [2, 2]
    means = list(adding["mse (mean)"])
    assert means == sorted(means)


def test_the_leaderboard_says_how_many_seeds_a_sweep_planned_and_ranks_short_ones_last(tmp_path, capsys):
    path, store_path = _quick_file(tmp_path), str(tmp_path / "r.sqlite")
    assert cli.main(["sweep", str(path), "--store", store_path, "--no-progress"]) == 0
    store = ResultStore(store_path)
    gru_seed_1 = [run for run in plan_sweep(load(path)).runs if run.architecture == "gru" and run.seed == 1][0]
    with store._connect() as db:   # as if that seed had never run
        db.execute("DELETE FROM runs WHERE run_id = ?", (gru_seed_1.run_id,))
    board = leaderboard_frames(store)["adding"]
    assert list(board.architecture) == ["rnn", "gru"]          # the short configuration last
    assert list(board.seeds) == [2, 1] and list(board.planned) == [2, 2]


# --------------------------------------------------------------------------- failures, isolated


def test_a_run_that_kills_its_worker_is_recorded_as_failed_and_the_worker_replaced(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    runs = (plan(["rnn"], ["adding"], [0], QUICK, None) + plan(["test-sweep-crash"], ["adding"], [0], QUICK, None)
            + plan(["gru"], ["adding"], [0], QUICK, None))
    outcomes = execute(runs, store, progress=False, check=False)
    assert outcomes == {"completed": 2, "failed": 1}
    crashed = store.get(runs[1].run_id)
    assert crashed.status == "failed" and "killed by signal 9 (SIGKILL)" in crashed.error
    assert [line for line in outcomes.errors if "test-sweep-crash" in line]
    assert store.get(runs[2].run_id).status == "completed"   # run by the replacement worker


def test_a_run_that_fails_before_recording_itself_is_recorded(tmp_path, capsys):
    store = str(tmp_path / "r.sqlite")
    code = cli.main(["sweep", "--architectures", "rnn,gru", "--tasks", "test-sweep-missing-data",
                     "--store", store, "--no-progress", *_sets(QUICK)])
    out = capsys.readouterr().out
    assert code == 1 and "2 failed" in out and "dataset 'adding-files' is missing" in out
    rows = ResultStore(store).runs_frame()
    assert sorted(rows.status) == ["failed", "failed"]
    assert all("rnnbench data fetch adding-files" in error for error in rows.error)


def test_a_diverging_run_is_isolated_and_named_in_the_summary(tmp_path, capsys):
    path = _write(tmp_path, {"name": "d", "architectures": ["rnn", "gru"], "tasks": ["adding"],
                             "set": dict(QUICK), "overrides": {"architectures": {
                                 "rnn": {"optim.lr": 1e12, "optim.clip_norm": "none"}}}})
    code = cli.main(["sweep", str(path), "--store", str(tmp_path / "r.sqlite"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert "1 completed, 1 diverged" in out
    assert "rnn on adding (seed 0): diverged:" in out


def _sets(settings: dict[str, str]) -> list[str]:
    return [part for key, value in settings.items() for part in ("--set", f"{key}={value}")]


# --------------------------------------------------------------------------- claims


def test_a_claim_is_atomic_and_a_dead_holder_loses_it(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert store.claim("run-1", child.pid) is None
        assert store.claim("run-1", os.getpid()) is not None        # held by a live process
        assert store.claim_holder("run-1")[1] == child.pid
    finally:
        child.kill()
        child.wait()
    assert store.claim_holder("run-1") is None                       # its holder is gone
    assert store.claim("run-1", os.getpid()) is None
    store.release("run-1", os.getpid())
    assert store.claim_holder("run-1") is None


def _sweep_command(path: Path, store: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rnnbench.cli", "sweep", str(path), "--store", str(store),
            "--no-progress", *extra]


@pytest.mark.slow
def test_two_sweeps_on_one_store_at_once_train_every_run_once(tmp_path):
    path = _write(tmp_path, {"name": "both", "architectures": ["rnn", "gru", "lstm"], "tasks": ["adding"],
                             "seeds": 2, "set": dict(QUICK)})
    store = tmp_path / "r.sqlite"
    ResultStore(store)
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    sweeps = [subprocess.Popen(_sweep_command(path, store), stdout=subprocess.PIPE, text=True,
                               env=environment) for _ in range(2)]
    outputs = [process.communicate(timeout=600)[0] for process in sweeps]
    assert [process.returncode for process in sweeps] == [0, 0], outputs
    trained = sum(output.count(": completed, test mse") for output in outputs)
    assert trained == 6, outputs                   # six runs planned, each trained by one sweep
    assert set(ResultStore(store).runs_frame().status) == {"completed"}


@pytest.mark.slow
def test_a_sweep_killed_at_random_moments_finishes_with_nothing_lost_or_repeated(tmp_path):
    path = _write(tmp_path, {"name": "kill", "architectures": ["rnn", "gru", "lstm"], "tasks": ["adding"],
                             "seeds": 2, "set": {**QUICK, "trainer.max_steps": 60,
                                                 "trainer.val_every_steps": 20}})
    store_path = tmp_path / "r.sqlite"
    rng = random.Random(0)
    completed: dict[str, float] = {}
    for attempt in range(3):
        process = subprocess.Popen(_sweep_command(path, store_path, "--workers", "2"),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(6.0, 14.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        time.sleep(2.0)   # the orphaned workers stop at a clean point and record their runs
        runs = ResultStore(store_path).runs_frame()
        for row in runs.itertuples():
            if row.status == "completed":
                # a completed run is never run again: its finish time stays what it was
                assert completed.setdefault(row.run_id, row.finished_at) == row.finished_at
    final = subprocess.run(_sweep_command(path, store_path, "--workers", "2"), capture_output=True, text=True,
                           timeout=600)
    assert final.returncode == 0, final.stdout + final.stderr
    runs = ResultStore(store_path).runs_frame()
    assert len(runs) == 6 and set(runs.status) == {"completed"}
    for run_id, finished in completed.items():
        assert runs.set_index("run_id").finished_at[run_id] == finished


def _sigint_as_in_a_terminal() -> None:
    """A command typed in a terminal starts with SIGINT at its default action; one started in the
    background by a shell script (`pytest ... &`, as a CI job may be) inherits it ignored, and then
    Python leaves SIGINT ignored in the sweep's driver too, which this test is not about."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_within_seconds_with_their_runs_recorded(tmp_path):
    path = _write(tmp_path, {"name": "stop", "architectures": ["rnn", "gru"], "tasks": ["adding"],
                             "set": {**QUICK, "trainer.max_steps": 100000, "trainer.val_every_steps": 50,
                                     "trainer.early_stopping": False}})
    store_path = tmp_path / "r.sqlite"
    process = subprocess.Popen(_sweep_command(path, store_path, "--workers", "2"), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               preexec_fn=_sigint_as_in_a_terminal)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:   # both runs training
        time.sleep(1.0)
        if store_path.exists() and (ResultStore(store_path).runs_frame().status == "running").sum() == 2:
            break
    time.sleep(3.0)
    stopped = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)   # what Ctrl-C in a terminal does: the whole group
    output = process.communicate(timeout=60)[0]
    assert time.monotonic() - stopped < 15, output
    assert process.returncode == 130, output
    runs = ResultStore(store_path).runs_frame()
    assert list(runs.status) == ["interrupted", "interrupted"]
    assert all((tmp_path / "checkpoints" / run_id / "last.ckpt").exists() for run_id in runs.run_id)


# --------------------------------------------------------------------------- tuning


def _tuning_file(tmp_path: Path, trials: int) -> Path:
    return _write(tmp_path, {"name": "tuned", "architectures": ["rnn", "gru"], "tasks": ["adding"],
                             "seeds": [0, 1], "set": _without(QUICK, "arch.hidden_size"),   # tuned
                             "tune": {"trials": trials, "sampler": "random",
                                      "space": {"optim.lr": {"log_uniform": [1e-4, 3e-1]},
                                                "arch.hidden_size": {"int": [4, 12]}}}})


def test_tuning_gives_each_pair_the_same_trials_and_reruns_the_best_by_validation(tmp_path, capsys):
    store_path = str(tmp_path / "r.sqlite")
    path = _tuning_file(tmp_path, trials=3)
    assert cli.main(["sweep", str(path), "--dry-run", "--store", store_path]) == 0
    assert "2 (architecture, task) pairs x 3 trials" in capsys.readouterr().out
    assert cli.main(["sweep", str(path), "--store", store_path, "--no-progress", "--workers", "2"]) == 0
    store = ResultStore(store_path)
    frame = store.sweep_frame("tuned")
    tuning = store.tuning_frame("tuned").set_index("architecture")
    for architecture in ("rnn", "gru"):
        trials = frame[(frame.architecture == architecture) & (frame.role == "trial")]
        assert sorted(trials.trial) == [0, 1, 2] and set(trials.status) == {"completed"}
        scores = {row.run_id: row.metrics["val/mse"] for row in trials.itertuples()}
        best_trial = min(scores, key=scores.get)            # adding: lower mse is better
        best = frame[(frame.architecture == architecture) & (frame.role == "best")]
        assert sorted(best.seed) == [0, 1] and set(best.status) == {"completed"}
        assert best_trial in set(best.run_id)               # seed 0 of the best is its trial
        assert tuning.trials[architecture] == 3 and tuning.best_run_id[architecture] == best_trial
        assert set(tuning.importances[architecture]) <= {"optim.lr", "arch.hidden_size"}
        assert "test/mse" in frame[frame.run_id == best_trial].metrics.iloc[0]
    # the leaderboard ranks each pair's best configuration over its seeds, not the trials
    board = leaderboard_frames(store)["adding"]
    assert sorted(board.architecture) == ["gru", "rnn"]
    assert list(board.seeds) == [2, 2] and list(board.planned) == [2, 2]
    assert board.attrs["tuned"] and "Untuned" not in render(store, "adding")
    # beside each tuned row: its trials, how many diverged, and the learning rates near its best
    robust = {note["architecture"]: note for note in board.attrs["robustness"]}
    assert set(robust) == {"gru", "rnn"} and all(note["trials"] == 3 for note in robust.values())
    assert all(1 <= note["within"] <= 3 and note["lr_low"] <= note["lr_high"] for note in robust.values())
    assert "Robustness of gru: " in render(store, "adding")


def test_a_tuning_sweep_started_again_continues_the_same_study(tmp_path):
    """Trials already run are replayed from the store: a study grown from 1 trial to 3 across two
    sweeps draws what one sweep of 3 trials draws."""
    one_go, in_two = ResultStore(tmp_path / "a.sqlite"), ResultStore(tmp_path / "b.sqlite")
    assert cli.main(["sweep", str(_tuning_file(tmp_path, 3)), "--store", str(one_go.path), "--no-progress",
                     "--no-check"]) == 0
    assert cli.main(["sweep", str(_tuning_file(tmp_path, 1)), "--store", str(in_two.path), "--no-progress",
                     "--no-check"]) == 0
    started = set(in_two.runs_frame().run_id)
    assert cli.main(["sweep", str(_tuning_file(tmp_path, 3)), "--store", str(in_two.path), "--no-progress",
                     "--no-check"]) == 0
    trials = lambda store: {(row.architecture, row.trial): row.run_id for row in
                            store.sweep_frame("tuned").itertuples() if row.role == "trial"}
    assert trials(one_go) == trials(in_two)
    assert started <= set(in_two.runs_frame().run_id)


def test_successive_halving_trains_the_best_trials_longer_and_picks_from_the_last_rung(tmp_path, capsys):
    """tune.halving (issue 24): 4 trials at 3 of the 6 steps, the best 2 by validation again at
    6 steps, and the best of those runs every seed; started again, nothing is chosen anew."""
    store_path = str(tmp_path / "r.sqlite")
    path = _write(tmp_path, {"name": "halved", "architectures": ["gru"], "tasks": ["adding"], "seeds": [0, 1],
                             "set": _without(QUICK, "arch.hidden_size"),
                             "tune": {"trials": 4, "sampler": "random", "halving": {"rungs": 2, "eta": 2},
                                      "space": {"optim.lr": {"log_uniform": [1e-4, 3e-1]},
                                                "arch.hidden_size": {"int": [4, 12]}}}})
    assert cli.main(["sweep", str(path), "--dry-run", "--store", store_path]) == 0
    dry = capsys.readouterr().out
    assert "successive halving: 4 at 3 steps, then 2 at 6 steps (6 trial runs per pair)" in dry
    assert cli.main(["sweep", str(path), "--store", store_path, "--no-progress", "--no-check"]) == 0
    store = ResultStore(store_path)
    frame = store.sweep_frame("halved")
    trials = frame[frame.role == "trial"]
    rungs = trials.params.map(lambda params: params["rung"])
    first, second = trials[rungs == 0], trials[rungs == 1]
    runs = store.runs_frame().set_index("run_id").config
    assert {runs[run_id]["trainer.max_steps"] for run_id in first.run_id} == {3}
    assert {runs[run_id]["trainer.max_steps"] for run_id in second.run_id} == {6}
    assert sorted(first.trial) == [0, 1, 2, 3] and len(second) == 2
    scores = dict(zip(first.trial, first.metrics.map(lambda metrics: metrics["val/mse"])))
    assert sorted(second.trial) == sorted(sorted(scores, key=scores.get)[:2])     # the best half went on
    final = dict(zip(second.trial, second.metrics.map(lambda metrics: metrics["val/mse"])))
    winner = second.run_id[second.trial == min(final, key=final.get)].iloc[0]
    best = frame[frame.role == "best"]
    assert sorted(best.seed) == [0, 1] and winner in set(best.run_id)
    board = render(store, "adding")
    assert "Successive halving: 4 at 3 steps, then 2 at 6 steps." in board
    assert "of 4 trials within 5% of its best validation score at the first rung's 3 steps" in board
    planned = len(frame)
    capsys.readouterr()
    assert cli.main(["sweep", str(path), "--dry-run", "--store", store_path]) == 0   # its estimate knows it is done
    assert "nothing to do: every planned run is completed" in capsys.readouterr().out
    assert cli.main(["sweep", str(path), "--store", store_path, "--no-progress", "--no-check"]) == 0
    assert len(ResultStore(store_path).sweep_frame("halved")) == planned


def test_halving_needs_the_budget_in_steps(tmp_path, capsys):
    path = _write(tmp_path, {"name": "halved", "architectures": ["gru"], "tasks": ["adding"], "seeds": 1,
                             "tune": {"trials": 4, "halving": {"rungs": 2, "eta": 2},
                                      "space": {"optim.lr": {"log_uniform": [1e-4, 3e-1]}}}})
    assert cli.main(["sweep", str(path), "--dry-run"]) == 2
    assert "add budget: {steps: N}" in capsys.readouterr().err
    path = _write(tmp_path, {"name": "halved", "architectures": ["gru"], "tasks": ["adding"], "seeds": 1,
                             "budget": {"steps": 9},
                             "tune": {"trials": 4, "halving": {"rungs": 1, "eta": 2},
                                      "space": {"optim.lr": {"log_uniform": [1e-4, 3e-1]}}}})
    assert cli.main(["sweep", str(path), "--dry-run"]) == 2
    assert "tune.halving.rungs must be a whole number from 2 to 6" in capsys.readouterr().err


def test_halving_rungs_and_survivors():
    from rnnbench.sweeps.halving import rung_sizes, rung_steps, survivors
    from rnnbench.sweeps.spec import Halving

    assert rung_sizes(27, Halving(3, 3)) == [27, 9, 3] and rung_sizes(5, Halving(3, 3)) == [5, 1, 1]
    assert rung_steps(900, Halving(3, 3)) == [100, 300, 900] and rung_steps(2, Halving(3, 3)) == [1, 1, 2]
    scores = {0: 0.5, 1: None, 2: 0.1, 3: 0.5, 4: 0.9}
    assert survivors(scores, 3, "min") == [2, 0, 3] and survivors(scores, 2, "max") == [4, 0]
    assert survivors(scores, 5, "min")[-1] == 1          # a failed trial ranks last


# --------------------------------------------------------------------------- tracking


def test_a_wandb_offline_sweep_writes_a_run_directory_per_run_grouped_by_sweep(tmp_path, monkeypatch, capsys):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    path = _write(tmp_path, {"name": "tracked", "architectures": ["gru"], "tasks": ["adding"], "seeds": 2,
                             "set": dict(QUICK)})
    assert cli.main(["sweep", str(path), "--store", str(tmp_path / "r.sqlite"), "--no-progress", "--wandb"]) == 0
    directories = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(directories) == 2
    run_ids = set(ResultStore(tmp_path / "r.sqlite").runs_frame().run_id)
    assert {directory.name.rsplit("-", 1)[-1] for directory in directories} == run_ids


def test_tensorboard_event_files_land_beside_the_store_per_sweep_and_run(tmp_path):
    pytest.importorskip("tensorboardX")
    path = _write(tmp_path, {"name": "boards", "architectures": ["gru"], "tasks": ["adding"], "seeds": 2,
                             "set": dict(QUICK)})
    assert cli.main(["sweep", str(path), "--store", str(tmp_path / "r.sqlite"), "--no-progress",
                     "--tensorboard"]) == 0
    for seed in (0, 1):
        folder = tmp_path / "tensorboard" / "boards" / "gru" / "adding" / str(seed)
        assert list(folder.glob("events.out.tfevents.*")), sorted(tmp_path.rglob("*"))


def test_an_architecture_may_vary_a_setting_of_its_own(tmp_path):
    """The echo-state network with both readouts beside gradient-trained networks that have no
    closed-form readout (optim.optimizer=ridge would be refused for them)."""
    spec = parse({"architectures": ["esn", "gru"], "tasks": ["adding"], "seeds": 2, "set": dict(QUICK),
                  "overrides": {"architectures": {"esn": {"arch.hidden_size": 20,
                                                          "vary": {"optim.optimizer": ["ridge", "adam"]}}}}})
    runs = plan_sweep(spec).runs
    assert sorted((run.architecture, run.config["optim.optimizer"]) for run in runs if run.seed == 0) == [
        ("esn", "adam"), ("esn", "ridge"), ("gru", "adam")]
    assert {run.config["arch.hidden_size"] for run in runs if run.architecture == "esn"} == {20}
    with pytest.raises(BenchmarkError, match="overrides.architectures.esn.vary.optim.optimizer must be a non-empty list"):
        parse({"overrides": {"architectures": {"esn": {"vary": {"optim.optimizer": "ridge"}}}}})


def test_an_architecture_with_nothing_to_tune_runs_its_seeds_beside_the_tuned_ones(tmp_path, capsys):
    """`tune: false` in an architecture's override (issue 27: the ESN's closed-form readout has no
    learning rate): its pair runs one configuration with every seed, the others are tuned, and
    its table row says it was not tuned."""
    store_path = str(tmp_path / "r.sqlite")
    path = _write(tmp_path, {"name": "mixed", "architectures": ["gru", "esn"], "tasks": ["adding"],
                             "seeds": [0, 1], "set": dict(QUICK),
                             "tune": {"trials": 2, "sampler": "random",
                                      "space": {"optim.lr": {"log_uniform": [1e-3, 1e-1]}}},
                             "overrides": {"architectures": {"esn": {"tune": False, "optim.optimizer": "ridge",
                                                                       "arch.hidden_size": 20}}}})
    spec = load(path)
    assert spec.untuned == ["esn"] and spec.tunes("gru") and not spec.tunes("esn")
    sweep_plan = plan_sweep(spec)
    assert [pair.architecture for pair in sweep_plan.tuned] == ["gru"]
    assert {item.architecture for item in sweep_plan.runs} == {"esn"} and sweep_plan.planned == 2 + 2 + 2
    assert cli.main(["sweep", str(path), "--store", store_path, "--no-progress", "--no-check"]) == 0
    frame = ResultStore(store_path).sweep_frame("mixed")
    esn = frame[frame.architecture == "esn"]
    assert sorted(esn.seed) == [0, 1] and set(esn.role) == {"run"} and set(esn.status) == {"completed"}
    assert set(frame.role[frame.architecture == "gru"]) == {"trial", "best"}
    board = render(ResultStore(store_path), "adding")
    assert "Not tuned: esn (the sweep file's `tune: false`)" in board and "Untuned" not in board


@pytest.mark.parametrize("document, message", [
    ({"overrides": {"architectures": {"esn": {"tune": False}}}},
     "leaves out of tuning a sweep that tunes nothing"),
    ({"tune": {"trials": 2, "space": {"optim.lr": {"uniform": [0.1, 0.2]}}},
      "overrides": {"architectures": {"esn": {"tune": True}}}},
     "overrides.architectures.esn.tune may only be false"),
])
def test_tune_false_is_checked(tmp_path, document, message):
    with pytest.raises(BenchmarkError, match=message):
        load(_write(tmp_path, {"architectures": ["gru", "esn"], "tasks": ["adding"], **document}))
