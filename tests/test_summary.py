"""`rnnbench leaderboard summary`: every published board's tables on one normalised scale."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnbench import cli
from rnnbench.reports.leaderboard import results_frame
from rnnbench.reports.summary import score_tables, summary_frame, write_summary
from test_leaderboard_stats import TASK_INFO, _runs, _with_baselines


def _board(root, name: str, rows, baselines, task: str, metric: str, direction: str) -> None:
    runs = _with_baselines(_runs(rows, task=task), baselines) if baselines else _runs(rows, task=task)
    runs["task_info"] = [{**TASK_INFO, "primary_metric": metric, "direction": direction}] * len(runs)
    runs["metrics"] = [{f"test/{metric}": metrics["test/mse"],
                        **{key: value for key, value in metrics.items() if key.startswith("baseline/")}}
                       for metrics in runs.metrics]
    folder = root / name
    folder.mkdir(parents=True)
    results_frame(runs).to_csv(folder / "results.csv", index=False)


@pytest.fixture
def boards(tmp_path):
    """adding (MSE, baseline 0.16): lstm best at 0.01; copy (accuracy, baseline 0.125): gru best
    at 0.9; an old board without baselines."""
    _board(tmp_path, "probes-adding", [("lstm", [0.01, 0.01]), ("gru", [0.085, 0.085])],
           {"mean": [0.16, 0.16]}, "adding", "mse", "min")
    _board(tmp_path, "probes-copy", [("lstm", [0.5125, 0.5125]), ("gru", [0.9, 0.9])],
           {"memoryless": [0.125, 0.125]}, "copy", "accuracy", "max")
    _board(tmp_path, "old", [("lstm", [0.2, 0.3])], None, "adding", "mse", "min")
    return tmp_path


def test_scores_are_normalised_between_the_baseline_and_the_best_row(boards):
    """adding: lstm (0.01) is 1, gru (0.085) is halfway from 0.16 to 0.01: 0.5. copy: gru is 1,
    lstm (0.5125) is halfway from 0.125 to 0.9: 0.5."""
    scored, left_out, names = score_tables(boards)
    assert names == ["old", "probes-adding", "probes-copy"]
    assert left_out == ["old: adding (no baselines recorded with its runs)"]
    by_table = {item.board: item.scores for item in scored}
    assert by_table["probes-adding"]["lstm"] == pytest.approx([1.0, 1.0])
    assert by_table["probes-adding"]["gru"] == pytest.approx([0.5, 0.5])
    assert by_table["probes-copy"]["lstm"] == pytest.approx([0.5, 0.5])
    frame = summary_frame(scored).set_index("architecture")
    # each has runs at 1, 1, 0.5, 0.5: IQM 0.75; gru beats lstm on copy (1) and loses on adding (0)
    assert frame.loc["gru", "IQM"] == pytest.approx(0.75) and frame.loc["lstm", "IQM"] == pytest.approx(0.75)
    assert frame.loc["gru", "P(> lstm)"] == pytest.approx(0.5) and np.isnan(frame.loc["lstm", "P(> lstm)"])


def test_the_summary_command_writes_the_page_with_links_and_the_profile(boards, monkeypatch, capsys):
    monkeypatch.chdir(boards.parent)
    monkeypatch.setattr("rnnbench.reports.publish.ROOT", boards)
    assert cli.main(["leaderboard", "summary"]) == 0
    readme = (boards / "README.md").read_text()
    assert "- [probes-copy](probes-copy/README.md)" in readme and "![Performance profiles]" in readme
    assert "## Not summarised" in readme and "old: adding" in readme
    page = (boards / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
    assert {row["architecture"] for row in json.loads((boards / "summary.json").read_text())["architectures"]} == \
        {"gru", "lstm"}


def test_a_summary_with_no_board_says_what_to_run(tmp_path):
    with pytest.raises(Exception, match="no published leaderboard"):
        write_summary(tmp_path)


def test_the_committed_summary_is_the_one_the_committed_boards_give():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "leaderboards"
    committed = json.loads((root / "summary.json").read_text())
    scored, left_out, boards = score_tables(root)
    assert committed["boards"] == boards and committed["left_out"] == left_out, \
        "run `rnnbench leaderboard summary` after publishing"
    expected = json.loads(summary_frame(scored).to_json(orient="records")) if scored else []
    assert committed["architectures"] == expected
