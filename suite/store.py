"""The results store: one SQLite file, one row per run, plus per-epoch history (and the
conformance kit's verdicts on plugins, `rnnbench.training.conformance_verdicts`).

Passive by design: it records and reads, it never trains. WAL mode and a busy timeout let
several processes (a sweep's workers) write at once; every write is one transaction.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnbench.core.errors import BenchmarkError, path_problem

SCHEMA_VERSION = 1
STATUSES = ("running", "completed", "failed", "diverged", "interrupted")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    config_id TEXT NOT NULL,
    architecture TEXT NOT NULL,
    task TEXT NOT NULL,
    architecture_version INTEGER NOT NULL,
    task_version INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    preset TEXT,
    config TEXT NOT NULL,
    task_info TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    metrics TEXT,
    parameters INTEGER,
    hidden_size INTEGER,
    items_per_second REAL,
    wall_time_s REAL,
    peak_memory_mb REAL,
    environment TEXT,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS runs_by_task ON runs (task, status);
CREATE TABLE IF NOT EXISTS history (
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (run_id, epoch, name)
);
CREATE TABLE IF NOT EXISTS curves (
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    x REAL NOT NULL,
    y REAL NOT NULL,
    PRIMARY KEY (run_id, name, x)
);
CREATE TABLE IF NOT EXISTS conformance (
    architecture TEXT NOT NULL,
    version INTEGER NOT NULL,
    options_hash TEXT NOT NULL,
    source_hash TEXT NOT NULL,
    kit_hash TEXT NOT NULL,
    passed INTEGER NOT NULL,
    message TEXT NOT NULL,
    checked_at REAL NOT NULL,
    PRIMARY KEY (architecture, version, options_hash, source_hash, kit_hash)
);
CREATE TABLE IF NOT EXISTS sweeps (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    recorded_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sweep_runs (
    sweep TEXT NOT NULL REFERENCES sweeps (name) ON DELETE CASCADE,
    run_id TEXT NOT NULL,
    config_id TEXT NOT NULL,
    architecture TEXT NOT NULL,
    task TEXT NOT NULL,
    seed INTEGER NOT NULL,
    role TEXT NOT NULL,
    trial INTEGER,
    params TEXT NOT NULL,
    PRIMARY KEY (sweep, run_id, role)
);
CREATE TABLE IF NOT EXISTS tuning (
    sweep TEXT NOT NULL REFERENCES sweeps (name) ON DELETE CASCADE,
    architecture TEXT NOT NULL,
    task TEXT NOT NULL,
    trials INTEGER NOT NULL,
    best_run_id TEXT,
    importances TEXT NOT NULL,
    PRIMARY KEY (sweep, architecture, task)
);
CREATE TABLE IF NOT EXISTS claims (
    run_id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    claimed_at REAL NOT NULL
);
"""


class StoreError(BenchmarkError):
    """The results store cannot be used as asked; the message names the file and the fix."""


def to_json(value: Any, non_finite_as_text: bool = False) -> str:
    """JSON text SQLite's json functions can read: non-finite floats (NaN, inf), which JSON has no
    token for, become null, or with `non_finite_as_text` the strings 'nan', 'inf', '-inf' (a
    setting declared AllowNonFinite: the configuration reads them back)."""
    return json.dumps(_finite(value, non_finite_as_text), sort_keys=True, allow_nan=False)


def _finite(value: Any, as_text: bool) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else (str(value) if as_text else None)
    if isinstance(value, dict):
        return {key: _finite(item, as_text) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item, as_text) for item in value]
    return value


_JSON_COLUMNS = ("config", "task_info", "metrics", "environment")
_SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass
class RunRecord:
    run_id: str
    architecture: str
    task: str
    seed: int
    status: str
    config: dict[str, Any]
    metrics: dict[str, float]
    error: str | None
    started_at: float | None = None
    finished_at: float | None = None


class ResultStore:
    """Open (and create if needed) the store at `path`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.checkpoint_root = self.path.parent / "checkpoints"   # checkpoints/RUN_ID/{best,last}.ckpt
        problem = path_problem(self.path)
        if problem or self.path.is_dir():
            problem = problem or f"{self.path} is a folder"
            raise StoreError(f"cannot use {self.path} as the results store: {problem}; pass a "
                             f"--store file path in a folder, e.g. --store runs/rnnbench.sqlite")
        self._check_header()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create the folder of the results store {self.path} "
                             f"({error.strerror or error}: {error.filename or self.path.parent}): "
                             f"pass a --store path in a writable folder") from None
        with self._translated():
            db = sqlite3.connect(self.path, timeout=60)
            try:
                # the version first: a store of another version is refused untouched
                self._check_version(db)
                db.executescript(_SCHEMA)  # idempotent; executescript commits on its own
            finally:
                db.close()
        with self._connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self._repair_json(db)

    def _check_header(self) -> None:
        """SQLite takes a file shorter than its header for an empty database and would write
        over it: a file that exists must already be an SQLite database."""
        try:
            with open(self.path, "rb") as stream:
                header = stream.read(len(_SQLITE_HEADER))
        except FileNotFoundError:
            return
        except OSError as error:
            raise StoreError(f"cannot read the results store {self.path} ({error.strerror}): pass "
                             f"another --store path") from None
        if header and header != _SQLITE_HEADER:
            raise StoreError(f"{self.path} is not an rnnbench results store (not an SQLite file): "
                             f"pass the --store of a results store, or a new path to create one; "
                             f"the file was left untouched")

    def _check_version(self, db: sqlite3.Connection) -> None:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return  # a new store
        if not {"meta", "runs"} <= tables:
            raise StoreError(f"{self.path} is an SQLite file but not an rnnbench results store "
                             f"(tables: {', '.join(sorted(tables))}): pass another --store path; "
                             f"the file was left untouched")
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None and str(row[0]) != str(SCHEMA_VERSION):
            raise StoreError(f"store {self.path} has schema version {row[0]}, this rnnbench "
                             f"reads version {SCHEMA_VERSION}: use a new --store path or "
                             f"the rnnbench release that wrote it (the store was left untouched)")

    @staticmethod
    def _repair_json(db: sqlite3.Connection) -> None:
        """Rows written before non-finite floats became null hold bare NaN / Infinity tokens,
        which SQLite's json functions reject: rewrite them (Python's json reads those tokens)."""
        invalid = " OR ".join(f"NOT coalesce(json_valid({column}), 1)" for column in _JSON_COLUMNS)
        rows = db.execute(f"SELECT run_id, {', '.join(_JSON_COLUMNS)} FROM runs WHERE {invalid}").fetchall()
        for run_id, *texts in rows:
            values = [text if text is None else to_json(json.loads(text), column == "config")
                      for column, text in zip(_JSON_COLUMNS, texts)]
            db.execute(f"UPDATE runs SET {', '.join(f'{c} = ?' for c in _JSON_COLUMNS)} WHERE run_id = ?",
                       (*values, run_id))

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """SQLite's and the file system's errors as StoreErrors naming the store and the fix."""
        try:
            yield
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise
        except sqlite3.OperationalError as error:
            text = str(error)
            if "locked" in text or "busy" in text:
                fix = "another process holds it; try again when it has finished"
            elif "readonly" in text or "unable to open" in text or "permission" in text.lower():
                fix = "pass a --store path in a writable folder (or set RNNBENCH_STORE)"
            elif "full" in text:
                fix = "free disk space or pass a --store path on another disk"
            else:
                fix = "check the file and its folder, or pass another --store path"
            raise StoreError(f"cannot write the results store {self.path} ({text}): {fix}") from None
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path} is not an rnnbench results store ({error}): pass the "
                             f"--store of a results store, or a new path to create one; the file "
                             f"was left untouched") from None
        except PermissionError as error:
            raise StoreError(f"cannot write the results store {self.path} ({error.strerror}: "
                             f"{error.filename}): pass a --store path in a writable folder") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._translated():
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA foreign_keys=ON")
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                db.close()

    # ------------------------------------------------------------------ writes

    def start_run(self, *, run_id: str, config_id: str, architecture: str, task: str,
                  architecture_version: int, task_version: int, seed: int, preset: str | None,
                  config: dict[str, Any], task_info: dict[str, Any], keep_history: bool = False,
                  hostname: str | None = None, pid: int | None = None) -> None:
        """Insert or reset a run row as running; its old history is dropped unless
        `keep_history` (a run resumed from its checkpoint). hostname, pid: of the process that
        trains it (default: this one; a run reported by a Ray task names its own)."""
        with self._connect() as db:
            if not keep_history:
                db.execute("DELETE FROM history WHERE run_id = ?", (run_id,))
                db.execute("DELETE FROM curves WHERE run_id = ?", (run_id,))
            # an upsert, not INSERT OR REPLACE: replacing deletes the row, and the foreign key's
            # ON DELETE CASCADE would take the history with it
            db.execute(
                "INSERT INTO runs (run_id, config_id, architecture, task, "
                "architecture_version, task_version, seed, preset, config, task_info, status, "
                "hostname, pid, started_at) VALUES (?,?,?,?,?,?,?,?,?,?,'running',?,?,?) "
                "ON CONFLICT (run_id) DO UPDATE SET config_id = excluded.config_id, "
                "architecture = excluded.architecture, task = excluded.task, "
                "architecture_version = excluded.architecture_version, "
                "task_version = excluded.task_version, seed = excluded.seed, "
                "preset = excluded.preset, config = excluded.config, task_info = excluded.task_info, "
                "status = 'running', error = NULL, metrics = NULL, parameters = NULL, "
                "hidden_size = NULL, items_per_second = NULL, wall_time_s = NULL, "
                "peak_memory_mb = NULL, environment = NULL, hostname = excluded.hostname, "
                "pid = excluded.pid, started_at = excluded.started_at, finished_at = NULL",
                (run_id, config_id, architecture, task, architecture_version, task_version, seed,
                 preset, to_json(config, non_finite_as_text=True), to_json(task_info),
                 hostname or socket.gethostname(), pid or os.getpid(), time.time()))

    def add_round(self, run_id: str, step: int, values: dict[str, float]) -> None:
        """Record the evaluation round at training step `step`, numbered by its step among the
        run's rounds: a round repeated after a resume (same step) replaces itself."""
        rows = [(name, float(value)) for name, value in values.items() if math.isfinite(float(value))]
        with self._connect() as db:
            (epoch,) = db.execute("SELECT count(DISTINCT epoch) FROM history WHERE run_id = ? AND step < ?",
                                  (run_id, step)).fetchone()
            db.executemany("INSERT OR REPLACE INTO history VALUES (?,?,?,?,?)",
                           [(run_id, epoch, step, name, value) for name, value in rows])

    def set_curve(self, run_id: str, name: str, points: list[tuple[float, float]]) -> None:
        """Replace the run's curve `name` (y as a function of x, e.g. a diagnostic measured on
        its model); a run started again from scratch drops its curves with its history."""
        with self._connect() as db:
            db.execute("DELETE FROM curves WHERE run_id = ? AND name = ?", (run_id, name))
            db.executemany("INSERT INTO curves VALUES (?,?,?,?)",   # NaN cannot be stored: left out
                           [(run_id, name, float(x), float(y)) for x, y in points
                            if not (math.isnan(float(x)) or math.isnan(float(y)))])

    def curve(self, run_id: str, name: str) -> list[tuple[float, float]]:
        """The (x, y) points of a run's curve, by increasing x; empty if there is none."""
        with self._connect() as db:
            return db.execute("SELECT x, y FROM curves WHERE run_id = ? AND name = ? ORDER BY x",
                              (run_id, name)).fetchall()

    def test_curves_frame(self):
        """Every run's test-split curves (a metric against the tested length, ...) as a DataFrame
        with columns run_id, name, x, y; other curves (diagnostics) left out."""
        import pandas as pd

        with self._connect() as db:
            return pd.read_sql_query("SELECT run_id, name, x, y FROM curves WHERE name LIKE 'test/%' "
                                     "ORDER BY run_id, name, x", db)

    def finish_run(self, run_id: str, status: str, *, metrics: dict[str, float] | None = None,
                   error: str | None = None, **measurements: Any) -> None:
        """Record the outcome. `measurements`: parameters, hidden_size, items_per_second,
        wall_time_s, peak_memory_mb, environment (a dict)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        allowed = {"parameters", "hidden_size", "items_per_second", "wall_time_s",
                   "peak_memory_mb", "environment"}
        unknown = set(measurements) - allowed
        if unknown:
            raise ValueError(f"unknown measurements {sorted(unknown)}")
        if "environment" in measurements:
            measurements["environment"] = to_json(measurements["environment"])
        columns = ["status", "error", "metrics", "finished_at", *measurements]
        values = [status, error, to_json(metrics or {}), time.time(),
                  *measurements.values()]
        assignments = ", ".join(f"{column} = ?" for column in columns)
        with self._connect() as db:
            db.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", (*values, run_id))

    def record_failure(self, *, run_id: str, config_id: str, architecture: str, task: str,
                       architecture_version: int, task_version: int, seed: int, preset: str | None,
                       config: dict[str, Any], error: str, status: str = "failed") -> None:
        """Record the outcome of a run whose process ended without recording one (it failed
        before it started its row, or died while running): insert the row, or update it."""
        if status not in STATUSES or status == "running":
            raise ValueError(f"status must be one of {STATUSES[1:]}")
        now = time.time()
        with self._connect() as db:
            db.execute(
                "INSERT INTO runs (run_id, config_id, architecture, task, architecture_version, "
                "task_version, seed, preset, config, task_info, status, error, metrics, hostname, "
                "pid, started_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?,'{}',?,?,'{}',?,?,?,?) "
                "ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, "
                "error = excluded.error, finished_at = excluded.finished_at",
                (run_id, config_id, architecture, task, architecture_version, task_version, seed,
                 preset, to_json(config, non_finite_as_text=True), status, error,
                 socket.gethostname(), os.getpid(), now, now))

    def mark_stale_runs(self) -> int:
        """Rows left 'running' by a process of this host that no longer exists become
        'interrupted'. Returns how many were marked."""
        host = socket.gethostname()
        with self._connect() as db:
            rows = db.execute("SELECT run_id, pid FROM runs WHERE status = 'running' AND hostname = ?",
                              (host,)).fetchall()
            stale = [run_id for run_id, pid in rows if not _process_alive(pid)]
            db.executemany("UPDATE runs SET status = 'interrupted', error = ?, finished_at = ? "
                           "WHERE run_id = ?",
                           [("the process running it ended without recording a result", time.time(),
                             run_id) for run_id in stale])
        return len(stale)

    def record_conformance(self, architecture: str, version: int, options_hash: str, source_hash: str,
                           kit_hash: str, *, passed: bool, message: str, checked_at: float) -> None:
        """Keep the conformance kit's verdict on a plugin (rnnbench.training.conformance_verdicts), replacing one of
        the same key."""
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO conformance VALUES (?,?,?,?,?,?,?,?)",
                       (architecture, version, options_hash, source_hash, kit_hash, int(passed),
                        message, checked_at))

    # ------------------------------------------------------------------ sweeps and claims

    def record_sweep(self, name: str, spec: dict[str, Any]) -> None:
        """Keep a sweep's specification under its name (replacing an earlier one of that name)."""
        with self._connect() as db:
            db.execute("INSERT INTO sweeps VALUES (?,?,?) ON CONFLICT (name) DO UPDATE SET "
                       "spec = excluded.spec, recorded_at = excluded.recorded_at",
                       (name, to_json(spec, non_finite_as_text=True), time.time()))

    def plan_runs(self, sweep: str, runs: list[dict[str, Any]]) -> None:
        """Record runs as planned by a sweep: dicts with run_id, config_id, architecture, task, seed, role
        ('run', 'trial' or 'best'), trial (its number, or None) and params (a tuning trial's
        sampled settings). A run planned again in the same role keeps one row; a tuned pair's
        best configuration with the trials' seed is the same run as its best trial, in two roles."""
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO sweep_runs VALUES (?,?,?,?,?,?,?,?,?)",
                           [(sweep, run["run_id"], run["config_id"], run["architecture"], run["task"], run["seed"],
                             run["role"], run.get("trial"), to_json(run.get("params") or {},
                                                                    non_finite_as_text=True))
                            for run in runs])

    def record_tuning(self, sweep: str, architecture: str, task: str, *, trials: int,
                      best_run_id: str | None, importances: dict[str, float]) -> None:
        """A tuned pair's trial count, best trial and hyper-parameter importances."""
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO tuning VALUES (?,?,?,?,?,?)",
                       (sweep, architecture, task, trials, best_run_id, to_json(importances)))

    def claim(self, run_id: str, pid: int) -> tuple[str, int] | None:
        """Claim a run for process `pid` of this host, atomically: None if the claim is taken,
        else (hostname, pid) of the live process that holds it. A claim whose process of this
        host is gone is taken over."""
        host = socket.gethostname()
        with self._connect() as db:   # BEGIN IMMEDIATE: no other writer between read and write
            row = db.execute("SELECT hostname, pid FROM claims WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None and not (row[0] == host and (row[1] == pid or not _process_alive(row[1]))):
                return row[0], row[1]
            db.execute("INSERT OR REPLACE INTO claims VALUES (?,?,?,?)", (run_id, host, pid, time.time()))
        return None

    def claim_holder(self, run_id: str) -> tuple[str, int] | None:
        """(hostname, pid) of the live process holding the run's claim, or None (a claim of a
        process of this host that has ended does not count)."""
        with self._connect() as db:
            row = db.execute("SELECT hostname, pid FROM claims WHERE run_id = ?", (run_id,)).fetchone()
        if row is None or (row[0] == socket.gethostname() and not _process_alive(row[1])):
            return None
        return row[0], row[1]

    def release(self, run_id: str, pid: int | None = None) -> None:
        """Drop the claim on a run (only the one `pid` holds, if given)."""
        with self._connect() as db:
            if pid is None:
                db.execute("DELETE FROM claims WHERE run_id = ?", (run_id,))
            else:
                db.execute("DELETE FROM claims WHERE run_id = ? AND pid = ? AND hostname = ?",
                           (run_id, pid, socket.gethostname()))

    # ------------------------------------------------------------------ reads

    def sweep_spec(self, name: str) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute("SELECT spec FROM sweeps WHERE name = ?", (name,)).fetchone()
        return None if row is None else json.loads(row[0])

    def sweep_frame(self, name: str | None = None):
        """The runs planned by one sweep (or every sweep), with their status now (a run planned
        but never started has status 'planned'), as a pandas DataFrame."""
        import pandas as pd

        where, values = ("WHERE s.sweep = ?", (name,)) if name is not None else ("", ())
        with self._connect() as db:
            frame = pd.read_sql_query(
                "SELECT s.sweep, s.run_id, s.config_id, s.architecture, s.task, s.seed, s.role, s.trial, s.params, "
                "coalesce(r.status, 'planned') AS status, r.metrics, r.wall_time_s FROM sweep_runs s "
                f"LEFT JOIN runs r ON r.run_id = s.run_id {where} ORDER BY s.rowid", db, params=values)
        for column in ("params", "metrics"):
            frame[column] = frame[column].map(lambda text: json.loads(text) if isinstance(text, str) and text else {})
        return frame

    def planned_trials(self, sweep: str, architecture: str, task: str) -> list[tuple[int, str, dict[str, Any]]]:
        """(trial number, run id, sampled params) of a tuning sweep's trials for one pair, in order."""
        with self._connect() as db:
            rows = db.execute("SELECT trial, run_id, params FROM sweep_runs WHERE sweep = ? AND "
                              "architecture = ? AND task = ? AND role = 'trial' ORDER BY trial",
                              (sweep, architecture, task)).fetchall()
        return [(trial, run_id, json.loads(params)) for trial, run_id, params in rows]

    def tuning_frame(self, sweep: str | None = None):
        import pandas as pd

        where, values = ("WHERE sweep = ?", (sweep,)) if sweep is not None else ("", ())
        with self._connect() as db:
            frame = pd.read_sql_query(f"SELECT * FROM tuning {where}", db, params=values)
        frame["importances"] = frame["importances"].map(json.loads)
        return frame

    def wall_times(self) -> dict[tuple[str, str, str], float]:
        """Median wall time of completed runs, by (architecture, task, config_id), and by
        (architecture, task, '') over every configuration: what a sweep's estimate reads."""
        with self._connect() as db:
            rows = db.execute("SELECT architecture, task, config_id, wall_time_s FROM runs WHERE "
                              "status = 'completed' AND wall_time_s IS NOT NULL").fetchall()
        grouped: dict[tuple[str, str, str], list[float]] = {}
        for architecture, task, config_id, seconds in rows:
            for key in ((architecture, task, config_id), (architecture, task, "")):
                grouped.setdefault(key, []).append(seconds)
        return {key: sorted(values)[len(values) // 2] for key, values in grouped.items()}


    def conformance_verdict(self, architecture: str, version: int, options_hash: str, source_hash: str,
                            kit_hash: str) -> tuple[bool, str, float] | None:
        """(passed, message, checked_at) of a kept verdict with this key, or None."""
        with self._connect() as db:
            row = db.execute("SELECT passed, message, checked_at FROM conformance WHERE architecture = ? "
                             "AND version = ? AND options_hash = ? AND source_hash = ? AND kit_hash = ?",
                             (architecture, version, options_hash, source_hash, kit_hash)).fetchone()
        return None if row is None else (bool(row[0]), row[1], row[2])


    def statuses(self) -> dict[str, str]:
        """Every recorded run's status, by run id (one query: a large plan's statuses at once)."""
        with self._connect() as db:
            return dict(db.execute("SELECT run_id, status FROM runs").fetchall())

    def status_of(self, run_id: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def resolve_run_id(self, prefix: str) -> str:
        """The one run whose id is `prefix` or starts with it (as git takes a short commit id); a
        BenchmarkError naming the candidates when none or several match."""
        prefix = prefix.strip()
        if not prefix:
            raise BenchmarkError("the run id is empty: pass an id (or its first characters) from "
                                 "`rnnbench runs`")
        with self._connect() as db:
            matches = [row[0] for row in db.execute(
                "SELECT run_id FROM runs WHERE substr(run_id, 1, ?) = ? ORDER BY run_id LIMIT 6",
                (len(prefix), prefix)).fetchall()]
        if prefix in matches:
            return prefix
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise BenchmarkError(f"no run id starts with '{prefix}' in {self.path}: list the stored runs "
                                 f"with `rnnbench runs --store {self.path}`, or pass the --store that holds it")
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise BenchmarkError(f"'{prefix}' starts several run ids ({shown}): give more of the id")

    def get(self, run_id: str) -> RunRecord | None:
        with self._connect() as db:
            row = db.execute("SELECT run_id, architecture, task, seed, status, config, metrics, error, "
                             "started_at, finished_at FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        return RunRecord(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]),
                         json.loads(row[6] or "{}"), row[7], row[8], row[9])

    def history(self, run_id: str) -> list[tuple[int, int, str, float]]:
        with self._connect() as db:
            return db.execute("SELECT epoch, step, name, value FROM history WHERE run_id = ? "
                              "ORDER BY epoch, name", (run_id,)).fetchall()

    def runs_frame(self):
        """Every run as a pandas DataFrame, JSON columns decoded."""
        import pandas as pd

        with self._connect() as db:
            frame = pd.read_sql_query("SELECT * FROM runs ORDER BY started_at", db)
        for column in ("config", "task_info", "metrics", "environment"):
            frame[column] = frame[column].map(lambda text: json.loads(text) if isinstance(text, str) and text else {})
        return frame


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
