import pytest

from helpers import QUICK
from rnnbench.cli import main


def _sets(settings):
    return [part for key, value in settings.items() for part in ("--set", f"{key}={value}")]


def test_list_and_matrix(capsys):
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "lstm" in listing and "copy" in listing
    assert main(["list", "--matrix"]) == 0
    matrix = capsys.readouterr().out
    assert "bilstm x copy: not causal" in matrix


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
