"""Known answers: published results the suite must reproduce before its comparisons are trusted
(the LSTM solving the adding problem at T = 100, Zaremba's small LSTM, SCAN's simple split, the
Tree-LSTM on SST, the echo-state network on Mackey-Glass).

leaderboards/known-answers/answers.yaml declares each one: a sweep file with the paper's setup,
the test metric its runs are judged on (the mean over the sweep's completed runs) and its bounds
(`at_most`, `at_least`), the source, and whether it is fast (run by `nox -s slow`).
`rnnbench known-answers [NAME ...]` runs their sweeps into a store (resuming, like any sweep;
`rnnbench.sweeps.known_answer_runs`), judges them and writes record.json beside the
declarations: each answer's value, bounds, whether it held, its run ids, and the commit and date
it was checked at. `publish` states on every leaderboard which answers held, and refuses to
publish in a repository that declares known answers but has no record of them.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rnnbench.core.errors import BenchmarkError, did_you_mean
from rnnbench.core.revision import git_commit

FOLDER = Path("leaderboards") / "known-answers"
ANSWERS, RECORD = "answers.yaml", "record.json"
KEYS = ("sweep", "metric", "at_most", "at_least", "source", "fast")


@dataclass(frozen=True)
class KnownAnswer:
    name: str
    sweep: Path
    metric: str
    at_most: float | None
    at_least: float | None
    source: str
    fast: bool

    def bounds(self) -> str:
        parts = ([f"at least {self.at_least:g}"] if self.at_least is not None else []) + \
                ([f"at most {self.at_most:g}"] if self.at_most is not None else [])
        return " and ".join(parts)

    def holds(self, value: float) -> bool:
        return (math.isfinite(value) and (self.at_least is None or value >= self.at_least)
                and (self.at_most is None or value <= self.at_most))


def load_answers(folder: Path = FOLDER) -> list[KnownAnswer]:
    """The declared answers; [] when the folder declares none."""
    path = Path(folder) / ANSWERS
    if not path.is_file():
        return []
    document = yaml.safe_load(path.read_text()) or {}
    answers = []
    for name, entry in document.items():
        where = f"{path}: {name}"
        if not isinstance(entry, dict) or not {"sweep", "metric", "source"} <= set(entry):
            raise BenchmarkError(f"{where} needs sweep, metric and source (and at_most and/or at_least)")
        unknown = [key for key in entry if key not in KEYS]
        if unknown:
            raise BenchmarkError(f"{where}: unknown key '{unknown[0]}'.{did_you_mean(unknown[0], KEYS)}")
        if entry.get("at_most") is None and entry.get("at_least") is None:
            raise BenchmarkError(f"{where} has no bound: give at_most and/or at_least")
        answers.append(KnownAnswer(name, Path(folder) / entry["sweep"], entry["metric"], entry.get("at_most"),
                                   entry.get("at_least"), entry["source"], bool(entry.get("fast", False))))
    return answers


def choose(answers: list[KnownAnswer], names: list[str], fast: bool) -> list[KnownAnswer]:
    """The answers named (all when none are), only the fast ones with `fast`."""
    known = {answer.name: answer for answer in answers}
    for name in names:
        if name not in known:
            raise BenchmarkError(f"unknown known answer '{name}'.{did_you_mean(name, known)} "
                                 f"Declared: {', '.join(known) or 'none'}")
    chosen = [known[name] for name in names] if names else answers
    return [answer for answer in chosen if answer.fast or not fast]


def write_record(judged: dict[str, dict[str, Any]], folder: Path = FOLDER) -> Path:
    """record.json: the judged answers, merged over an earlier record's other answers, with the
    commit and date they were checked at."""
    path = Path(folder) / RECORD
    record = read_record(folder) or {"answers": {}}
    stamp = {"checked_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "git_commit": git_commit()}
    for name, verdict in judged.items():
        record["answers"][name] = {**verdict, **stamp}
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def read_record(folder: Path = FOLDER) -> dict[str, Any] | None:
    path = Path(folder) / RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def statement(folder: Path = FOLDER) -> str | None:
    """One line for a published leaderboard: which known answers held, and at which commit;
    None when none are declared. A BenchmarkError when answers are declared but never checked."""
    answers = load_answers(folder)
    if not answers:
        return None
    record = read_record(folder)
    if record is None:
        raise BenchmarkError(f"{Path(folder) / ANSWERS} declares known answers but {Path(folder) / RECORD} "
                             f"records none: run `rnnbench known-answers --fast` (or all of them) first")
    parts = []
    for answer in answers:
        verdict = record["answers"].get(answer.name)
        if verdict is None:
            parts.append(f"{answer.name} not checked")
        else:
            value = "no completed run" if verdict["value"] is None else f"{verdict['value']:.4g}"
            parts.append(f"{answer.name} {'held' if verdict['held'] else 'did not hold'} ({value}; "
                         f"{verdict['bounds']}; code {str(verdict['git_commit'])[:10]}, {verdict['checked_at'][:10]})")
    return "Known answers (leaderboards/known-answers): " + "; ".join(parts) + "."
