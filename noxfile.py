"""Sessions: `nox -s tests` (fast suite), `nox -s slow`, `nox -s sweep` (the main job), `nox -s bench`.

Every session installs the CPU build of torch 2.13.0 first (from the local wheel where there is
one), then the project, so pip never pulls a multi-GB CUDA build.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
TORCH = "torch==2.13.0"
# Tests train tiny models, for which one thread is fastest; it also keeps a busy 2-core machine
# from thrashing (OpenMP threads spinning against each other).
TEST_ENV = {"WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}


def _data_dir() -> str:
    """RNNBENCH_DATA if set, else ../shared/data beside the checkout (where CI puts it)."""
    return os.environ.get("RNNBENCH_DATA") or str((ROOT.parent / "shared" / "data").resolve())


def _install(session: nox.Session, extras: str = "") -> None:
    """pip's own lines are shown: a first install takes minutes, and silence reads as a hang."""
    session.log(f"installing {TORCH} (the CPU build), then the project{extras}")
    session.install(TORCH, silent=False)
    session.install("-e", f".{extras}", silent=False)


@nox.session
def tests(session: nox.Session) -> None:
    """The fast test suite (what CI runs), the layering contracts included (tests/test_layering.py)."""
    _install(session, "[test]")
    session.run("pytest", "-q", *session.posargs, env=TEST_ENV | {"RNNBENCH_DATA": _data_dir()})


@nox.session
def slow(session: nox.Session) -> None:
    """Long tests: real training to published-quality numbers, sweeps killed, raced and run on a
    local Ray cluster, the modern architectures on every task's quick preset and against their
    outside implementations (tests/test_peers.py)."""
    _install(session, "[test,ray]")
    # not suite dependencies: the peers of tests/test_peers.py (outside implementations, CPU-runnable)
    session.install("mingru-pytorch", "lru-pytorch", "mambapy", silent=False)
    session.run("pytest", "-q", "-m", "slow", *session.posargs, env=TEST_ENV | {"RNNBENCH_DATA": _data_dir()})


@nox.session
def sweep(session: nox.Session) -> None:
    """The main job: the committed sweep file leaderboards/quick/sweep.yaml (every architecture on the
    generated probes, quick preset, two seeds) with two workers, then the leaderboard."""
    _install(session)
    store = str(ROOT / "runs" / "quick.sqlite")
    session.run("rnnbench", "sweep", str(ROOT / "leaderboards" / "quick" / "sweep.yaml"), "--workers", "2",
                "--store", store, "--leaderboard", *session.posargs,
                env={"RNNBENCH_DATA": _data_dir()})


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark figure in one run (benchmarks/__main__.py), printed side by side as ratios and
    written with the environment to benchmarks/results/DATE-HOST.json: the runner against plain
    Lightning and a bare loop (steady state, whole run, data-loading share, peak memory), a sweep's
    overhead per run in a process against a worker, two runs together against one alone, every
    architecture's throughput and each custom recurrence against its fused module, step time
    against T, hidden and batch size, the echo-state network beside reservoirpy, determinism.
    About 10 minutes on 2 CPUs. `nox -s bench -- ptb_reference` runs the Zaremba-small PTB
    comparison (its own command); `BENCH_SMOKE=1` shrinks everything to seconds (a code check)."""
    _install(session)
    # not suite dependencies: reservoirpy is the peer of benchmarks/time_series.py; greenlet lets the
    # sides of benchmarks/runner_overhead.py take turns in one thread (benchmarks/turns.py)
    session.install("reservoirpy", "greenlet", silent=False)
    session.run("python", "-m", "benchmarks", *session.posargs,
                env={"RNNBENCH_DATA": _data_dir(), "WANDB_MODE": "offline"})
