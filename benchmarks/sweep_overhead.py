"""Sweep overhead per run: a process per run (what `rnnbench sweep` did before its workers: one
`python -m rnnbench.cli run` each) against a long-lived worker (`rnnbench.sweeps.workers`).

The same quick runs (rnn and gru on the adding probe, `--preset quick`, four seeds each) go both
ways, one at a time, with one thread. Overhead is the time a run costs beyond its training,
validation, test and baselines (the `fit_s`, `evaluate_s` and `baselines_s` the runner records
in each run's environment `timings`): for a process, its whole wall time as measured from outside; for a worker, the driver's
time from handing the run out to its reply. Target (issue 10): at most 0.5 s per run in a worker.
Also the peak memory each run records (the peak resident set of its process during the run).

And a whole sweep as a user starts it (issue 28): `rnnbench sweep` of 12 quick runs (rnn, gru and
lstm on adding, four seeds) with two workers, from the command to its exit, conformance checks and
the workers' start-up included. Its fixed cost per run is (wall time x workers - the runs' own
training, validation and test time) / runs; goal: at most 1 s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.timing import Table, ratio, recorded, size
from rnnbench.store import ResultStore
from rnnbench.sweeps.plan import plan
from rnnbench.sweeps.workers import Driver, PlanSource

ARCHITECTURES, TASK, SEEDS = ["rnn", "gru"], "adding", size([0, 1, 2, 3], [0, 1])
OVERRIDES: dict[str, str] = size({}, {"trainer.max_steps": "3", "trainer.val_every_steps": "3"})


def _trained_seconds(store: ResultStore, run_id: str) -> float:
    timings = recorded(store, run_id)["environment"]["timings"]
    return timings["fit_s"] + timings["evaluate_s"] + timings.get("baselines_s", 0.0)


def _peaks(store: ResultStore, runs) -> list[float]:
    return [recorded(store, run.run_id)["peak_memory_mb"] for run in runs]


def per_process(folder: Path) -> tuple[list[float], list[float]]:
    """(overheads, peak memory) of each run in a process of its own."""
    store = ResultStore(folder / "process.sqlite")
    overheads = []
    runs = plan(ARCHITECTURES, [TASK], SEEDS, OVERRIDES, "quick")
    settings = [part for key, value in OVERRIDES.items() for part in ("--set", f"{key}={value}")]
    for run in runs:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rnnbench.cli", "run", run.architecture, run.task, "--preset",
                        "quick", "--seed", str(run.seed), "--store", str(store.path), "--no-progress", *settings],
                       check=True, capture_output=True)
        overheads.append(time.perf_counter() - started - _trained_seconds(store, run.run_id))
    return overheads, _peaks(store, runs)


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


def per_worker(folder: Path) -> tuple[list[float], float, list[float]]:
    """Overheads of each run after the first (the first pays the worker's start-up, reported apart),
    that first one, and every run's peak memory."""
    store = ResultStore(folder / "worker.sqlite")
    runs = plan(ARCHITECTURES, [TASK], SEEDS, OVERRIDES, "quick")
    source = _TimedSource(runs)
    Driver(store, workers=1, progress=False).execute(source, len(runs))
    overheads = [source.replied[run.run_id] - source.handed[run.run_id] - _trained_seconds(store, run.run_id)
                 for run in runs]
    return overheads[1:], overheads[0], _peaks(store, runs)


SWEEP_ARCHITECTURES, SWEEP_SEEDS, SWEEP_WORKERS = ["rnn", "gru", "lstm"], size(4, 1), 2


def whole_sweep(folder: Path) -> dict[str, float]:
    """The command's wall time, the runs' own time and the fixed cost per run of a 2-worker sweep."""
    store = folder / "sweep.sqlite"
    settings = [part for key, value in OVERRIDES.items() for part in ("--set", f"{key}={value}")]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rnnbench.cli", "sweep", "--architectures", ",".join(SWEEP_ARCHITECTURES),
                    "--tasks", TASK, "--seeds", str(SWEEP_SEEDS), "--preset", "quick", "--workers",
                    str(SWEEP_WORKERS), "--store", str(store), "--no-progress", *settings],
                   check=True, capture_output=True)
    wall = time.perf_counter() - started
    recorded_store = ResultStore(store)
    own = sum(_trained_seconds(recorded_store, run_id) for run_id in recorded_store.runs_frame().run_id)
    runs = len(SWEEP_ARCHITECTURES) * SWEEP_SEEDS
    return {"runs": runs, "workers": SWEEP_WORKERS, "wall_s": wall, "runs_own_s": own,
            "fixed_per_run_s": (wall * SWEEP_WORKERS - own) / runs}


def main() -> dict[str, Any]:
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        with tempfile.TemporaryDirectory() as folder:
            process, process_peaks = per_process(Path(folder))
            worker, first, worker_peaks = per_worker(Path(folder))
            sweep = whole_sweep(Path(folder))
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved
    runs = len(process)
    print(f"overhead per run beyond training, validation and test ({runs} quick runs of "
          f"{', '.join(ARCHITECTURES)} on {TASK}, seeds {SEEDS}, one thread; median over the runs)")
    table = Table("", [("", ""), ("overhead s", ".2f"), ("first run s", ".2f"), ("peak MB (median)", ",.0f"),
                       ("peak MB (max)", ",.0f")])
    table.add("process per run", statistics.median(process), process[0], statistics.median(process_peaks),
              max(process_peaks))
    table.add("long-lived worker", statistics.median(worker), first, statistics.median(worker_peaks),
              max(worker_peaks))
    table.print()
    overhead_ratio = ratio(statistics.median(process), statistics.median(worker))
    print(f"  ratio process / worker: {overhead_ratio:.1f}x (a worker's first run pays its start-up); "
          f"target: a worker's overhead <= 0.5 s per run")
    print(f"  a whole sweep (`rnnbench sweep`, {sweep['runs']} quick runs, {sweep['workers']} workers): "
          f"{sweep['wall_s']:.1f} s wall for {sweep['runs_own_s']:.1f} s of runs: a fixed "
          f"{sweep['fixed_per_run_s']:.2f} s per run; goal <= 1 s")
    return {"sweep": sweep, "runs": runs, "threads": 1, "process_overhead_s": process, "worker_overhead_s": worker,
            "worker_first_run_overhead_s": first, "process_peak_memory_mb": process_peaks,
            "worker_peak_memory_mb": worker_peaks, "ratio": overhead_ratio}
