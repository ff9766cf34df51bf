"""Local sweeps: architectures x tasks x seeds, each run in its own process, completed runs skipped.

A run in its own process means a crash, a divergence or a leak in one run cannot take the others
down; the store records every outcome, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from rnnbench import registry
from rnnbench.config import check_seed
from rnnbench.errors import BenchmarkError
from rnnbench.runner import prepare
from rnnbench.store import ResultStore

# outcomes that make a sweep exit non-zero
UNSUCCESSFUL = ("failed", "diverged", "interrupted")


@dataclass(frozen=True)
class PlannedRun:
    architecture: str
    task: str
    seed: int
    run_id: str
    config_id: str = ""
    architecture_version: int = 1
    task_version: int = 1
    config: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class SweepOutcomes(Counter):
    """A count of outcomes (completed, skipped, failed, ...), with one line per unsuccessful run
    naming it and its error (`errors`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.errors: list[str] = []


def plan(architectures: list[str] | None, tasks: list[str] | None, seeds: list[int],
         overrides: dict[str, str], preset: str | None) -> list[PlannedRun]:
    """Every compatible pair of the selection (None: all registered), for every seed. Settings
    that a task does not know (e.g. another architecture's option), or bad values, are an error,
    raised before anything runs."""
    if architectures is not None and not architectures:
        raise BenchmarkError("--architectures names no architecture: list some, e.g. "
                             "--architectures rnn,lstm, or leave the option out for all")
    if tasks is not None and not tasks:
        raise BenchmarkError("--tasks names no task: list some, e.g. --tasks copy,adding, or "
                             "leave the option out for all")
    if not seeds:
        raise BenchmarkError("the sweep has no seeds: pass --seeds 1 or more")
    for seed in seeds:
        check_seed(seed, "a seed")
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
                prepared = prepare(architecture, task, overrides, preset, seed)
                planned.append(PlannedRun(architecture, task, seed, prepared.run_id,
                                          prepared.config_id, prepared.architecture.version,
                                          prepared.task.version, prepared.config.flat()))
    if not planned:
        raise BenchmarkError("the sweep selects no compatible pair: see `rnnbench list --matrix`")
    return planned


def check_conformance(planned: list[PlannedRun], overrides: dict[str, str], preset: str | None,
                      store: ResultStore) -> None:
    """Refuse the sweep, before anything runs, if an architecture of the plan fails the
    conformance kit with its resolved options (a BenchmarkError with the kit's message); each
    verdict is computed once and kept in the store, where the sweep's runs find it."""
    from rnnbench import verdicts

    checked: set[tuple[str, str]] = set()
    # one seed per pair: the resolved options do not depend on the seed
    for item in {(item.architecture, item.task): item for item in planned}.values():
        prepared = prepare(item.architecture, item.task, overrides, preset, item.seed)
        key = (item.architecture, verdicts.options_hash(prepared.config.arch_options))
        if key not in checked:
            checked.add(key)
            verdicts.require(prepared.architecture, prepared.config.arch_options, store)


def sweep(planned: list[PlannedRun], overrides: dict[str, str], preset: str | None,
          store: ResultStore, progress: bool = True, check: bool = True) -> SweepOutcomes:
    """Run what is not completed yet; return a count of outcomes (completed, skipped, ...).
    `check=False` runs them with `--no-check` (see `check_conformance`).

    Every planned run ends with a row: a run whose process ends without recording its outcome
    (it failed before it started, e.g. on its data, or was killed) is recorded here, as
    interrupted if a signal ended it and as failed otherwise, with the last line it printed."""
    store.mark_stale_runs()
    outcomes = SweepOutcomes()
    bar = tqdm(planned, desc="sweep", unit="run", disable=not progress)
    for item in bar:
        bar.set_postfix_str(f"{item.architecture} on {item.task}, seed {item.seed}")
        before = store.get(item.run_id)
        if before is not None and before.status == "completed":
            outcomes["skipped"] += 1
            continue
        command = [sys.executable, "-m", "rnnbench.cli", "run", item.architecture, item.task,
                   "--seed", str(item.seed), "--store", str(store.path), "--no-progress"]
        if not check:
            command.append("--no-check")
        if preset:
            command += ["--preset", preset]
        for key, value in overrides.items():
            command += ["--set", f"{key}={value}"]
        result = subprocess.run(command, capture_output=True, text=True)
        last_line = _last_error_line(result.stderr)
        after = store.get(item.run_id)
        recorded = (after is not None and after.status != "running" and
                    (before is None or (after.started_at, after.finished_at)
                     != (before.started_at, before.finished_at)))
        if result.returncode != 0 and not recorded:
            status, error = _unrecorded_outcome(result.returncode, last_line)
            store.record_failure(run_id=item.run_id, config_id=item.config_id,
                                 architecture=item.architecture, task=item.task,
                                 architecture_version=item.architecture_version,
                                 task_version=item.task_version, seed=item.seed, preset=preset,
                                 config=item.config, error=error, status=status)
            after = store.get(item.run_id)
        status = after.status if after is not None else "failed"
        outcomes[status] += 1
        if status != "completed":
            error = (after.error if after is not None else None) or last_line or "(no output)"
            line = f"{item.architecture} on {item.task} (seed {item.seed}): {status}: {error}"
            outcomes.errors.append(line)
            tqdm.write(line)
    return outcomes


def _last_error_line(stderr: str) -> str:
    """The error a run printed: its `rnnbench: error:` line, else its last line."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("rnnbench: error:")]
    line = (errors or lines or [""])[-1]
    return line.removeprefix("rnnbench: error:").strip()


def _unrecorded_outcome(returncode: int, last_line: str) -> tuple[str, str]:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown"
        cause = f"the run's process was killed by signal {-returncode} ({name})"
        return "interrupted", cause + (f"; last output: {last_line}" if last_line else "")
    if returncode == 130:
        return "interrupted", last_line or "the run's process was interrupted"
    return "failed", last_line or f"the run's process exited with code {returncode} and no message"
