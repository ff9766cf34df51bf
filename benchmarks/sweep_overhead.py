"""Sweep overhead per run: a process per run (what `rnnbench sweep` did before its workers: one
`python -m rnnbench.cli run` each) against a long-lived worker (`rnnbench.workers`).

The same quick runs (rnn and gru on the adding probe, `--preset quick`, four seeds each) go both
ways, one at a time, with one thread. Overhead is the time a run costs beyond its training,
validation and test (the `fit_s` and `evaluate_s` the runner records in each run's environment
`timings`): for a process, its whole wall time as measured from outside; for a worker, the driver's
time from handing the run out to its reply. Target (issue 10): at most 0.5 s per run in a worker.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rnnbench.store import ResultStore
from rnnbench.sweep import plan
from rnnbench.workers import Driver, PlanSource

ARCHITECTURES, TASK, SEEDS = ["rnn", "gru"], "adding", [0, 1, 2, 3]


def _trained_seconds(store: ResultStore, run_id: str) -> float:
    timings = store.runs_frame().set_index("run_id").environment[run_id]["timings"]
    return timings["fit_s"] + timings["evaluate_s"]


def per_process(folder: Path) -> list[float]:
    store = ResultStore(folder / "process.sqlite")
    overheads = []
    for run in plan(ARCHITECTURES, [TASK], SEEDS, {}, "quick"):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rnnbench.cli", "run", run.architecture, run.task, "--preset",
                        "quick", "--seed", str(run.seed), "--store", str(store.path), "--no-progress"],
                       check=True, capture_output=True)
        overheads.append(time.perf_counter() - started - _trained_seconds(store, run.run_id))
    return overheads


class _TimedSource(PlanSource):
    """A plan that notes when each run is handed out and when its reply arrives."""

    def __init__(self, runs) -> None:
        super().__init__(runs)
        self.handed: dict[str, float] = {}
        self.replied: dict[str, float] = {}

    def next_run(self):
        run = super().next_run()
        if run is not None:
            self.handed[run.run_id] = time.perf_counter()
        return run

    def finished(self, run, status, metrics) -> None:
        self.replied[run.run_id] = time.perf_counter()


def per_worker(folder: Path) -> tuple[list[float], float]:
    """Overheads of each run after the first (the first pays the worker's start-up, reported apart)."""
    store = ResultStore(folder / "worker.sqlite")
    runs = plan(ARCHITECTURES, [TASK], SEEDS, {}, "quick")
    source = _TimedSource(runs)
    Driver(store, workers=1, progress=False).execute(source, len(runs))
    overheads = [source.replied[run.run_id] - source.handed[run.run_id] - _trained_seconds(store, run.run_id)
                 for run in runs]
    return overheads[1:], overheads[0]


def main() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    with tempfile.TemporaryDirectory() as folder:
        process = per_process(Path(folder))
        worker, first = per_worker(Path(folder))
    print(f"overhead per run beyond training, validation and test ({len(process)} quick runs of "
          f"{', '.join(ARCHITECTURES)} on {TASK}, one thread):")
    print(f"  {'process per run':<22}{statistics.median(process):>8.2f} s (median)")
    print(f"  {'long-lived worker':<22}{statistics.median(worker):>8.2f} s (median; its first run, "
          f"which pays the worker's start-up: {first:.2f} s)")
    print(f"  ratio process / worker: {statistics.median(process) / statistics.median(worker):.1f}x; "
          f"target: a worker's overhead <= 0.5 s per run")
