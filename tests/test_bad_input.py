"""Issue 14: every bad input stops with one line naming the problem and the fix, exit 2, before
anything is written; system errors become messages; nothing hangs; every outcome is recorded.

The last test fuzzes a few hundred generated bad command lines over every subcommand, in process.
"""

from __future__ import annotations

import math
import random
import sqlite3
from dataclasses import dataclass
from typing import Annotated

import pytest

from helpers import QUICK
from rnnbench.core import registry
from rnnbench.cli import main
from rnnbench.training.config import resolve
from rnnbench.core.contracts import (AtLeast, Between, Positive, Probability, Architecture, Capabilities,
                             AllowNonFinite)
from rnnbench.core.errors import BenchmarkError, RunInterrupted
from rnnbench.store import ResultStore

LSTM, COPY = registry.get_architecture("lstm"), registry.get_task("copy")
# words by which an error line names its fix
FIX_WORDS = ("e.g.", "Did you mean", "use ", "pass ", "set ", "write ", "run ", "point ", "name ",
             "choose ", "train it", "Known ", "See ", "unset ", "move ", "give ", "remove ", "keep ", "fix ")


def _sets(settings):
    return [part for key, value in settings.items() for part in ("--set", f"{key}={value}")]


def _one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("rnnbench: error:"), err
    assert "Traceback" not in err
    assert any(word.lower() in err.lower() for word in FIX_WORDS), f"no fix named in: {err}"
    return err


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Nothing lands in the checkout's runs/; the environment is restored after each test."""
    monkeypatch.chdir(tmp_path)
    from rnnbench.toolkit import datasets as data

    monkeypatch.setenv("RNNBENCH_DATA", str(data.data_dir()))
    monkeypatch.delenv("RNNBENCH_STORE", raising=False)


# --------------------------------------------------------------------------- 1. values by meaning


@pytest.mark.parametrize("setting", [
    "task.length=-1", "task.length=0", "optim.lr=inf", "optim.lr=1e400", "optim.lr=nan",
    "optim.lr=-inf", "trainer.max_epochs=0", "trainer.max_time_s=0", "trainer.max_time_s=-1",
    "task.train_size=0", "task.train_size=-1", "arch.dropout=1.5", "arch.dropout=-0.5",
    "arch.dropout=nan", "arch.dropout=inf", "optim.clip_norm=-1", "task.eval_size=0",
    "trainer.val_every_steps=0", "arch.num_layers=0", "arch.hidden_size=0", "trainer.batch_size=-1",
    "trainer.patience=-1", "arch.params=0", "optim.weight_decay=-1", "optim.init_scale=0",
])
def test_values_are_checked_against_their_meaning(setting, capsys, tmp_path):
    store = tmp_path / "r.sqlite"
    assert main(["run", "lstm", "copy", "--store", str(store), "--no-progress",
                 *_sets(QUICK), "--set", setting]) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert setting.split("=")[0] in err
    assert not store.exists()


def test_max_steps_zero_is_refused_for_what_it_is_not_for_the_schedule(capsys, tmp_path):
    # adding uses the cosine schedule: the message used to be about the schedule
    assert main(["run", "rnn", "adding", "--store", str(tmp_path / "r.sqlite"), *_sets(QUICK),
                 "--set", "trainer.max_steps=0"]) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert "trainer.max_steps must be at least 1" in err and "cosine" not in err


def test_every_float_must_be_finite_and_every_int_is_a_count():
    for value in ("inf", "-inf", "nan", "1e400"):
        with pytest.raises(BenchmarkError, match="finite"):
            resolve(LSTM, COPY, {"optim.lr": value})
    with pytest.raises(BenchmarkError, match="expects an integer"):
        resolve(LSTM, COPY, {"task.length": "1e400"})
    assert resolve(LSTM, COPY, {"task.length": "1k"}).task_options.length == 1000


def test_a_plugins_own_options_get_the_same_checks():
    class Plugin(Architecture):
        name = "plugin"
        capabilities = Capabilities(causal=True, structures=("sequence",))

        @dataclass
        class Options:
            depth: Annotated[int, AtLeast(2)] = 2
            rate: Annotated[float, Probability] = 0.5
            scale: Annotated[float, Positive] | None = None
            window: Annotated[int, Between(1, 9)] = 3
            slope: Annotated[float, AllowNonFinite] = 1.0
            plain: float = 1.0

    for overrides, message in [({"arch.depth": "1"}, "arch.depth must be at least 2, got 1"),
                               ({"arch.rate": "1.01"}, "arch.rate must be a probability"),
                               ({"arch.scale": "0"}, "arch.scale must be positive"),
                               ({"arch.window": "10"}, "between 1 and 9"),
                               ({"arch.plain": "inf"}, "arch.plain must be a finite number")]:
        with pytest.raises(BenchmarkError, match=message):
            resolve(Plugin, COPY, overrides)
    config = resolve(Plugin, COPY, {"arch.slope": "inf", "arch.scale": "none", "arch.window": "9"})
    assert config.arch_options.slope == math.inf and config.arch_options.scale is None


def test_the_error_suggests_a_valid_value():
    with pytest.raises(BenchmarkError, match=r"e\.g\. task\.length=50"):
        resolve(LSTM, COPY, {"task.length": "0"})


@pytest.mark.parametrize("argv, message", [
    (["run", "lstm", "copy", "--params", ""], "arch.params"),
    (["run", "lstm", "copy", "--store", ""], "--store"),
    (["sweep", "--architectures", "", "--tasks", "copy"], "--architectures"),
    (["sweep", "--architectures", ",", "--tasks", "copy"], "--architectures"),
    (["sweep", "--architectures", "lstm", "--tasks", ""], "--tasks"),
    (["sweep", "--architectures", "lstm", "--tasks", "copy", "--seeds", "0"], "--seeds"),
    (["sweep", "--architectures", "lstm", "--tasks", "copy", "--seeds", "4294967296"], "--seeds"),
    (["diagnose", "gradients", "", "copy"], "architecture"),
])
def test_empty_values_are_errors_not_defaults(argv, message, capsys, tmp_path):
    assert main(argv) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert message in err
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- 2. system errors


def test_a_store_that_is_not_sqlite(capsys, tmp_path):
    junk = tmp_path / "notes.sqlite"
    junk.write_bytes(b"these are my notes, not a database" * 100)
    before = junk.read_bytes()
    for argv in (["leaderboard"], ["run", "lstm", "copy", *_sets(QUICK)],
                 ["sample", "abc"], ["sweep", "--architectures", "lstm", "--tasks", "copy"]):
        assert main([*argv, "--store", str(junk)]) == 2
        err = _one_error_line(capsys.readouterr().err)
        assert "not an rnnbench results store" in err and str(junk) in err
    assert junk.read_bytes() == before
    with pytest.raises(BenchmarkError):
        ResultStore(junk)


def test_a_store_in_a_read_only_place(capsys, tmp_path, monkeypatch):
    real_connect = sqlite3.connect

    def read_only(*args, **kwargs):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(sqlite3, "connect", read_only)
    assert main(["run", "lstm", "copy", *_sets(QUICK), "--store", str(tmp_path / "r.sqlite")]) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert "cannot write" in err and "--store" in err
    monkeypatch.setattr(sqlite3, "connect", real_connect)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "locked"))

    monkeypatch.setattr("pathlib.Path.mkdir", denied)
    assert main(["run", "lstm", "copy", *_sets(QUICK), "--store", str(tmp_path / "locked" / "r.sqlite")]) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert "Permission denied" in err and "--store" in err


def test_a_store_whose_folder_is_a_file(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    assert main(["run", "lstm", "copy", *_sets(QUICK), "--store", str(tmp_path / "file" / "r.sqlite")]) == 2
    _one_error_line(capsys.readouterr().err)


def test_a_store_of_another_schema_version_is_refused_untouched(capsys, tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:   # an older layout: no history or curves tables
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '0')")
        db.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY)")
    db.close()
    before = path.read_bytes()
    with pytest.raises(BenchmarkError, match="schema version 0"):
        ResultStore(path)
    assert main(["leaderboard", "--store", str(path)]) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert "schema version 0" in err
    assert path.read_bytes() == before
    with sqlite3.connect(path) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"meta", "runs"}


def test_data_directory_that_is_a_file(capsys, tmp_path, monkeypatch):
    file = tmp_path / "data.txt"
    file.write_text("x")
    monkeypatch.setenv("RNNBENCH_DATA", str(file))
    assert main(["data", "status"]) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert str(file) in err and "RNNBENCH_DATA" in err
    assert main(["--data-dir", str(file), "data", "status", "ptb"]) == 2
    _one_error_line(capsys.readouterr().err)
    assert main(["--data-dir", str(file), "run", "lstm", "ptb", "--store", str(tmp_path / "r.sqlite")]) == 2
    _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r.sqlite").exists()


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_seeds_are_within_numpys_range(seed, capsys, tmp_path):
    for argv in (["run", "lstm", "copy"], ["diagnose", "gradients", "lstm", "copy"], ["sample", "abc"]):
        assert main([*argv, "--seed", seed, "--store", str(tmp_path / "r.sqlite")]) == 2
        err = _one_error_line(capsys.readouterr().err)
        assert "--seed must be between 0 and 4294967295" in err
    assert not (tmp_path / "r.sqlite").exists()


def test_diagnose_output_directory_gets_the_plot_inside_and_says_where(capsys, tmp_path):
    folder = tmp_path / "plots"
    folder.mkdir()
    store = str(tmp_path / "r.sqlite")
    assert main(["diagnose", "gradients", "rnn", "copy", "--store", store, "--no-progress",
                 "--output", str(folder), *_sets(QUICK)]) == 0
    out = capsys.readouterr().out
    assert (folder / "gradients-copy.png").is_file()
    assert f"plot written to {folder / 'gradients-copy.png'}" in out
    # no suffix: the plot gets .png, and the message says so
    assert main(["diagnose", "gradients", "rnn", "copy", "--store", store, "--no-progress",
                 "--output", str(tmp_path / "flow"), *_sets(QUICK)]) == 0
    assert f"plot written to {tmp_path / 'flow.png'}" in capsys.readouterr().out
    assert (tmp_path / "flow.png").is_file()


def test_output_inside_a_file_is_refused_before_training(capsys, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr("rnnbench.training.runner.initial_model", _no_training)
    assert main(["diagnose", "gradients", "rnn", "copy", "--store", str(tmp_path / "r.sqlite"),
                 "--output", str(tmp_path / "file" / "plot.png"), *_sets(QUICK)]) == 2
    _one_error_line(capsys.readouterr().err)
    assert main(["leaderboard", "--store", str(tmp_path / "r.sqlite"), "--output", str(tmp_path)]) == 2
    _one_error_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- 3. no hangs


def test_sample_length_is_bounded(capsys, tmp_path):
    assert main(["sample", "abc", "--length", "100000000000", "--store", str(tmp_path / "r.sqlite")]) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert "10,000" in err
    from rnnbench.training.sampling import sample
    import torch
    with pytest.raises(BenchmarkError, match="10,000"):
        sample(None, torch.tensor([1]), 100_000_000_000)


@pytest.mark.parametrize("flag, value", [("--length", "0"), ("--length", "-3"), ("--temperature", "0"),
                                         ("--temperature", "nan"), ("--temperature", "inf"),
                                         ("--count", "0"), ("--count", "100000000")])
def test_sample_options_are_checked_first(flag, value, capsys, tmp_path):
    assert main(["sample", "abc", flag, value, "--store", str(tmp_path / "r.sqlite")]) == 2
    assert flag in _one_error_line(capsys.readouterr().err)


def test_interrupt_message_says_recorded_only_when_it_was(capsys, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("rnnbench.training.runner.run", interrupted)
    assert main(["run", "lstm", "copy", "--store", str(tmp_path / "r.sqlite")]) == 130
    err = capsys.readouterr().err
    assert "recorded" not in err and err.count("\n") == 1

    def recorded(*args, **kwargs):
        raise RunInterrupted()

    monkeypatch.setattr("rnnbench.training.runner.run", recorded)
    assert main(["run", "lstm", "copy", "--store", str(tmp_path / "r.sqlite")]) == 130
    assert "recorded as interrupted" in capsys.readouterr().err


# --------------------------------------------------------------------------- 4. JSON in the store


def _start(store, run_id):
    store.start_run(run_id=run_id, config_id="c", architecture="lstm", task="copy",
                    architecture_version=1, task_version=1, seed=0, preset=None,
                    config={"arch.hidden_size": 8}, task_info={"primary_metric": "accuracy",
                                                               "direction": "max"})


def test_non_finite_metrics_are_stored_as_null_and_json_extract_works(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    _start(store, "a")
    store.add_round("a", 5, {"val/loss": math.nan, "val/accuracy": 0.5})
    store.finish_run("a", "diverged", metrics={"val/loss": math.nan, "train/loss": math.inf,
                                               "val/accuracy": 0.5}, error="diverged",
                     environment={"x": math.nan})
    assert store.get("a").metrics == {"val/loss": None, "train/loss": None, "val/accuracy": 0.5}
    assert store.history("a") == [(0, 5, "val/accuracy", 0.5)]
    with sqlite3.connect(store.path) as db:
        raw = db.execute("SELECT metrics, environment FROM runs").fetchone()
        assert "NaN" not in "".join(raw) and "Infinity" not in "".join(raw)
        assert db.execute("SELECT json_extract(metrics, '$.\"val/accuracy\"') FROM runs").fetchall() == [(0.5,)]


def test_a_setting_declared_allow_non_finite_is_stored_as_text_and_reads_back(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    store.start_run(run_id="x", config_id="c", architecture="lstm", task="copy",
                    architecture_version=1, task_version=1, seed=0, preset=None,
                    config={"arch.slope": math.inf, "arch.hidden_size": 8}, task_info={})
    assert store.get("x").config == {"arch.slope": "inf", "arch.hidden_size": 8}
    from rnnbench.training.config import parse_value
    assert parse_value("arch.slope", "inf", Annotated[float, AllowNonFinite]) == math.inf
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT json_extract(config, '$.\"arch.slope\"') FROM runs").fetchone() == ("inf",)


def test_rows_written_with_bare_nan_tokens_are_repaired_when_the_store_opens(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    _start(store, "old")
    _start(store, "good")
    store.finish_run("good", "completed", metrics={"test/accuracy": 0.9})
    with sqlite3.connect(store.path) as db:   # what older rnnbench wrote
        db.execute("UPDATE runs SET status = 'diverged', metrics = ? WHERE run_id = 'old'",
                   ('{"train/loss": NaN, "val/loss": Infinity, "val/accuracy": 0.25}',))
    db.close()
    store = ResultStore(store.path)
    with sqlite3.connect(store.path) as db:
        values = db.execute("SELECT run_id, json_extract(metrics, '$.\"val/loss\"'), "
                            "json_extract(metrics, '$.\"val/accuracy\"') FROM runs ORDER BY run_id").fetchall()
    assert values == [("good", None, None), ("old", None, 0.25)]
    assert store.get("good").metrics == {"test/accuracy": 0.9}


# --------------------------------------------------------------------------- 5. every outcome recorded


def test_a_run_left_running_by_a_dead_process_is_recorded_as_interrupted(tmp_path):
    """A row a killed process left 'running' is found and closed when the next sweep starts."""
    from rnnbench.sweeps.plan import plan
    from rnnbench.sweeps.workers import execute

    planned = plan(["rnn"], ["copy"], [0], QUICK, None)
    store = ResultStore(tmp_path / "r.sqlite")
    _start(store, planned[0].run_id)
    with store._connect() as db:   # as if its process had died
        db.execute("UPDATE runs SET pid = ?", (_dead_pid(),))
    assert store.mark_stale_runs() == 1
    assert store.status_of(planned[0].run_id) == "interrupted"
    assert execute(planned, store, progress=False) == {"completed": 1}


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --------------------------------------------------------------------------- the fuzz


class _Trained(BaseException):
    """Raised if a bad command line got as far as building a model, downloading or writing."""


def _no_training(*args, **kwargs):
    raise _Trained("a bad command line got as far as training / writing")


_BAD_SETTINGS = {
    "task.length": ["0", "-1", "1.5", "abc", "", "nan", "inf", "1e400", "-1k"],
    "task.train_size": ["0", "-1", "x", "2.5"],
    "task.eval_size": ["0", "-3", "none"],
    "optim.lr": ["inf", "-inf", "nan", "1e400", "0", "-0.1", "", "fast", "1e-3x", "none"],
    "optim.clip_norm": ["-1", "0", "inf", "nan", "-inf"],
    "optim.weight_decay": ["-1", "inf"],
    "optim.momentum": ["-0.5", "nan"],
    "optim.optimizer": ["adma", "", "SGD2", "ridge"],
    "optim.schedule": ["cosin", "1"],
    "optim.init_scale": ["0", "-1", "inf"],
    "optim.decay_factor": ["0", "-1", "nan"],
    "optim.decay_start": ["0", "-2"],
    "optim.loss_reduction": ["sum"],
    "trainer.max_steps": ["0", "-5", "1.5", "inf", "nan"],
    "trainer.max_epochs": ["0", "-1"],
    "trainer.max_time_s": ["0", "-1", "nan", "inf", "-inf"],
    "trainer.val_every_steps": ["0", "-1"],
    "trainer.batch_size": ["0", "-8", "2.5", "", "none"],
    "trainer.patience": ["-1", "x"],
    "trainer.early_stopping": ["maybe", "2"],
    "trainer.precision": ["8", "fp16"],
    "arch.dropout": ["1.5", "-0.5", "nan", "inf", "1e400"],
    "arch.num_layers": ["0", "-1", "2.5", "1e400"],
    "arch.hidden_size": ["0", "-64", "1e400", "nan"],
    "arch.params": ["0", "-5", "abc", ""],
    "arch.embedding_size": ["0", "-1"],
    "optim.lrr": ["0.1"], "lr": ["0.1"], "arch.": ["1"], "bogus.key": ["1"], "task.lenght": ["5"],
    "": ["3"],
}
_BAD_VALUES = {"--seed": ["-1", "4294967296", "x", "1.5", "", "1e400"],
               "--params": ["", "0", "-1", "abc", "1.5", "nan", "inf"],
               "--preset": ["quik", "", "QUICK"]}


def _bad_set(rng):
    key = rng.choice(sorted(_BAD_SETTINGS))
    return ["--set", f"{key}={rng.choice(_BAD_SETTINGS[key])}"]


def _bad_run_options(rng, paths):
    choice = rng.randrange(10)
    if choice < 5:
        return _bad_set(rng)
    if choice == 5:
        return ["--set", rng.choice(["optim.lr", "=5", "noequals", "", "=", "optim.lr:0.1"])]
    if choice == 6:
        flag = rng.choice(sorted(_BAD_VALUES))
        return [flag, rng.choice(_BAD_VALUES[flag])]
    if choice == 7:
        return ["--store", rng.choice(["", paths["junk"], paths["inside_file"], paths["old"]])]
    if choice == 8:
        return [rng.choice(["--sett", "--lr", "--seed", "--set", "--store", "-x"])]
    return ["--seed", rng.choice(_BAD_VALUES["--seed"])]


def _fuzz_line(rng, paths):
    quick = _sets(QUICK)
    store = ["--store", paths["store"]]
    kind = rng.choice(["run", "run", "run", "sweep", "sweep", "diagnose", "leaderboard", "data",
                       "sample", "sample", "list", "top", "sweep_file", "sweep_file"])
    if kind in ("run", "sweep", "diagnose"):
        arch, task = rng.choice(["rnn", "gru", "lstm"]), rng.choice(["copy", "adding"])
        names = []
        if rng.random() < 0.15:
            arch = rng.choice(["lstn", "", "LSTM", ",", "rnn,lstn"])
        elif rng.random() < 0.15:
            task = rng.choice(["cpy", "", "ptbb", ",", "copy,"])
        elif rng.random() < 0.1:
            arch, task = "bilstm", "copy"
        else:
            names = None   # the names are fine: something else must be bad
        if kind == "run":
            line = ["run", arch, task, *store, "--no-progress", *quick]
        elif kind == "diagnose":
            line = ["diagnose", "gradients", arch, task, *store, "--no-progress", *quick]
        else:
            line = ["sweep", "--architectures", arch, "--tasks", task, "--seeds", "1", *store,
                    "--no-progress", *quick]
        extra = []
        if names is None or rng.random() < 0.5:
            if kind == "sweep" and rng.random() < 0.3:
                extra = rng.choice([["--seeds", "0"], ["--seeds", "-1"], ["--seeds", "x"],
                                    ["--seeds", "4294967297"], ["--seeds", "1001"], ["--architectures", ""],
                                    ["--tasks", ""], ["--vary", "task.length="],
                                    ["--vary", "task.length=0,5"], ["--vary", "bogus=1,2"],
                                    ["--vary", "noequals"], ["--vary", "optim.lr=nan"]])
            elif kind == "diagnose" and rng.random() < 0.2:
                extra = ["--output", paths["inside_file"] + "/plot.png"]
            else:
                extra = _bad_run_options(rng, paths)
            if kind == "sweep" and extra[:1] == ["--seed"]:
                extra = ["--seeds", extra[1]] if len(extra) > 1 else ["--seeds"]
        return line + extra
    if kind == "leaderboard":
        return ["leaderboard", *store] + rng.choice([
            ["--format", rng.choice(["xml", "", "MD"])], ["--task", rng.choice(["cpy", "", "nonesuch"])],
            ["--output", paths["folder"]], ["--output", paths["inside_file"] + "/board.md"],
            ["--store", rng.choice(["", paths["junk"], paths["missing"], paths["old"], paths["folder"]])],
            ["--bogus"]])
    if kind == "data":
        return rng.choice([["data", "status", rng.choice(["ptbb", "", "PTB", "sst,ptb"])],
                           ["data", "fetch", rng.choice(["ptbb", "", "all", "ptb,sst"])],
                           ["data", "fetch"], ["data"], ["data", "remove", "ptb"],
                           ["--data-dir", paths["junk"], "data", "status", "ptb"],
                           ["--data-dir", paths["junk"], "data", "fetch", "ptb"],
                           ["--data-dir", paths["junk"], "run", "lstm", "ptb", *store]])
    if kind == "sample":
        run_id = rng.choice(["0123456789abcdef", "", "deadbeef", paths["completed"]])
        line = ["sample", run_id, *store]
        if run_id != paths["completed"] and rng.random() < 0.3:
            return line
        return line + rng.choice([["--length", rng.choice(["0", "-1", "100000000000", "x", "10001"])],
                                  ["--temperature", rng.choice(["0", "-1", "nan", "inf", "x"])],
                                  ["--count", rng.choice(["0", "-2", "100000000"])],
                                  ["--seed", rng.choice(["-1", "4294967296"])],
                                  ["--store", rng.choice(["", paths["junk"], paths["missing"], paths["old"]])]])
    if kind == "sweep_file":
        sweep = paths["sweeps"] + "/" + rng.choice(sorted(BAD_SWEEP_FILES)) + ".yaml"
        return rng.choice([["sweep", sweep], ["sweep", sweep, "--dry-run"], ["sweep", "status", sweep]]) + store
    if kind == "list":
        return rng.choice([["list", "foo"], ["list", "--bogus"], ["list", "tasks", "extra"],
                           ["list", "--matrix", "x"]])
    return rng.choice([[], ["bogus"], ["--data-dir"], ["run"], ["run", "lstm"], ["diagnose"],
                       ["diagnose", "gradients"], ["diagnose", "curves"], ["sweep", "extra"],
                       ["--version-typo"], ["sample"]])


BAD_SWEEP_FILES = {   # every one refused with one line, nothing written
    "malformed": "architectures: [lstm\ntasks: copy\n",
    "tabs": "architectures:\t[lstm]\n",
    "not_a_mapping": "- lstm\n- copy\n",
    "binary": "\x00\x01\x02",
    "duplicate_top": "architectures: [lstm]\ntasks: [copy]\nseeds: 1\nseeds: 2\n",
    "duplicate_nested": "architectures: [lstm]\ntasks: [copy]\nset: {optim.lr: 0.1, optim.lr: 0.2}\n",
    "wrong_type_seeds": "architectures: [lstm]\ntasks: [copy]\nseeds: many\n",
    "wrong_type_set": "architectures: [lstm]\ntasks: [copy]\nset: [optim.lr]\n",
    "wrong_type_vary": "architectures: [lstm]\ntasks: [copy]\nvary: {task.length: 5}\n",
    "wrong_type_budget": "architectures: [lstm]\ntasks: [copy]\nbudget: {steps: many}\n",
    "unknown_key": "architectures: [lstm]\ntasks: [copy]\nseed: 1\n",
    "unknown_setting": "architectures: [lstm]\ntasks: [copy]\nset: {optim.lrr: 0.1}\n",
    "bad_value": "architectures: [lstm]\ntasks: [copy]\npreset: quick\nset: {optim.lr: -1}\n",
    "bad_vary_value": "architectures: [lstm]\ntasks: [copy]\npreset: quick\nvary: {task.length: [5, -5]}\n",
    "bad_budget_value": "architectures: [lstm]\ntasks: [copy]\npreset: quick\nbudget: {steps: -5}\n",
    "bad_tune_range": "architectures: [lstm]\ntasks: [copy]\ntune: {trials: 2, space: {optim.lr: {log_uniform: [-1, 1]}}}\n",
    "huge_grid": ("architectures: [lstm]\ntasks: [copy]\nseeds: 1000\nvary: {task.length: ["
                  + ", ".join(str(n) for n in range(1, 101)) + "], optim.lr: ["
                  + ", ".join(f"0.{n:03d}" for n in range(1, 101)) + "]}\n"),
    "budget_and_set": "architectures: [lstm]\ntasks: [copy]\nset: {trainer.max_steps: -5}\nbudget: {steps: 5}\n",
    "set_and_vary": "architectures: [lstm]\ntasks: [copy]\nset: {task.length: 5}\nvary: {task.length: [5, 6]}\n",
    "fixed_and_tuned": ("architectures: [lstm]\ntasks: [copy]\nset: {optim.lr: 0.1}\n"
                        "tune: {trials: 2, space: {optim.lr: {log_uniform: [1.0e-4, 1.0e-1]}}}\n"),
    "params_and_size": "architectures: [lstm]\ntasks: [copy]\nparams: 20k\nset: {arch.hidden_size: 32}\n",
    "override_varied": ("architectures: [lstm]\ntasks: [copy]\nvary: {task.length: [5, 6]}\n"
                        "overrides: {architectures: {lstm: {task.length: 7}}}\n"),
    "unknown_override": "architectures: [lstm]\ntasks: [copy]\noverrides: {architectures: {lstn: {}}}\n",
}


def _tree(root):
    """Every file and folder under `root` (SQLite's journal files aside), with the sizes of files."""
    return sorted((str(path.relative_to(root)), path.stat().st_size if path.is_file() else -1)
                  for path in root.rglob("*") if not path.name.endswith(("-wal", "-shm", "-journal")))


def _snapshot(path):
    with sqlite3.connect(path) as db:
        dump = list(db.iterdump())
    db.close()
    return path.read_bytes(), dump


def test_fuzz_bad_command_lines(capsys, tmp_path, monkeypatch):
    store = ResultStore(tmp_path / "store.sqlite")
    from rnnbench.training.prepare import prepare
    prepared = prepare("lstm", "copy", QUICK, None, 0)
    run_id, config_id = prepared.run_id, prepared.config_id
    store.start_run(run_id=run_id, config_id=config_id, architecture="lstm", task="copy",
                    architecture_version=1, task_version=1, seed=0, preset=None,
                    config={"task.length": 6}, task_info={"primary_metric": "accuracy",
                                                          "direction": "max"})
    store.finish_run(run_id, "completed", metrics={"test/accuracy": 0.5}, parameters=10,
                     items_per_second=1.0)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database\n" * 200)
    (tmp_path / "file").write_text("x")
    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '0')")
    db.close()
    (tmp_path / "folder").mkdir()
    (tmp_path / "sweeps").mkdir()
    for name, text in BAD_SWEEP_FILES.items():
        (tmp_path / "sweeps" / f"{name}.yaml").write_text(text)
    paths = {"store": str(store.path), "junk": str(junk), "inside_file": str(tmp_path / "file"),
             "old": str(old), "missing": str(tmp_path / "missing.sqlite"),
             "folder": str(tmp_path / "folder"), "completed": run_id, "sweeps": str(tmp_path / "sweeps")}
    monkeypatch.setenv("RNNBENCH_STORE", str(store.path))
    for target in ("rnnbench.training.runner.initial_model", "rnnbench.toolkit.datasets._download", "subprocess.run",
                   "rnnbench.store.ResultStore.start_run", "rnnbench.store.ResultStore.finish_run",
                   "rnnbench.store.ResultStore.set_curve"):
        monkeypatch.setattr(target, _no_training)
    before = {name: _snapshot(tmp_path / name) for name in ("store.sqlite", "old.sqlite")}
    junk_bytes = junk.read_bytes()
    tree = _tree(tmp_path)

    rng = random.Random(14)
    lines = [_fuzz_line(rng, paths) for _ in range(500)]
    argparse_exits = 0
    for argv in lines:
        try:
            code = main(argv)
        except SystemExit as exit:   # argparse: a usage line and an error line
            code = exit.code
            out, err = capsys.readouterr()
            assert code == 2, (argv, err)
            assert err.startswith("usage: rnnbench") and "error: " in err.strip().splitlines()[-1], (argv, err)
            argparse_exits += 1
        except _Trained:
            pytest.fail(f"accepted and went on to train or write: {argv}")
        else:
            out, err = capsys.readouterr()
            assert code == 2, (argv, code, out, err)
            try:
                _one_error_line(err)
            except AssertionError as failure:
                raise AssertionError(f"{argv}: {failure}") from None
        assert "Traceback" not in out + err, argv
        assert {name: _snapshot(tmp_path / name) for name in ("store.sqlite", "old.sqlite")} == before, argv
        assert junk.read_bytes() == junk_bytes, argv
        assert _tree(tmp_path) == tree, argv   # a refused command creates no file or folder
    assert {name for argv in lines for name in BAD_SWEEP_FILES if any(name + ".yaml" in word for word in argv)} \
        == set(BAD_SWEEP_FILES)   # every bad sweep file was tried
    assert 0 < argparse_exits < len(lines) / 2   # most lines get past argparse to the real checks
    assert not (tmp_path / "runs").exists() and not (tmp_path / "folder.png").exists()
    assert list((tmp_path / "folder").iterdir()) == []


def test_a_refused_run_or_a_dry_run_creates_no_store(tmp_path, capsys):
    """A run refused after its settings resolved (no hidden size gives 10 parameters) and a dry
    run of a sweep leave no store file behind (nor its folder)."""
    store = tmp_path / "new" / "S.sqlite"
    assert main(["run", "lstm", "copy", "--params", "10", "--preset", "quick", "--store", str(store)]) == 2
    assert "cannot match 10 parameters" in capsys.readouterr().err
    assert main(["sweep", "--architectures", "lstm", "--tasks", "copy", "--preset", "quick", "--dry-run",
                 "--store", str(store)]) == 0
    assert main(["sweep", "status", str(tmp_path / "s.yaml"), "--store", str(store)]) == 2
    (tmp_path / "s.yaml").write_text("architectures: [lstm]\ntasks: [copy]\npreset: quick\n")
    assert main(["sweep", "status", str(tmp_path / "s.yaml"), "--store", str(store)]) == 0
    assert "not started yet" in capsys.readouterr().out
    assert not (tmp_path / "new").exists()


def test_a_plan_too_large_is_refused_from_its_counts_with_the_count_and_the_fix(tmp_path, capsys):
    """1,000 seeds x 100 lengths x 100 learning rates: refused before anything is expanded, in
    the file form and the flags form alike."""
    lengths, rates = ",".join(str(n) for n in range(1, 101)), ",".join(f"0.{n:03d}" for n in range(1, 101))
    argv = ["sweep", "--architectures", "lstm", "--tasks", "copy", "--seeds", "1000", "--vary",
            f"task.length={lengths}", "--vary", f"optim.lr={rates}", "--dry-run", "--store", str(tmp_path / "s.sqlite")]
    assert main(argv) == 2
    assert "up to 10,000,000 runs, more than 100,000" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "s.sqlite").exists()
