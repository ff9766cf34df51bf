import pytest

from helpers import QUICK, matrix_columns, matrix_rows
from rnnbench.cli import main


def _sets(settings):
    return [part for key, value in settings.items() for part in ("--set", f"{key}={value}")]


def test_list_and_matrix(capsys):
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "lstm" in listing and "copy" in listing
    assert main(["list", "--matrix"]) == 0
    matrix = capsys.readouterr().out
    lines = matrix.splitlines()
    assert max(map(len, lines)) <= 100   # fits a terminal: tasks are numbered columns
    numbers = {name: column + 1 for name, column in matrix_columns(matrix).items()}
    rows = matrix_rows(matrix)
    assert {len(cells) for cells in rows.values()} == {len(numbers)}   # every block read
    letter = rows["bilstm"][int(numbers["copy"]) - 1]
    reason = next(line for line in lines if line.startswith(f"{letter:>3}  "))
    assert "not causal" in reason and "pairs)" in reason   # each reason once, with its count
    assert sum(line.count("not causal: it would see the future") for line in lines) == 1


@pytest.mark.parametrize("argv, message", [
    (["run", "lstn", "copy"], "Did you mean 'lstm'"),
    (["run", "lstm", "cpy"], "Did you mean 'copy'"),
    (["run", "bilstm", "copy"], "cannot run 'copy'"),
    (["run", "lstm", "copy", "--preset", "quik"], "Did you mean 'quick'"),
    (["run", "lstm", "copy", "--set", "optim.lr=fast"], "expects a number"),
    (["run", "lstm", "copy", "--set", "optim.lr"], "key=value"),
])
def test_bad_input_is_one_line_and_a_non_zero_exit(argv, message, capsys, tmp_path):
    assert main(argv + ["--store", str(tmp_path / "r.sqlite")]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1 and error.startswith("rnnbench: error:")
    assert not (tmp_path / "r.sqlite").exists()


def test_run_then_leaderboard(capsys, tmp_path):
    store = str(tmp_path / "r.sqlite")
    assert main(["run", "gru", "adding", "--no-progress", "--store", store, *_sets(QUICK)]) == 0
    assert "completed" in capsys.readouterr().out
    assert main(["leaderboard", "--store", store]) == 0
    board = capsys.readouterr().out
    assert "## adding" in board and "gru" in board and "predict 1 baseline" in board
    assert main(["leaderboard", "--store", store, "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("architecture,settings,mse (mean)")


def test_leaderboard_without_a_store_says_how_to_make_one(capsys, tmp_path):
    assert main(["leaderboard", "--store", str(tmp_path / "none.sqlite")]) == 2
    assert "rnnbench sweep" in capsys.readouterr().err


def _store_with_runs(path):
    from rnnbench.store import ResultStore

    store = ResultStore(path)
    for run_id, architecture, status in (("ab12cd34ef560001", "lstm", "completed"),
                                         ("ab12cd34ef560002", "gru", "diverged"),
                                         ("ff00aa11bb22cc33", "rnn", "completed")):
        store.start_run(run_id=run_id, config_id="c-" + run_id, architecture=architecture, task="copy",
                        architecture_version=1, task_version=1, seed=0, preset=None, config={},
                        task_info={"primary_metric": "accuracy"})
        store.finish_run(run_id, status, metrics={"test/accuracy": 0.5} if status == "completed" else {})
    return store


def test_runs_lists_the_stored_run_ids_and_filters_them(tmp_path, capsys):
    _store_with_runs(tmp_path / "r.sqlite")
    assert main(["runs", "--store", str(tmp_path / "r.sqlite")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["run", "id"] and len(out) == 4
    assert "ab12cd34ef560001" in out[1] and "lstm" in out[1] and "accuracy 0.5" in out[1]
    assert main(["runs", "ff", "--store", str(tmp_path / "r.sqlite")]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["ff00aa11bb22cc33"]
    assert main(["runs", "--status", "diverged", "--store", str(tmp_path / "r.sqlite")]) == 0
    assert "ab12cd34ef560002" in capsys.readouterr().out
    assert main(["runs", "--store", str(tmp_path / "none.sqlite")]) == 2
    assert not (tmp_path / "none.sqlite").exists()


def test_a_run_id_prefix_finds_its_run_or_says_what_it_matches(tmp_path, capsys):
    store = _store_with_runs(tmp_path / "r.sqlite")
    assert store.resolve_run_id("ff00") == "ff00aa11bb22cc33"
    assert store.resolve_run_id("ab12cd34ef560002") == "ab12cd34ef560002"
    with pytest.raises(Exception, match="'ab12' starts several run ids .*ab12cd34ef560001, ab12cd34ef560002"):
        store.resolve_run_id("ab12")
    assert main(["sample", "zz99", "--store", str(tmp_path / "r.sqlite")]) == 2
    assert "no run id starts with 'zz99'" in capsys.readouterr().err
    assert main(["sample", "ff00", "--store", str(tmp_path / "r.sqlite")]) == 2   # found; it has no checkpoint
    assert "run ff00aa11bb22cc33 has no completed training with a checkpoint" in capsys.readouterr().err


def test_a_run_writing_to_a_file_prints_a_line_per_validation_not_a_bar(tmp_path, capsys):
    """Output to a file or a pipe: one line per validation round, no progress-bar updates (a bar
    rewrites itself every step: 119 KB for a quick run) and no 'Epoch 1/-2'."""
    assert main(["run", "lstm", "copy", "--store", str(tmp_path / "r.sqlite"), *_sets(QUICK)]) == 0
    out = capsys.readouterr().out
    rounds = [line for line in out.splitlines() if line.startswith("step ")]
    assert rounds and all("val/loss" in line for line in rounds)
    assert f"step {QUICK['trainer.max_steps']}/{QUICK['trainer.max_steps']}" in rounds[-1]
    assert "\r" not in out and "Epoch" not in out and "it/s" not in out
