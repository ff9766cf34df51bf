"""What every benchmark module shares: sizes (full, or seconds-long under BENCH_SMOKE=1), the
warm-up + median-of-windows timer, the linear fit, thread settings, the environment recorded with
the figures, and the side-by-side tables.

The timer. A measurement runs `warmup` steps that are not timed (lazy initialisation, allocator
and cache warm-up), then `windows` windows of `steps` steps each; the figure is the median over
the windows of a window's mean seconds per step, so one window disturbed by other load on the
machine moves it little. Where the steps run inside someone else's loop (Lightning, the runner),
the same rule is applied to the step intervals read from per-step timestamps
(`median_of_windows`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

SMOKE = os.environ.get("BENCH_SMOKE", "").strip() not in ("", "0")


def size(full: Any, smoke: Any) -> Any:
    """`full` for the real benchmark, `smoke` under BENCH_SMOKE=1 (a check that the code runs)."""
    return smoke if SMOKE else full


# --------------------------------------------------------------------------- the timer


@dataclass(frozen=True)
class Windows:
    """warmup untimed steps, then `windows` windows of `steps` timed steps each."""

    warmup: int
    windows: int
    steps: int

    @property
    def total(self) -> int:
        return self.warmup + self.windows * self.steps

    def describe(self) -> str:
        return (f"{self.warmup} warm-up steps, then the median of {self.windows} windows of "
                f"{self.steps} steps")

    def as_dict(self) -> dict[str, int]:
        return {"warmup": self.warmup, "windows": self.windows, "steps": self.steps}


def median_of_windows(intervals: Sequence[float], windows: Windows) -> float:
    """Median over the windows of the mean of their step intervals (seconds per step), the first
    `windows.warmup` intervals left out. Fewer intervals than planned (a loop that stopped early)
    shrink the last window; none at all is an error."""
    timed = list(intervals[windows.warmup:windows.total])
    if not timed:
        raise ValueError(f"no timed steps: {len(intervals)} intervals for {windows.describe()}")
    means = [statistics.fmean(timed[start:start + windows.steps])
             for start in range(0, len(timed), windows.steps)]
    return statistics.median(means)


def intervals(stamps: Sequence[float]) -> list[float]:
    """Seconds between consecutive timestamps."""
    return [later - earlier for earlier, later in zip(stamps, stamps[1:])]


def time_steps(step: Callable[[], object], windows: Windows) -> float:
    """Median seconds per call of `step` (see the module docstring)."""
    for _ in range(windows.warmup):
        step()
    means = []
    for _ in range(windows.windows):
        started = time.perf_counter()
        for _ in range(windows.steps):
            step()
        means.append((time.perf_counter() - started) / windows.steps)
    return statistics.median(means)


class TimedIterator:
    """Wraps an iterator and keeps the seconds each `next()` took (data loading)."""

    def __init__(self, inner: Iterator[Any], sink: list[float]) -> None:
        self.inner, self.sink = inner, sink

    def __iter__(self) -> TimedIterator:
        return self

    def __next__(self) -> Any:
        started = time.perf_counter()
        item = next(self.inner)   # the call that finds the end of a pass is not a batch: not kept
        self.sink.append(time.perf_counter() - started)
        return item


class TimedIterable:
    """An iterable whose iterators time their `next()` calls into `fetch_seconds` (every pass)."""

    def __init__(self, inner: Iterable[Any]) -> None:
        self.inner = inner
        self.fetch_seconds: list[float] = []

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __iter__(self) -> TimedIterator:
        return TimedIterator(iter(self.inner), self.fetch_seconds)


def data_share(fetch_seconds: Sequence[float], step_intervals: Sequence[float], windows: Windows) -> float:
    """Data loading's share of step time over the timed steps: the fetches of the timed steps over
    the intervals of the same steps (Lightning fetches one batch ahead: off by one batch, which
    is nothing over hundreds)."""
    start, stop = windows.warmup, windows.total
    timed = sum(step_intervals[start:stop])
    return sum(fetch_seconds[start:stop]) / timed if timed > 0 else float("nan")


# --------------------------------------------------------------------------- fits and ratios


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float]:
    """Least squares y = slope x + intercept, with R^2 (1 - residual / total sum of squares)."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
    slope = sxy / sxx if sxx else float("nan")
    intercept = mean_y - slope * mean_x
    total = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys))
    return {"slope": slope, "intercept": intercept, "r2": 1 - residual / total if total else float("nan")}


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


# --------------------------------------------------------------------------- what runs recorded


def recorded(store: Any, run_id: str) -> dict[str, Any]:
    """A run's row in a results store (a path or a ResultStore) as a dict: peak_memory_mb,
    wall_time_s, items_per_second, environment (decoded: threads, timings, ...), ..."""
    from rnnbench.store import ResultStore

    store = store if isinstance(store, ResultStore) else ResultStore(store)
    row = store.runs_frame().set_index("run_id").loc[run_id]
    return {name: (value.item() if hasattr(value, "item") else value) for name, value in row.items()}


# --------------------------------------------------------------------------- threads


def runner_threads(workers: int, environ: dict[str, str] | None = None) -> int:
    """The thread count the suite gives each of `workers` concurrent runs
    (`rnnbench.sweeps.workers.threads_per_worker`), as it would decide it under `environ` (default: this
    process's environment)."""
    from rnnbench.sweeps.workers import threads_per_worker

    if environ is None:
        return threads_per_worker(workers)
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(environ)
        return threads_per_worker(workers)
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[int]:
    """torch's intra-op threads set to `threads` inside the block, restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- environment


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "KMP_BLOCKTIME")


def environment() -> dict[str, Any]:
    """What the runner records with every run (versions, device, threads, host, git commit), and
    what the benchmark adds: CPUs (all, and those this process may use), torch's thread pools and
    parallel backend, the thread variables, the command and the smoke flag."""
    import torch

    from rnnbench.training.environment import environment as run_environment

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    info = torch.__config__.parallel_info()
    backend = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                    if line.startswith("ATen parallel backend")), None)
    return {**run_environment(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "cpus_usable": usable, "interop_threads": torch.get_num_interop_threads(),
            "parallel_backend": backend,
            "thread_variables": {name: os.environ.get(name) for name in THREAD_VARIABLES},
            "runner_threads_alone": runner_threads(1), "runner_threads_two_workers": runner_threads(2),
            "command": [sys.executable, "-m", "benchmarks", *sys.argv[1:]], "smoke": SMOKE}


# --------------------------------------------------------------------------- tables


@dataclass
class Table:
    """A table printed with aligned columns: `columns` are (heading, format) pairs; a format is a
    format spec ("8.2f", ",.0f") applied to numbers, strings printed as they are."""

    title: str
    columns: list[tuple[str, str]]
    rows: list[list[Any]] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append(list(cells))

    def render(self) -> str:
        cells = [[heading for heading, _ in self.columns]]
        for row in self.rows:
            cells.append([_format(value, spec) for value, (_, spec) in zip(row, self.columns)])
        widths = [max(len(row[column]) for row in cells) for column in range(len(self.columns))]
        lines = [self.title] if self.title else []
        for index, row in enumerate(cells):
            text = "  ".join(value.ljust(width) if column == 0 else value.rjust(width)
                             for column, (value, width) in enumerate(zip(row, widths)))
            lines.append("  " + text.rstrip())
            if index == 0:
                lines.append("  " + "  ".join("-" * width for width in widths))
        return "\n".join(lines)

    def print(self) -> None:
        print(self.render(), flush=True)


def _format(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value:  # NaN
            return "n/a"
        return format(value, spec)
    return str(value)
