"""Sides that take turns, window by window: a paired timing for a shared, noisy machine.

Timing one side after another lets a slow spell of the machine (another tenant, a throttled core)
land on whichever side happened to run during it: on this suite's 2-CPU VM the very same loop ran
at up to 1.5 times its best step time from one repeat to the next, more than the 2-5% margins the
runner's targets are set at. Here the sides train together, and only one runs at a time: after its
warm-up steps, and after each window of `Windows.steps` steps, a side hands the turn to the next
side still training. Round k of windows runs side A's window k, side B's window k, ... back to
back, so a slow spell covers neighbouring windows of every side alike, and the ratio of two sides
within one round compares them under the same conditions.

The sides are greenlets (the `greenlet` package: coroutines with their own stacks) in the calling
thread, not threads: torch's OpenMP pool belongs to the thread that calls it, and with a thread
per side libgomp saw more OpenMP threads than CPUs and stopped spinning between parallel regions,
putting its workers to sleep on every op (about 460 context switches per step of the 2x200 LM, and
steps 1.3 to 3 times slower than on the main thread, worst for Lightning's). In one thread, every
side runs with the same pool, thread count and subnormal flags as a run.

A side reports its steps by calling `step_done()` after each training step (outside `take_turns`
it does nothing). A window's time runs from the moment the side got the turn back to the end of
its last step: the other sides' windows in between are not counted, and each window holds exactly
`steps` steps of the side's own work. Set-up before the warm-up and whatever follows the last
window (a final evaluation) run while the side holds the turn, but outside any window.
"""

from __future__ import annotations

import math
import signal
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.timing import Windows


@dataclass
class Timed:
    """The (start, end) perf_counter times of a side's timed windows."""

    windows: list[tuple[float, float]]
    steps_per_window: int

    @property
    def window_means(self) -> list[float]:
        """Seconds per step in each window."""
        return [(end - start) / self.steps_per_window for start, end in self.windows]

    @property
    def step_s(self) -> float:
        """The median over windows of the mean seconds per step."""
        return statistics.median(self.window_means)


@dataclass
class _Side:
    steps: int = 0
    resumed: float = 0.0
    windows: list[tuple[float, float]] = field(default_factory=list)


_sides: dict[Any, _Side] = {}      # greenlet -> its side, while take_turns runs
_plan: Windows | None = None


def step_done() -> None:
    """Report one training step of the calling side: at the end of the warm-up and of every window,
    hand the turn on (returns when the turn comes back). A no-op outside `take_turns`."""
    if not _sides or _plan is None:
        return
    from greenlet import getcurrent

    side = _sides.get(getcurrent())
    if side is None:
        return
    side.steps += 1
    past_warmup = side.steps - _plan.warmup
    if past_warmup < 0 or past_warmup % _plan.steps or past_warmup > _plan.windows * _plan.steps:
        return
    if past_warmup > 0:
        side.windows.append((side.resumed, time.perf_counter()))
    getcurrent().parent.switch()
    side.resumed = time.perf_counter()


def take_turns(sides: dict[str, Callable[[], Any]], windows: Windows) -> dict[str, Timed]:
    """Train every side, one at a time, handing the turn on after the warm-up and after every
    window of `windows` (module docstring); a side's function returns once it has trained
    `windows.total` steps and reported each with `step_done()`. A side that raises stops the
    others (their `finally` blocks run) and the error is raised here."""
    global _plan
    try:
        from greenlet import greenlet
    except ImportError as error:
        raise ImportError("the paired timing needs the greenlet package: pip install greenlet "
                          "(nox -s bench installs it)") from error
    coroutines = {name: greenlet(train) for name, train in sides.items()}
    states = {name: _Side() for name in sides}
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    _plan = windows
    _sides.update({coroutines[name]: states[name] for name in sides})
    try:
        while not all(coroutine.dead for coroutine in coroutines.values()):
            for coroutine in coroutines.values():
                if not coroutine.dead:
                    coroutine.switch()
    finally:
        for coroutine in coroutines.values():
            if not coroutine.dead:
                coroutine.throw()        # GreenletExit: the side's finally blocks run
        _sides.clear()
        _plan = None
        for number, handler in handlers.items():   # Trainers restore theirs in their own order
            signal.signal(number, handler)
    timed = {}
    for name, state in states.items():
        if len(state.windows) != windows.windows:
            raise RuntimeError(f"side '{name}' reported {state.steps} steps, {windows.total} planned: "
                               f"{len(state.windows)} of {windows.windows} windows timed")
        timed[name] = Timed(state.windows, windows.steps)
    return timed


def paired_ratios(numerator: Timed, denominator: Timed) -> list[float]:
    """Round by round, numerator's window mean over denominator's (windows of the same round ran
    back to back)."""
    return [a / b for a, b in zip(numerator.window_means, denominator.window_means)]


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): the median and a distribution-free confidence interval for it, the order
    statistics x_(j) and x_(k) around the middle that the binomial(n, 1/2) count of values below
    the true median puts it between (normal approximation, j = n/2 - z sqrt(n)/2)."""
    ordered = sorted(values)
    n = len(ordered)
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    half_width = z * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - half_width))
    high = min(n - 1, math.ceil(n / 2 + half_width) - 1)
    return statistics.median(ordered), ordered[low], ordered[high]
