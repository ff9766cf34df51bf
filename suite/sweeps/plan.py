"""Sweeps: a `SweepSpec` (a sweep file, or the command line's flags) planned into runs, recorded in
the store, and run by long-lived workers (`rnnbench.sweeps.workers`); completed runs are skipped, so a
sweep started again continues where it stopped.

A plan is every compatible (architecture, task) of the selection, for every combination of the
grid (`vary`), for every seed; a tuned sweep (`tune`) instead gives every pair the same number of
trials (`rnnbench.sweeps.tuning`) and then runs the best configuration with every seed.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnbench.core import registry
from rnnbench.core.errors import BenchmarkError
from rnnbench.training.prepare import prepare, run_identity
from rnnbench.store import ResultStore
from rnnbench.sweeps.spec import SweepSpec, setting_text

# outcomes that make a sweep exit non-zero
UNSUCCESSFUL = ("failed", "diverged", "interrupted")
MAX_PLANNED_RUNS = 100_000   # a plan larger than this is refused before anything is expanded


@dataclass(frozen=True)
class PlannedRun:
    """One run of a plan: what `rnnbench run` would be given, and the identity it resolves to.
    role: 'run' (a grid point), 'trial' (a tuning trial, number `trial`, settings `params`) or
    'best' (a tuned pair's best configuration, with one of the sweep's seeds)."""

    architecture: str
    task: str
    seed: int
    run_id: str
    config_id: str = ""
    architecture_version: int = 1
    task_version: int = 1
    overrides: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    preset: str | None = None
    config: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    role: str = "run"
    trial: int | None = None
    params: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    point: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def label(self) -> str:
        """'lstm on copy (task.length=100, seed 0)': the run, its grid point and seed (and trial)."""
        point = "".join(f"{key}={value}, " for key, value in self.point.items())
        trial = f", trial {self.trial}" if self.trial is not None else ""
        return f"{self.architecture} on {self.task} ({point}seed {self.seed}{trial})"

    def as_record(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "config_id": self.config_id, "architecture": self.architecture, "task": self.task,
                "seed": self.seed, "role": self.role, "trial": self.trial, "params": self.params}


def planned_runs(architecture: str, task: str, seeds: list[int], overrides: dict[str, str],
                 preset: str | None, point: dict[str, str]) -> list[PlannedRun]:
    """One grid point's runs, one per seed: resolved once (the seed changes only the run id)."""
    prepared = prepare(architecture, task, overrides, preset, seeds[0])
    config = prepared.config.flat()
    runs = []
    for seed in seeds:
        run_id, config_id = run_identity(prepared.architecture, prepared.task, prepared.config, seed)
        runs.append(PlannedRun(architecture, task, seed, run_id, config_id, prepared.architecture.version,
                               prepared.task.version, dict(overrides), preset, config, "run", None, {},
                               dict(point)))
    return runs


def planned_size(spec: SweepSpec) -> int:
    """How many runs the sweep file asks for at most, from its counts alone (every selected
    pair, compatible or not, times its grid, times the seeds or the trials and seeds): what
    `plan_sweep` checks before expanding anything."""
    arch_names = spec.architectures or list(registry.architectures())
    task_names = spec.tasks or list(registry.tasks())
    total = 0
    for task in task_names:
        for architecture in arch_names:
            per_point = spec.tune.trial_runs + len(spec.seeds) if spec.tunes(architecture) else len(spec.seeds)
            if spec.selects(architecture, task):
                axes = {**spec.vary, **spec.task_vary.get(task, {}), **spec.architecture_vary.get(architecture, {})}
                total += math.prod(len(values) for values in axes.values()) * per_point
    return total


def _refuse_too_large(spec: SweepSpec) -> None:
    size = planned_size(spec)
    if size > MAX_PLANNED_RUNS:
        raise BenchmarkError(f"the sweep plans up to {size:,} runs, more than {MAX_PLANNED_RUNS:,}: write fewer "
                             f"seeds, values in vary, trials, architectures or tasks, or split it into "
                             f"several sweep files")


def planned_run(architecture: str, task: str, seed: int, overrides: dict[str, str],
                preset: str | None, role: str = "run", trial: int | None = None,
                params: dict[str, Any] | None = None, point: dict[str, str] | None = None) -> PlannedRun:
    """Resolve one run (a BenchmarkError for any bad name or value) into a PlannedRun; `point`:
    the grid's values for it, shown in its label."""
    prepared = prepare(architecture, task, overrides, preset, seed)
    return PlannedRun(architecture, task, seed, prepared.run_id, prepared.config_id,
                      prepared.architecture.version, prepared.task.version, dict(overrides), preset,
                      prepared.config.flat(), role, trial, dict(params or {}), dict(point or {}))


@dataclass(frozen=True)
class TunedPair:
    """An (architecture, task, grid point) whose settings a tuned sweep searches."""

    architecture: str
    task: str
    overrides: dict[str, str]
    preset: str | None

    @property
    def key(self) -> str:
        """The pair and its grid point, as recorded with each of its runs (a tuned sweep may also vary)."""
        settings = ",".join(f"{key}={value}" for key, value in sorted(self.overrides.items()))
        return f"{self.architecture}|{self.task}|{hashlib.sha256(settings.encode()).hexdigest()[:8]}"


@dataclass
class SweepPlan:
    spec: SweepSpec
    runs: list[PlannedRun]
    tuned: list[TunedPair]

    @property
    def planned(self) -> int:
        """Runs planned in all: grid runs, and per tuned pair its trials and its best's seeds."""
        tune = self.spec.tune
        return len(self.runs) + (len(self.tuned) * (tune.trial_runs + len(self.spec.seeds)) if tune else 0)


class SweepOutcomes(Counter):
    """A count of outcomes (completed, skipped, failed, ...), with one line per unsuccessful run
    naming it and its error (`errors`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.errors: list[str] = []


def plan(architectures: list[str] | None, tasks: list[str] | None, seeds: list[int],
         overrides: dict[str, str], preset: str | None) -> list[PlannedRun]:
    """The runs of a plain sweep (no grid, no tuning): every compatible pair of the selection
    (None: all registered), for every seed. See `plan_sweep`."""
    spec = SweepSpec("sweep", architectures, tasks, list(seeds), preset, dict(overrides))
    return plan_sweep(spec).runs


def plan_sweep(spec: SweepSpec) -> SweepPlan:
    """Every compatible pair of the selection, for every grid point (and seed). Settings a task
    does not know, or bad values, are an error raised before anything runs."""
    if spec.architectures is not None and not spec.architectures:
        raise BenchmarkError("the sweep names no architecture: list some, e.g. --architectures "
                             "rnn,lstm, or leave the option out for all")
    if spec.tasks is not None and not spec.tasks:
        raise BenchmarkError("the sweep names no task: list some, e.g. --tasks copy,adding, or "
                             "leave the option out for all")
    if not spec.seeds:
        raise BenchmarkError("the sweep has no seeds: pass --seeds 1 or more")
    _refuse_too_large(spec)
    arch_names = spec.architectures or list(registry.architectures())
    task_names = spec.tasks or list(registry.tasks())
    for name in arch_names:
        registry.get_architecture(name)
    for name in task_names:
        registry.get_task(name)
    runs: list[PlannedRun] = []
    tuned: list[TunedPair] = []
    for task in task_names:
        for architecture in arch_names:
            base = {**spec.settings, **spec.task_settings.get(task, {}),
                    **spec.architecture_settings.get(architecture, {})}
            if not spec.selects(architecture, task) or not _compatible(architecture, task, base):
                continue
            for point in spec.grid(architecture, task):
                overrides = {**base, **point}
                if spec.tunes(architecture):
                    check_space(architecture, task, overrides, spec)
                    tuned.append(TunedPair(architecture, task, overrides, spec.preset))
                    continue
                runs += planned_runs(architecture, task, spec.seeds, overrides, spec.preset, point)
    if not runs and not tuned:
        raise BenchmarkError("the sweep selects no compatible pair: see `rnnbench list --matrix`")
    return SweepPlan(spec, runs, tuned)


def _compatible(architecture: str, task: str, settings: dict[str, str]) -> bool:
    """Whether the pair can run; for an encoder-decoder task, with the decoder its settings name
    (`task.decoder`), else the architecture itself."""
    decoder = settings.get("task.decoder")
    decoder_cls = registry.get_architecture(str(decoder)) if decoder not in (None, "none", "None") else None
    return registry.pair_compatibility(registry.get_architecture(architecture), registry.get_task(task),
                                       decoder_cls).ok


def check_conformance(runs: list[PlannedRun], store: ResultStore | None) -> None:
    """Refuse the sweep, before anything runs, if an architecture of the plan fails the
    conformance kit with its resolved options (a BenchmarkError with the kit's message); each
    verdict is computed once and kept in the store, where the sweep's runs find it."""
    from rnnbench.training import conformance_verdicts as verdicts

    checked: set[tuple[str, str]] = set()
    for item in runs:
        prepared = prepare(item.architecture, item.task, item.overrides, item.preset, item.seed)
        key = (item.architecture, verdicts.options_hash(prepared.config.arch_options))
        if key not in checked:
            checked.add(key)
            verdicts.require(prepared.architecture, prepared.config.arch_options, store)


# --------------------------------------------------------------------------- the plan, in words


def describe(sweep_plan: SweepPlan, store: ResultStore | None, path: Path, workers: int) -> str:
    """What `rnnbench sweep` prints before it starts: runs planned, completed and to do, and an
    estimated time from the wall times of stored runs where there are any. `store`: the results
    store at `path`, None while there is none (a dry run creates none)."""
    spec = sweep_plan.spec
    lines = [f"sweep {spec.name}: {sweep_plan.planned} runs planned into {path}"
             + ("" if store is not None else " (a new store)")]
    recorded = store.statuses() if store is not None else {}
    statuses = {item.run_id: recorded.get(item.run_id) for item in sweep_plan.runs}
    if sweep_plan.runs:
        done = sum(status == "completed" for status in statuses.values())
        earlier = Counter(status for status in statuses.values() if status not in (None, "completed"))
        lines.append(f"  grid: {len(sweep_plan.runs)} runs ({len(sweep_plan.runs) // len(spec.seeds)} "
                     f"configurations x {len(spec.seeds)} seeds): {done} completed, "
                     f"{len(sweep_plan.runs) - done} to do"
                     + "".join(f", {count} of them {status} before" for status, count in sorted(earlier.items())))
    if sweep_plan.tuned:
        tune = spec.tune
        trials = store.sweep_frame(spec.name) if store is not None and store.sweep_spec(spec.name) else None
        done = 0 if trials is None else int(((trials.role == "trial") & (trials.status == "completed")).sum())
        lines.append(f"  tuning: {len(sweep_plan.tuned)} (architecture, task) pairs x {tune.trials} "
                     f"trials ({tune.sampler} sampler over {', '.join(tune.space)}), {done} trial runs "
                     f"completed; then each pair's best configuration x {len(spec.seeds)} seeds")
        if tune.halving is not None:
            from rnnbench.sweeps.halving import rung_sizes, rung_steps

            steps = rung_steps(int(float(spec.settings["trainer.max_steps"])), tune.halving)
            lines.append("  successive halving: " + ", then ".join(
                f"{size} at {step:,} steps" for size, step in zip(rung_sizes(tune.trials, tune.halving), steps))
                + f" ({tune.trial_runs} trial runs per pair)")
    lines.append("  " + _estimate(sweep_plan, statuses, store, workers))
    return "\n".join(lines)


def _estimate(sweep_plan: SweepPlan, statuses: dict[str, str | None], store: ResultStore | None,
              workers: int) -> str:
    stored = store.wall_times() if store is not None else {}
    known, seconds, unknown = 0, 0.0, 0
    for item in sweep_plan.runs:
        if statuses.get(item.run_id) == "completed":
            continue
        estimate = stored.get((item.architecture, item.task, item.config_id),
                              stored.get((item.architecture, item.task, "")))
        if estimate is None:
            unknown += 1
        else:
            known, seconds = known + 1, seconds + estimate
    if sweep_plan.tuned:
        frame = store.sweep_frame(sweep_plan.spec.name) if store is not None else None
        completed = Counter() if frame is None else Counter(
            params.get("pair") for params, status in zip(frame.params, frame.status) if status == "completed")
        for pair in sweep_plan.tuned:
            estimate = stored.get((pair.architecture, pair.task, ""))
            count = max(0, sweep_plan.spec.tune.trial_runs + len(sweep_plan.spec.seeds) - completed[pair.key])
            if not count:
                continue
            if estimate is None:
                unknown += count
            else:
                known, seconds = known + count, seconds + count * estimate
    if not known and not unknown:
        return "nothing to do: every planned run is completed"
    text = (f"estimated time: {_duration(seconds / max(workers, 1))} for {known} runs with "
            f"{workers} worker(s), from the wall times of stored runs" if known else
            "estimated time: unknown (no stored run of these pairs yet)")
    return text + (f"; {unknown} runs without an estimate" if known and unknown else "")


def _duration(seconds: float) -> str:
    seconds = max(0, math.ceil(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return (f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds} s" if minutes
            else f"{seconds} s")


def status_text(sweep_plan: SweepPlan, store: ResultStore | None, path: Path) -> str:
    """`rnnbench sweep status FILE`: where a sweep stands, by (task, architecture); `store` None
    while there is no store at `path`."""
    spec = sweep_plan.spec
    frame = store.sweep_frame(spec.name) if store is not None and store.sweep_spec(spec.name) else None
    recorded = store.statuses() if store is not None else {}
    planned_ids = {item.run_id for item in sweep_plan.runs}
    lines = [f"sweep {spec.name} in {path}: "
             + ("not started yet" if frame is None else
                f"{int((frame.status == 'completed').sum())} of {sweep_plan.planned} runs completed")]
    rows: dict[tuple[str, str], Counter] = {}
    for item in sweep_plan.runs:
        rows.setdefault((item.task, item.architecture), Counter())[recorded.get(item.run_id) or "planned"] += 1
    if frame is not None:
        for record in frame.itertuples():
            if record.run_id not in planned_ids and record.role in ("trial", "best"):
                rows.setdefault((record.task, record.architecture), Counter())[f"{record.role}s {record.status}"] += 1
    for pair in sweep_plan.tuned:
        rows.setdefault((pair.task, pair.architecture), Counter())
    width = max((len(f"{task} / {arch}") for task, arch in rows), default=10)
    for (task, architecture), counts in sorted(rows.items()):
        text = ", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "not started"
        lines.append(f"  {task + ' / ' + architecture:<{width}}  {text}")
    if spec.tune is not None and frame is not None:
        tuning = store.tuning_frame(spec.name)
        for row in tuning.itertuples():
            lines.append(f"  tuned {row.task} / {row.architecture}: {row.trials} trials, best run "
                         f"{row.best_run_id or '(none completed)'}")
    return "\n".join(lines)


def check_space(architecture: str, task: str, overrides: dict[str, str], spec: SweepSpec) -> None:
    """Refuse a search space that a run cannot take, before anything runs: each setting at both
    ends of its range (every choice) is resolved as a run would be."""
    space = spec.tune.space
    for key, distribution in space.items():
        for value in distribution.values:
            planned_run(architecture, task, spec.seeds[0], {**overrides, key: setting_text(value)},
                        spec.preset)
