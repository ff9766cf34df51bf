"""Known answers (rnnbench.sweeps.known_answers): declared, judged, recorded, stated on every
leaderboard, and required before publishing in a repository that declares them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import QUICK
from rnnbench import cli
from rnnbench.core.errors import BenchmarkError
from rnnbench.store import ResultStore
from rnnbench.sweeps import known_answer_runs as runs, known_answers as known

ROOT = Path(__file__).resolve().parent.parent


def _declare(folder: Path, **answers) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "quick.yaml").write_text(yaml.safe_dump({
        "name": "known-quick", "architectures": ["gru"], "tasks": ["adding"], "seeds": 2, "set": dict(QUICK)}))
    (folder / known.ANSWERS).write_text(yaml.safe_dump(answers or {
        "gru-adding": {"sweep": "quick.yaml", "metric": "test/mse", "at_most": 10.0, "source": "a test",
                       "fast": True}}))
    return folder


def test_the_committed_declarations_load_and_their_sweeps_plan():
    answers = known.load_answers(ROOT / "leaderboards" / "known-answers")
    assert {answer.name for answer in answers} >= {"lstm-adding-100", "esn-mackey-glass", "zaremba-small",
                                                  "scan-simple", "tree-lstm-sst-binary"}
    assert {answer.name for answer in answers if answer.fast} == {"lstm-adding-100", "esn-mackey-glass"}
    from rnnbench.sweeps.plan import plan_sweep
    from rnnbench.sweeps.spec import load
    for answer in answers:
        assert plan_sweep(load(answer.sweep)).runs, answer.name


def test_a_bad_declaration_or_an_unknown_name_is_refused(tmp_path):
    _declare(tmp_path, broken={"sweep": "quick.yaml", "metric": "test/mse", "source": "x"})
    with pytest.raises(BenchmarkError, match="has no bound: give at_most and/or at_least"):
        known.load_answers(tmp_path)
    _declare(tmp_path)
    with pytest.raises(BenchmarkError, match="unknown known answer 'gru-adings'. Did you mean 'gru-adding'"):
        known.choose(known.load_answers(tmp_path), ["gru-adings"], fast=False)


def test_answers_are_judged_on_the_mean_of_their_sweeps_runs_and_recorded(tmp_path):
    folder = _declare(tmp_path / "known")
    (answer,) = known.load_answers(folder)
    store = ResultStore(tmp_path / "r.sqlite")
    runs.run_answers([answer], store, progress=False)
    verdict = runs.judge(answer, store)
    values = [metrics["test/mse"] for metrics in store.runs_frame().metrics]
    assert verdict["value"] == pytest.approx(sum(values) / 2) and verdict["held"] and len(verdict["runs"]) == 2
    strict = known.KnownAnswer("strict", answer.sweep, "test/mse", 1e-9, None, "a test", True)
    assert not runs.judge(strict, store)["held"]
    path = known.write_record({"gru-adding": verdict}, folder)
    record = json.loads(path.read_text())["answers"]["gru-adding"]
    assert record["held"] and record["checked_at"] and "git_commit" in record
    assert known.statement(folder).startswith("Known answers (leaderboards/known-answers): gru-adding held (")


def test_publishing_where_answers_are_declared_but_never_checked_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _declare(tmp_path / "leaderboards" / "known-answers")
    board = tmp_path / "leaderboards" / "pub"
    board.mkdir()
    (board / "sweep.yaml").write_text(yaml.safe_dump({"name": "pub", "architectures": ["gru"],
                                                      "tasks": ["adding"], "seeds": 1, "set": dict(QUICK)}))
    store = str(tmp_path / "r.sqlite")
    assert cli.main(["sweep", "leaderboards/pub/sweep.yaml", "--store", store, "--no-progress"]) == 0
    assert cli.main(["leaderboard", "publish", "pub", "--store", store]) == 2
    assert "records none: run `rnnbench known-answers --fast`" in capsys.readouterr().err
    assert cli.main(["known-answers", "--store", str(tmp_path / "k.sqlite"), "--no-progress"]) == 0
    assert cli.main(["leaderboard", "publish", "pub", "--store", store]) == 0
    assert "gru-adding held (" in (board / "README.md").read_text()


@pytest.mark.slow
def test_the_fast_known_answers_hold(tmp_path):
    """The LSTM solves adding at T = 100 (test MSE below 0.01) and a 100-unit ESN predicts
    Mackey-Glass within twice reservoirpy's 0.004 NRMSE, on this code (minutes on a CPU)."""
    answers = [answer for answer in known.load_answers(ROOT / "leaderboards" / "known-answers") if answer.fast]
    store = ResultStore(tmp_path / "r.sqlite")
    runs.run_answers(answers, store, workers=2, progress=False)
    for answer in answers:
        verdict = runs.judge(answer, store)
        assert verdict["held"], (answer.name, verdict)
