"""Sharing the CPU cores between the processes that train on one machine.

Each process that trains registers itself while it trains (`while_training`, around
`rnnbench.training.runner.run`; a `rnnbench run` process for its whole life, `register`, so that two started
together see each other before either decides): an empty file named by its PID in a per-user
folder of the temp directory. A run that is not told its thread count ($OMP_NUM_THREADS) takes
the usable CPUs shared out between the registered processes, at least one. A run alone uses every
core; two runs started together take half each instead of both taking every core, which on a full
machine slows every step down many times (`python -m benchmarks concurrency`).

The count is decided once, when training starts, and recorded with the run (`threads`, and
`thread_policy` saying why): results are reproducible per thread count, so it never changes
during a run. A process that died without removing its file is recognised (no such PID) and its
file removed.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

Function = TypeVar("Function", bound=Callable[..., Any])

THREADS_ENV = "OMP_NUM_THREADS"


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the platform says, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _folder() -> Path:
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"rnnbench-{user}" / "training"


def _new_mark() -> Path | None:
    """This process's file, created now; None if it existed already, or cannot be written (a
    read-only temp directory: the run then counts only itself, and is not stopped for it)."""
    try:
        folder = _folder()
        folder.mkdir(parents=True, exist_ok=True)
        mark = folder / str(os.getpid())
        if mark.exists():
            return None
        mark.touch()
        return mark
    except OSError:
        return None


def register() -> None:
    """Count this process among those training on the machine, until it exits (idempotent)."""
    mark = _new_mark()
    if mark is not None:
        atexit.register(mark.unlink, missing_ok=True)


@contextlib.contextmanager
def training() -> Iterator[None]:
    """Count this process among those training while the block runs (one registered for its
    whole life stays registered)."""
    mark = _new_mark()
    try:
        yield
    finally:
        if mark is not None:
            mark.unlink(missing_ok=True)


def while_training(function: Function) -> Function:
    """Decorate a function that trains: the process counts as training while it runs."""
    @functools.wraps(function)
    def counted(*args: Any, **kwargs: Any) -> Any:
        with training():
            return function(*args, **kwargs)
    return counted  # type: ignore[return-value]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process with that PID: alive
        return True
    return True


def training_processes() -> int:
    """The registered processes that are still alive (at least this one)."""
    alive = 0
    try:
        for mark in _folder().iterdir():
            if not mark.name.isdigit():
                continue
            if _alive(int(mark.name)):
                alive += 1
            else:
                mark.unlink(missing_ok=True)
    except OSError:   # no folder, or one this process cannot read: it counts itself
        pass
    return max(alive, 1)


def configured_threads() -> int | None:
    """$OMP_NUM_THREADS when it holds a positive count, else None."""
    value = os.environ.get(THREADS_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def threads_for_run() -> tuple[int, str]:
    """(threads, why) for a run starting to train now: $OMP_NUM_THREADS if set, else the usable
    CPUs shared out between the registered training processes."""
    configured = configured_threads()
    if configured is not None:
        return configured, f"{THREADS_ENV}={configured}"
    cpus, processes = usable_cpus(), training_processes()
    return max(1, cpus // processes), f"{cpus} CPUs shared by {processes} training process(es)"
