"""The results store: one SQLite file, one row per run, plus per-epoch history.

Passive by design: it records and reads, it never trains. WAL mode and a busy timeout let
several processes (a sweep's workers) write at once; every write is one transaction.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
"""


class StoreError(Exception):
    pass


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


class ResultStore:
    """Open (and create if needed) the store at `path`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=60)
        try:
            db.executescript(_SCHEMA)  # idempotent; executescript commits on its own
        finally:
            db.close()
        with self._connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise StoreError(f"store {self.path} has schema version {row[0]}, this rnnbench "
                                 f"reads version {SCHEMA_VERSION}: use a new --store path or "
                                 f"the rnnbench release that wrote it")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
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
                  config: dict[str, Any], task_info: dict[str, Any], keep_history: bool = False) -> None:
        """Insert or reset a run row as running; its old history is dropped unless
        `keep_history` (a run resumed from its checkpoint)."""
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
                 preset, json.dumps(config, sort_keys=True), json.dumps(task_info, sort_keys=True),
                 socket.gethostname(), os.getpid(), time.time()))

    def add_history(self, run_id: str, epoch: int, step: int, values: dict[str, float]) -> None:
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO history VALUES (?,?,?,?,?)",
                           [(run_id, epoch, step, name, float(value)) for name, value in values.items()])

    def set_curve(self, run_id: str, name: str, points: list[tuple[float, float]]) -> None:
        """Replace the run's curve `name` (y as a function of x, e.g. a diagnostic measured on
        its model); a run started again from scratch drops its curves with its history."""
        with self._connect() as db:
            db.execute("DELETE FROM curves WHERE run_id = ? AND name = ?", (run_id, name))
            db.executemany("INSERT INTO curves VALUES (?,?,?,?)",
                           [(run_id, name, float(x), float(y)) for x, y in points])

    def curve(self, run_id: str, name: str) -> list[tuple[float, float]]:
        """The (x, y) points of a run's curve, by increasing x; empty if there is none."""
        with self._connect() as db:
            return db.execute("SELECT x, y FROM curves WHERE run_id = ? AND name = ? ORDER BY x",
                              (run_id, name)).fetchall()

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
            measurements["environment"] = json.dumps(measurements["environment"], sort_keys=True)
        columns = ["status", "error", "metrics", "finished_at", *measurements]
        values = [status, error, json.dumps(metrics or {}, sort_keys=True), time.time(),
                  *measurements.values()]
        assignments = ", ".join(f"{column} = ?" for column in columns)
        with self._connect() as db:
            db.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", (*values, run_id))

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

    # ------------------------------------------------------------------ reads

    def status_of(self, run_id: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def get(self, run_id: str) -> RunRecord | None:
        with self._connect() as db:
            row = db.execute("SELECT run_id, architecture, task, seed, status, config, metrics, error "
                             "FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        return RunRecord(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]),
                         json.loads(row[6] or "{}"), row[7])

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
