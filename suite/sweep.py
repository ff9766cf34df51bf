"""Local sweeps: architectures x tasks x seeds, each run in its own process, completed runs skipped.

A run in its own process means a crash, a divergence or a leak in one run cannot take the others
down; the store records every outcome, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass

from tqdm import tqdm

from suite import registry
from suite.errors import BenchmarkError
from suite.runner import prepare
from suite.store import ResultStore


@dataclass(frozen=True)
class PlannedRun:
    architecture: str
    task: str
    seed: int
    run_id: str


def plan(architectures: list[str] | None, tasks: list[str] | None, seeds: list[int],
         overrides: dict[str, str], preset: str | None) -> list[PlannedRun]:
    """Every compatible pair of the selection, for every seed. Settings that a task does not
    know (e.g. another architecture's option) are an error, raised before anything runs."""
    arch_names = architectures or list(registry.architectures())
    task_names = tasks or list(registry.tasks())
    for name in arch_names:
        registry.get_architecture(name)
    for name in task_names:
        registry.get_task(name)
    planned = []
    for task in task_names:
        for architecture in arch_names:
            if not registry.pair_compatibility(registry.get_architecture(architecture),
                                               registry.get_task(task)).ok:
                continue
            for seed in seeds:
                *_, run_id, _config_id = prepare(architecture, task, overrides, preset, seed)
                planned.append(PlannedRun(architecture, task, seed, run_id))
    if not planned:
        raise BenchmarkError("the sweep selects no compatible pair: see `rnnbench list --matrix`")
    return planned


def sweep(planned: list[PlannedRun], overrides: dict[str, str], preset: str | None,
          store: ResultStore, progress: bool = True) -> Counter:
    """Run what is not completed yet; return a count of outcomes (completed, skipped, ...)."""
    store.mark_stale_runs()
    outcomes: Counter = Counter()
    bar = tqdm(planned, desc="sweep", unit="run", disable=not progress)
    for item in bar:
        bar.set_postfix_str(f"{item.architecture} on {item.task}, seed {item.seed}")
        if store.status_of(item.run_id) == "completed":
            outcomes["skipped"] += 1
            continue
        command = [sys.executable, "-m", "suite.cli", "run", item.architecture, item.task,
                   "--seed", str(item.seed), "--store", str(store.path), "--no-progress"]
        if preset:
            command += ["--preset", preset]
        for key, value in overrides.items():
            command += ["--set", f"{key}={value}"]
        result = subprocess.run(command, capture_output=True, text=True)
        status = store.status_of(item.run_id) or "failed"
        outcomes[status] += 1
        if result.returncode != 0:
            last_line = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            tqdm.write(f"{item.architecture} on {item.task} (seed {item.seed}): {status}: {last_line}")
    return outcomes
