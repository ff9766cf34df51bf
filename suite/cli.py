"""The `rnnbench` command line: list, run, sweep, runs, check, leaderboard, data, sample, diagnose,
known-answers."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap
import traceback
from pathlib import Path
from typing import Any

from rnnbench.core.errors import BenchmarkError, DivergedError, RunInterrupted, did_you_mean, path_problem
from rnnbench.training.quiet import quiet_library_chatter

DEFAULT_STORE = "runs/rnnbench.sqlite"
MAX_IMAGES = 1_024   # `sample --count`: one grid
MAX_SEEDS = 1_000    # `sweep --seeds`: every seed is planned up front
MAX_WORKERS = 256    # `sweep --workers`
MATRIX_WIDTH = 100   # `list --matrix`: the columns of a terminal
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg", ".tif", ".tiff", ".webp")


def _store_path(args: argparse.Namespace) -> Path:
    """--store, else $RNNBENCH_STORE (empty counts as unset), else the default; an empty --store
    is an error, not the default."""
    if args.store is not None:
        if not args.store.strip():
            raise BenchmarkError(f"--store is empty: pass a file path, e.g. --store {DEFAULT_STORE}, "
                                 f"or leave the option out for $RNNBENCH_STORE or {DEFAULT_STORE}")
        return Path(args.store).expanduser()
    return Path(os.environ.get("RNNBENCH_STORE") or DEFAULT_STORE).expanduser()


def _csv(text: str | None) -> list[str] | None:
    """None (option not given) stays None; 'a, b' -> ['a', 'b']; '' or ',' -> [] (names nothing)."""
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    from rnnbench.training.config import parse_assignments

    overrides = parse_assignments(args.set or [])
    if args.params is not None:   # --params '' is a bad budget, not no budget
        overrides["arch.params"] = args.params
    return overrides


def _seed(args: argparse.Namespace) -> int:
    from rnnbench.core.constraints import check_seed

    return check_seed(args.seed, "--seed")


def _output_file(text: str, what: str, default_name: str | None = None,
                 suffixes: tuple[str, ...] | None = None) -> Path:
    """The file `--output` names, checked before any work is done: a folder gets `default_name`
    inside it (or is refused when there is none), a missing suffix becomes the first of
    `suffixes`, and a path under a file is refused."""
    if not text.strip():
        raise BenchmarkError(f"--output is empty: name a file for {what}, or leave the option out")
    output = Path(text).expanduser()
    if output.is_dir() or text.endswith(("/", os.sep)):
        if default_name is None:
            raise BenchmarkError(f"--output {text} is a folder: name a file for {what}, e.g. "
                                 f"--output {output / 'leaderboard.md'}")
        output = output / default_name
    elif suffixes and not output.suffix:
        output = output.with_suffix(suffixes[0])
    if suffixes and output.suffix.lower() not in suffixes:
        raise BenchmarkError(f"--output {output} cannot hold {what}: name a file ending in "
                             f"{', '.join(suffixes)}, e.g. --output {output.with_suffix(suffixes[0])}")
    problem = path_problem(output)
    if problem:
        raise BenchmarkError(f"cannot write {what} to {output}: {problem}; pass an --output path "
                             f"in a folder")
    return output


def _written(output: Path, write) -> Path:
    """Run `write()`, turning a file-system error into a message naming the fix."""
    try:
        return write()
    except OSError as error:
        raise BenchmarkError(f"cannot write {output} ({error.strerror or error}): pass an --output "
                             f"path in a writable folder") from None


# --------------------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace) -> int:
    from rnnbench.core import registry

    architectures, tasks = registry.architectures(), registry.tasks()
    if args.matrix:
        print(matrix_text(architectures, tasks))
    else:
        if args.what in (None, "architectures"):
            print("Architectures:")
            print(_aligned([[name, "causal" if cls.capabilities.causal else "non-causal",
                             "/".join(cls.capabilities.structures), f"v{cls.version}", _summary(cls)]
                            for name, cls in architectures.items()]))
        if args.what in (None, "tasks"):
            print("Tasks:")
            print(_aligned([[name, cls.requirements.structure,
                             "needs causal" if cls.requirements.causal else "",
                             f"{cls.primary_metric} ({cls.direction})", f"v{cls.version}", _summary(cls)]
                            for name, cls in tasks.items()]))
    _warn_about_plugins()
    return 0


def _warn_about_plugins() -> None:
    """Plugins that failed to load or lost their name to another, on stderr: a run of `lstm` must
    not quietly train someone else's class, nor the in-tree one when an outsider expected its own."""
    from rnnbench.core import registry

    for line in registry.plugin_warnings():
        print(line, file=sys.stderr)


def _aligned(rows: list[list[str]]) -> str:
    """Rows of cells as lines indented by two spaces, each column as wide as its widest cell
    (long plugin names included) plus two spaces; the last column is not padded."""
    if not rows:
        return ""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return "\n".join(("  " + "".join(f"{cell:<{width + 2}}" for cell, width in zip(row, widths))
                      + row[-1]).rstrip() for row in rows)


def _summary(cls: type) -> str:
    """First line of the class's own docstring, else of its module's."""
    own = cls.__dict__.get("__doc__")
    doc = (own or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""


def matrix_text(architectures: dict, tasks: dict) -> str:
    """Which architecture can run which task, compact: tasks are numbered columns (named below),
    in blocks of as many columns as fit `MATRIX_WIDTH`, a cell is `ok` or the letter of its
    reason, and each distinct reason is listed once with the number of pairs it stops."""
    from rnnbench.core.registry import pair_compatibility

    width = max(len(name) for name in architectures) + 2
    columns = [str(number) for number in range(1, len(tasks) + 1)]
    cell = max(3, max(len(column) for column in columns) + 1)
    reasons: dict[str, list[str]] = {}   # reason -> the pairs it stops
    cells: dict[str, list[str]] = {}
    for arch_name, arch in architectures.items():
        cells[arch_name] = []
        for task_name, task in tasks.items():
            verdict = pair_compatibility(arch, task)
            if verdict.ok:
                cells[arch_name].append("ok")
            else:
                reasons.setdefault(verdict.reason, []).append(f"{arch_name} x {task_name}")
                cells[arch_name].append(_letter(list(reasons).index(verdict.reason)))
    lines = ["architecture x task: ok, or the letter of the reason the pair cannot run (below)"]
    per_block = max(1, (MATRIX_WIDTH - width) // cell)     # as many task columns as fit a terminal
    for start in range(0, len(columns), per_block):
        block = slice(start, start + per_block)
        lines += ["", " " * width + "".join(f"{column:<{cell}}" for column in columns[block]).rstrip()]
        lines += [(f"{arch_name:<{width}}" + "".join(f"{c:<{cell}}" for c in row[block])).rstrip()
                  for arch_name, row in cells.items()]
    named = ", ".join(f"{number}\N{NO-BREAK SPACE}{name}" for number, name in zip(columns, tasks))
    lines += ["", *(line.replace("\N{NO-BREAK SPACE}", " ") for line in textwrap.wrap(
        "Tasks: " + named, MATRIX_WIDTH, subsequent_indent="  ", break_on_hyphens=False))]
    if reasons:
        lines += ["", "Reasons:"]
        for index, (reason, pairs) in enumerate(reasons.items()):
            count = f"{len(pairs)} pairs" if len(pairs) > 1 else f"1 pair: {pairs[0]}"
            lines += textwrap.wrap(f"{_letter(index):>3}  {reason} ({count})", MATRIX_WIDTH,
                                   subsequent_indent=" " * 6, break_on_hyphens=False)
    return "\n".join(lines)


def _letter(index: int) -> str:
    """a, b, ..., z, aa, ab, ...: a reason's key in the matrix."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("a") + remainder) + letters
    return letters


class RunFailed(Exception):
    """A run started, is recorded as failed, and the CLI exits with EXIT_NOT_COMPLETED."""


def cmd_run(args: argparse.Namespace) -> int:
    from rnnbench.training import cpu_share

    cpu_share.register()   # before the slow imports: a run started beside this one counts it
    from rnnbench.core import registry

    registry.get_architecture(args.architecture)   # a wrong name is refused before Lightning loads
    registry.get_task(args.task)
    from rnnbench.store import ResultStore
    from rnnbench.training import runner

    seed, store = _seed(args), _store_path(args)
    _warn_about_plugins()
    try:
        result = runner.run(args.architecture, args.task, _overrides(args), preset=args.preset, seed=seed,
                            store=store, progress=not args.no_progress, wandb=args.wandb,
                            tensorboard=args.tensorboard, check=not args.no_check)
    except (BenchmarkError, KeyboardInterrupt):
        raise
    except Exception as error:   # a run that started and failed is recorded as failed: say so
        run_id = runner.prepare(args.architecture, args.task, _overrides(args), args.preset, seed).run_id
        if not Path(store).exists() or ResultStore(store).status_of(run_id) != "failed":
            raise   # not a run's failure: an internal error
        raise RunFailed(f"run {run_id} failed (recorded as failed in {store}): "
                        f"{type(error).__name__}: {_one_line(error)}") from error
    print(f"run {result.run_id} completed: {result.parameters} parameters "
          f"(hidden size {result.hidden_size}), {result.items_per_second:,.0f} items/s, "
          f"{result.wall_time_s:.1f} s")
    for name, value in sorted(result.metrics.items()):
        print(f"  {name:<24} {value:.6g}")
    print(f"stored in {result.store_path}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from rnnbench.core.constraints import Between, check
    from rnnbench.store import ResultStore
    from rnnbench.sweeps.plan import UNSUCCESSFUL, check_conformance, describe, plan_sweep, planned_run, status_text
    from rnnbench.sweeps.workers import Driver, PlanSource, threads_per_worker

    words = args.target or []
    status = words[:1] == ["status"]
    files = words[1:] if status else words
    if len(files) > 1 or (status and not files):
        raise BenchmarkError("pass one sweep file, e.g. `rnnbench sweep leaderboards/quick/sweep.yaml` "
                             "or `rnnbench sweep status leaderboards/quick/sweep.yaml`")
    check("--workers", args.workers, Between(1, MAX_WORKERS), hint=": the number of runs at once, "
                                                                    "e.g. --workers 2")
    if args.backend != "ray" and (args.address or args.storage):
        raise BenchmarkError("--address and --storage belong to the Ray backend: add --backend ray")
    spec = _sweep_file(files[0], args) if files else _sweep_from_flags(args)
    sweep_plan = plan_sweep(spec)
    path = Path(_store_path(args))
    existing = ResultStore(path) if path.exists() else None   # status and dry runs create none
    if status:
        print(status_text(sweep_plan, existing, path))
        return 0
    print(describe(sweep_plan, existing, path, args.workers))
    _warn_about_plugins()
    if args.dry_run:
        return 0
    if not args.no_check:   # every architecture passes the conformance kit before anything runs
        check_conformance(sweep_plan.runs + [planned_run(pair.architecture, pair.task, spec.seeds[0],
                                                         pair.overrides, pair.preset)
                                             for pair in sweep_plan.tuned], existing)
    store = existing or ResultStore(path)
    store.record_sweep(spec.name, spec.as_dict())
    store.plan_runs(spec.name, [item.as_record() for item in sweep_plan.runs])
    if spec.tune is not None:
        from rnnbench.sweeps.tuning import TuningSource

        source = TuningSource(sweep_plan.tuned, spec, store, untuned=sweep_plan.runs)
    else:
        source = PlanSource(sweep_plan.runs)
    options = {"check": not args.no_check, "keep_last": args.keep_last, "wandb": args.wandb,
               "tensorboard": args.tensorboard,
               "group": spec.name, "progress": not args.no_progress}
    if args.backend == "ray":
        from rnnbench.sweeps.ray_driver import execute_on_ray

        outcomes = execute_on_ray(store, source, sweep_plan.planned, address=args.address,
                                  storage=args.storage, threads=threads_per_worker(1), **options)
    else:
        outcomes = Driver(store, workers=args.workers, **options).execute(source, sweep_plan.planned)
    errors = outcomes.errors + source.failures
    print(f"sweep {spec.name} done: " + (", ".join(f"{count} {state}" for state, count
                                                   in sorted(outcomes.items())) or "nothing to run"))
    for line in errors:
        print(f"  {line}")
    if args.leaderboard:
        from rnnbench.reports.leaderboard import render
        print()
        print(render(store, fmt="md"))
    return 1 if errors or any(outcomes.get(state) for state in UNSUCCESSFUL) else 0


def _sweep_file(path: str, args: argparse.Namespace):
    """The sweep a file describes; the plan's flags belong to the file then."""
    from rnnbench.sweeps import spec as sweepfile

    given = [flag for flag, value in (("--architectures", args.architectures), ("--tasks", args.tasks),
                                      ("--seeds", args.seeds), ("--vary", args.vary), ("--set", args.set),
                                      ("--preset", args.preset), ("--params", args.params))
             if value is not None]
    if given:
        raise BenchmarkError(f"{', '.join(given)} cannot be combined with a sweep file: write them in "
                             f"{path} (keys architectures, tasks, seeds, vary, set, preset, params)")
    return sweepfile.load(path)


def _sweep_from_flags(args: argparse.Namespace):
    """The command line's flags as the sweep they are shorthand for (named by their digest)."""
    import dataclasses

    from rnnbench.core.constraints import Between, check
    from rnnbench.sweeps.spec import SweepSpec

    seeds = 1 if args.seeds is None else args.seeds
    check("--seeds", seeds, Between(1, MAX_SEEDS), hint=": the number of seeds (0, 1, ...), e.g. --seeds 3")
    vary = {}
    for key, values in _vary(args.vary or []).items():
        vary[key] = values
    spec = SweepSpec("cli", _csv(args.architectures), _csv(args.tasks), list(range(seeds)), args.preset,
                     _overrides(args), vary)
    return dataclasses.replace(spec, name=f"cli-{spec.digest()}")


def cmd_check(args: argparse.Namespace) -> int:
    from rnnbench.core import registry
    from rnnbench.training import conformance_verdicts as verdicts
    from rnnbench.training.config import parse_assignments

    architecture = registry.get_architecture(args.architecture)
    options = verdicts.architecture_options(architecture, parse_assignments(args.set or []))
    report, passed = verdicts.check_report(architecture, options)
    print(report)
    return 0 if passed else 1


def _vary(items: list[str]) -> dict[str, list[str]]:
    """['task.length=50,100', 'arch.hidden_size=32,64'] -> {'task.length': ['50', '100'], ...}."""
    from rnnbench.training.config import parse_assignments

    axes = {key: _csv(values) or [] for key, values in parse_assignments(items).items()}
    for key, values in axes.items():
        if not values:
            raise BenchmarkError(f"--vary {key}= lists no values: write --vary {key}=50,100,200")
    return axes


def cmd_data_status(args: argparse.Namespace) -> int:
    from rnnbench.toolkit import datasets as data

    reports = data.statuses(args.datasets or None)
    print(f"data directory: {data.data_dir()} (set ${data.DATA_ENV} or --data-dir to change it)")
    width = max(len(report.dataset.name) for report in reports)
    for report in reports:
        print(f"  {report.dataset.name:<{width}}  {report.state:<8} {report.describe()}")
    absent = [report.dataset.name for report in reports if report.state != "present"]
    if absent:
        print(f"{len(absent)} of {len(reports)} not present: `rnnbench data fetch {' '.join(absent)}` downloads "
              f"them, or point at a folder that holds them with --data-dir DIR or ${data.DATA_ENV}=DIR "
              f"(the nox sessions use ../shared/data beside the checkout)")
    return 0 if not absent else 1


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from rnnbench.toolkit import datasets as data

    for name in args.datasets:   # every name checked before anything is downloaded
        data.get_dataset(name)
    data.data_dir()
    for name in args.datasets:
        report = data.fetch(name, progress=not args.no_progress)
        print(f"{name}: {report.state} in {report.folder} ({report.describe()})")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from rnnbench.core.constraints import Between, check
    from rnnbench.store import ResultStore
    from rnnbench.training.sampling import check_sampling

    check_sampling(args.length, args.temperature)
    check("--count", args.count, Between(1, MAX_IMAGES), hint=f": a grid of at most {MAX_IMAGES:,} "
                                                               f"images, e.g. --count 16")
    _seed(args)
    path = _store_path(args)
    if not path.exists():
        raise BenchmarkError(f"no results store at {path}: pass the --store that holds run {args.run_id}")
    store = ResultStore(path)
    args.run_id = store.resolve_run_id(args.run_id)   # before the slow imports: a wrong id answers at once
    if args.output is not None:
        _output_file(args.output, "the image grid", f"{args.run_id}.png", IMAGE_SUFFIXES)
    record = store.get(args.run_id)
    if record is not None and _draws_images(record.task):
        return _sample_images(args, store)
    from rnnbench.training.sampling import sample_text
    from rnnbench.training.trained import load_trained

    trained = load_trained(store, args.run_id)
    print(sample_text(trained, args.prime, args.length, args.temperature, args.seed))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """The stored runs, newest last: id, architecture, task, seed, status and primary test metric."""
    from rnnbench.store import ResultStore

    path = _store_path(args)
    if not path.exists():
        raise BenchmarkError(f"no results store at {path}: pass --store, or make one with `rnnbench run` "
                             f"or `rnnbench sweep`")
    runs = ResultStore(path).runs_frame()
    for column, wanted in (("architecture", args.architecture), ("task", args.task), ("status", args.status)):
        if wanted:
            runs = runs[runs[column] == wanted]
    if args.prefix:
        runs = runs[runs.run_id.str.startswith(args.prefix)]
    if runs.empty:
        print(f"no runs in {path} match")
        return 0
    rows = [["run id", "architecture", "task", "seed", "status", "test metric", "finished"]]
    for run in runs.itertuples():
        primary = (run.task_info or {}).get("primary_metric")
        value = (run.metrics or {}).get(f"test/{primary}") if primary else None
        rows.append([run.run_id, run.architecture, run.task, str(run.seed), run.status,
                     f"{primary} {value:.4g}" if value is not None else "-", _finished(run.finished_at)])
    print(_aligned(rows))
    return 0


def _finished(timestamp: object) -> str:
    import datetime
    import math

    if not isinstance(timestamp, (int, float)) or math.isnan(timestamp):
        return "-"
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


def _draws_images(task_name: str) -> bool:
    """Whether the task draws its own samples (`Task.draws_images`: images), rather than text."""
    from rnnbench.core import registry

    return registry.get_task(task_name).draws_images


def _sample_images(args: argparse.Namespace, store) -> int:
    import torch

    from rnnbench.reports.run_plots import write_image_grid
    from rnnbench.training.trained import load_trained

    output = (_output_file(args.output, "the image grid", f"{args.run_id}.png", IMAGE_SUFFIXES)
              if args.output else store.path.parent / "samples" / f"{args.run_id}.png")
    trained = load_trained(store, args.run_id)
    images = trained.task.sample(trained.model, args.count, torch.Generator().manual_seed(args.seed))
    output = _written(output, lambda: write_image_grid(images, output))
    print(f"{args.count} samples of run {args.run_id} ({trained.task.name}) written to {output}")
    return 0


def cmd_diagnose_gradients(args: argparse.Namespace) -> int:
    from rnnbench.reports.gradient_flow import decay_per_step, stored_gradient_flow
    from rnnbench.training.diagnostics import diagnose_gradients
    from rnnbench.reports.run_plots import plot_gradient_flow
    from rnnbench.training.prepare import prepare
    from rnnbench.store import ResultStore

    architectures = _csv(args.architectures) or []
    if not architectures:
        raise BenchmarkError("name at least one architecture, e.g. `rnnbench diagnose gradients "
                             "rnn,lstm copy`")
    seed, path, overrides = _seed(args), _store_path(args), _overrides(args)
    default_name = f"gradients-{args.task}.png"
    output = (_output_file(args.output, "the plot", default_name, IMAGE_SUFFIXES) if args.output
              else path.parent / "plots" / default_name)
    for architecture in architectures:   # every bad name or value refused before anything trains
        prepare(architecture, args.task, overrides, args.preset, seed)
    store = ResultStore(path)
    flows = []
    for architecture in architectures:
        measured = diagnose_gradients(architecture, args.task, overrides, preset=args.preset,
                                      seed=seed, store=store, progress=not args.no_progress)
        flows.append(stored_gradient_flow(store, measured.run_id, architecture, args.task))
    distances = [d for d in (0, 1, 2, 5, 10, 20, 50, 100, 200, 500) if d < flows[0].init.shape[0]]
    print(f"||dL_T/dx_t|| by distance T - t on {args.task} (mean over a test batch):")
    print(f"  {'architecture':<14}{'phase':<9}" + "".join(f"{'d=' + str(d):>10}" for d in distances)
          + f"{'per step':>10}")
    for flow in flows:
        for phase in ("init", "trained"):
            norms = getattr(flow, phase)
            print(f"  {flow.architecture:<14}{phase:<9}" + "".join(f"{norms[d].item():>10.2e}" for d in distances)
                  + f"{decay_per_step(norms):>10.3f}")
    settings = " ".join(f"{key}={value}" for key, value in overrides.items())
    title = f"Gradient flow on {args.task}" + (f" ({settings})" if settings else "")
    written = _written(output, lambda: plot_gradient_flow(flows, title, output))
    print(f"plot written to {written}; curves stored with runs "
          + ", ".join(flow.run_id for flow in flows))
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from rnnbench.reports.leaderboard import render
    from rnnbench.store import ResultStore

    words = args.action or []
    if words[:1] == ["publish"] and len(words) == 2:
        return _publish(args, words[1])
    if words[:1] == ["compare"] and len(words) == 3:
        return _compare(args, words[1], words[2])
    if words == ["summary"]:
        from rnnbench.reports.publish import ROOT
        from rnnbench.reports.summary import write_summary

        written = write_summary(ROOT)
        print("summary written: " + ", ".join(str(path) for path in written))
        return 0
    if words:
        raise BenchmarkError(f"`rnnbench leaderboard {' '.join(words)}` is not a command: use "
                             f"`rnnbench leaderboard [--task T]`, `rnnbench leaderboard publish NAME`, "
                             f"`rnnbench leaderboard compare A B` or `rnnbench leaderboard summary`")
    path = _store_path(args)
    output = _output_file(args.output, "the leaderboard") if args.output is not None else None
    if args.task is not None and not args.task.strip():
        raise BenchmarkError("--task is empty: name a task, e.g. --task copy, or leave the option "
                             "out for every task")
    if not path.exists():
        raise BenchmarkError(f"no results store at {path}: run `rnnbench sweep` first or pass --store")
    store = ResultStore(path)
    if args.task is not None:
        from rnnbench.core import registry

        known = set(registry.tasks()) | set(store.runs_frame().task)
        if args.task not in known:
            raise BenchmarkError(f"unknown task '{args.task}'.{did_you_mean(args.task, known)} "
                                 f"See `rnnbench list tasks` for the registered tasks.")
    if args.format == "html":
        from rnnbench.reports.publish import store_page

        text = store_page(store, args.task)
    else:
        text = render(store, args.task, args.format)
    if output is not None:
        def write() -> Path:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text)
            return output

        _written(output, write)
        print(f"leaderboard written to {output}")
    else:
        print(text, end="")
    return 0


def _publish(args: argparse.Namespace, name: str) -> int:
    from rnnbench.reports.publish import ROOT, publish, republish
    from rnnbench.store import ResultStore

    if not name.strip() or "/" in name or name.startswith("."):
        raise BenchmarkError(f"'{name}' cannot name a leaderboard: use a folder name under {ROOT}/, "
                             f"e.g. `rnnbench leaderboard publish quick`")
    if args.from_results:
        if args.store:
            raise BenchmarkError("--from-results renders the leaderboard from its committed results.csv: "
                                 "leave out --store, or --from-results to publish from the store")
        from rnnbench.reports.leaderboard import published_path

        folder = republish(name)
        print(f"leaderboard {name} rendered again from {published_path(folder / 'results.csv')} and "
              f"{published_path(folder / 'history.csv').name}")
        return 0
    path = _store_path(args)
    if not path.exists():
        raise BenchmarkError(f"no results store at {path}: run the sweep first, or pass the --store it ran into")
    from rnnbench.reports.leaderboard import published_path

    folder = publish(ResultStore(path), name)
    print(f"leaderboard {name} published in {folder}: README.md, index.html, "
          f"{published_path(folder / 'results.csv').name}, {published_path(folder / 'history.csv').name}, "
          f"summary.json, environment.json, plots/")
    return 0


def _compare(args: argparse.Namespace, first: str, second: str) -> int:
    from rnnbench.reports.leaderboard import compare, load_runs, render_comparison

    names = (first, second)
    frame = compare(load_runs(first), load_runs(second), names=names)
    text = render_comparison(frame, args.format)
    print(text, end="" if text.endswith("\n") else "\n")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnbench", description=__doc__)
    parser.add_argument("--data-dir", help="the real datasets' directory (default $RNNBENCH_DATA, "
                                           "else ~/.cache/rnnbench/data)")
    commands = parser.add_subparsers(dest="command", required=True)
    for add_command in (_add_list, _add_run, _add_sweep, _add_runs, _add_check, _add_leaderboard, _add_data,
                        _add_sample, _add_diagnose, _add_known_answers):
        add_command(commands)
    return parser


def add_run_options(command: argparse.ArgumentParser) -> None:
    """The settings every command that trains takes."""
    command.add_argument("--set", action="append", metavar="KEY=VALUE",
                         help="a setting, e.g. optim.lr=0.01 (namespaces: arch. task. optim. trainer.)")
    command.add_argument("--preset", help="a named preset of the task, e.g. quick")
    command.add_argument("--params", help="parameter budget, e.g. 100k: the hidden size is chosen to match")
    command.add_argument("--store", help=f"results store (default ${{RNNBENCH_STORE}} or {DEFAULT_STORE})")
    command.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_list(commands: Any) -> None:
    """rnnbench list [architectures|tasks] [--matrix]"""
    listing = commands.add_parser("list", help="registered architectures and tasks")
    listing.add_argument("what", nargs="?", choices=["architectures", "tasks"])
    listing.add_argument("--matrix", action="store_true", help="architecture x task compatibility")
    listing.set_defaults(handler=cmd_list)


def _add_run(commands: Any) -> None:
    """rnnbench run ARCHITECTURE TASK"""
    single = commands.add_parser("run", help="train one architecture on one task")
    single.add_argument("architecture")
    single.add_argument("task")
    single.add_argument("--seed", type=int, default=0)
    single.add_argument("--wandb", action="store_true", help="log to Weights & Biases (WANDB_MODE=offline works)")
    single.add_argument("--tensorboard", action="store_true", help="write TensorBoard event files beside "
                                                                   "the store (tensorboard/)")
    single.add_argument("--no-check", action="store_true", help="run it even if the architecture fails "
                                                                "the conformance kit (recorded with the run)")
    add_run_options(single)
    single.set_defaults(handler=cmd_run)


def _add_sweep(commands: Any) -> None:
    """rnnbench sweep FILE | status FILE | --flags"""
    many = commands.add_parser(
        "sweep", help="run a sweep file (or the flags' shorthand) with long-lived workers; "
                      "`sweep status FILE` says where it stands",
        description="Run a sweep: `rnnbench sweep FILE` (a YAML sweep file, e.g. "
                    "leaderboards/quick/sweep.yaml), or the flags below as a shorthand for one. "
                    "`rnnbench sweep status FILE` prints where a sweep stands. Completed runs are "
                    "skipped, so running it again continues it.")
    many.add_argument("target", nargs="*", metavar="FILE | status FILE", help="a sweep file")
    many.add_argument("--architectures", help="comma-separated (default: all)")
    many.add_argument("--tasks", help="comma-separated (default: all)")
    many.add_argument("--seeds", type=int, help="number of seeds (0, 1, ...; default 1)")
    many.add_argument("--vary", action="append", metavar="KEY=V1,V2,...",
                      help="run every value of a setting, e.g. task.length=50,100,200,500 "
                           "(repeat for a grid)")
    many.add_argument("--workers", type=int, default=1,
                      help="runs at once, each worker a long-lived process (default 1; on GPUs at "
                           "most one per GPU)")
    many.add_argument("--backend", choices=["local", "ray"], default="local",
                      help="local: --workers processes on this machine (default); ray: a Ray cluster, "
                           "one task per run (pip install 'rnnbench[ray]')")
    many.add_argument("--address", help="the Ray cluster to use, HOST:PORT (default: a new local one)")
    many.add_argument("--storage", help="with --backend ray: a folder every node reaches, for the "
                                        "checkpoints (default: the store's folder)")
    many.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    many.add_argument("--keep-last", action="store_true", help="keep each completed run's last.ckpt "
                                                               "(by default only best.ckpt is kept)")
    many.add_argument("--tensorboard", action="store_true", help="write TensorBoard event files beside the "
                                                                 "store, tensorboard/SWEEP/ARCH/TASK/SEED")
    many.add_argument("--wandb", action="store_true", help="log every run to Weights & Biases, grouped "
                                                           "by sweep (offline unless logged in)")
    many.add_argument("--leaderboard", action="store_true", help="print the leaderboard afterwards")
    many.add_argument("--no-check", action="store_true", help="run architectures that fail the "
                                                              "conformance kit too (recorded with each run)")
    add_run_options(many)
    many.set_defaults(handler=cmd_sweep)


def _add_known_answers(commands: Any) -> None:
    """rnnbench known-answers [NAME ...]"""
    answers = commands.add_parser("known-answers", help="reproduce the published results the suite must "
                                                        "match (leaderboards/known-answers) and record them")
    answers.add_argument("names", nargs="*", help="which answers (default: every declared one)")
    answers.add_argument("--fast", action="store_true", help="only the fast ones (minutes on a CPU)")
    answers.add_argument("--store", help="results store (default runs/known-answers.sqlite)")
    answers.add_argument("--workers", type=int, default=1)
    answers.add_argument("--dry-run", action="store_true", help="list what would run, run nothing")
    answers.add_argument("--no-progress", action="store_true")
    answers.set_defaults(handler=cmd_known_answers)


def cmd_known_answers(args: argparse.Namespace) -> int:
    from rnnbench.core.constraints import Between, check
    from rnnbench.sweeps import known_answer_runs as runs, known_answers as known

    check("--workers", args.workers, Between(1, MAX_WORKERS), hint=": the number of runs at once")
    chosen = known.choose(known.load_answers(), args.names, args.fast)
    if not chosen:
        raise BenchmarkError(f"no known answer to run: {known.FOLDER / known.ANSWERS} declares none"
                             + (" that is fast" if args.fast else ""))
    for answer in chosen:
        print(f"{answer.name}: {answer.sweep} -> {answer.metric} {answer.bounds()} ({answer.source})")
    if args.dry_run:
        return 0
    from rnnbench.store import ResultStore

    store = ResultStore(Path(args.store or "runs/known-answers.sqlite"))
    runs.run_answers(chosen, store, workers=args.workers, progress=not args.no_progress)
    judged = {answer.name: runs.judge(answer, store) for answer in chosen}
    path = known.write_record(judged)
    for name, verdict in judged.items():
        value = "no completed run" if verdict["value"] is None else f"{verdict['value']:.4g}"
        print(f"  {name}: {'held' if verdict['held'] else 'DID NOT HOLD'} ({value}; {verdict['bounds']})")
    print(f"recorded in {path}")
    return 0 if all(verdict["held"] for verdict in judged.values()) else EXIT_NOT_COMPLETED


def _add_check(commands: Any) -> None:
    """rnnbench check ARCHITECTURE"""
    checker = commands.add_parser("check", help="run the conformance kit on an architecture (with its "
                                                "options): exit 0 if it passes, 1 if not")
    checker.add_argument("architecture")
    checker.add_argument("--set", action="append", metavar="arch.KEY=VALUE",
                         help="one of the architecture's own options, e.g. arch.num_layers=2")
    checker.set_defaults(handler=cmd_check)


def _add_leaderboard(commands: Any) -> None:
    """rnnbench leaderboard [publish NAME | compare A B]"""
    board = commands.add_parser(
        "leaderboard", help="tables from the results store; `publish NAME`, `compare A B`, `summary`",
        description="`rnnbench leaderboard` prints the tables of a results store. "
                    "`rnnbench leaderboard publish NAME` writes leaderboards/NAME/ (README.md, index.html, "
                    "results.csv, plots, ...) from the sweep file leaderboards/NAME/sweep.yaml and the "
                    "store it ran into. `rnnbench leaderboard compare A B` puts two stores or published "
                    "leaderboards side by side, with Welch's t-test on every difference. "
                    "`rnnbench leaderboard summary` writes leaderboards/README.md and index.html: every "
                    "published board's architectures on normalised scores, IQM and probability of improvement.")
    board.add_argument("action", nargs="*", metavar="publish NAME | compare A B | summary")
    board.add_argument("--task")
    board.add_argument("--format", choices=["md", "csv", "json", "latex", "html"], default="md",
                       help="html: one self-contained page with tables and plots")
    board.add_argument("--output", help="write to this file instead of printing")
    board.add_argument("--store")
    board.add_argument("--from-results", action="store_true",
                       help="publish NAME: render it again from its committed results.csv and history.csv "
                            "(after a change in how leaderboards are computed or shown), without the store")
    board.set_defaults(handler=cmd_leaderboard)


def _add_data(commands: Any) -> None:
    """rnnbench data status | fetch"""
    datasets = commands.add_parser("data", help="the real datasets: status, fetch")
    data_commands = datasets.add_subparsers(dest="data_command", required=True)
    data_status = data_commands.add_parser("status", help="each dataset: present, missing or corrupt")
    data_status.add_argument("datasets", nargs="*", help="dataset names (default: all)")
    data_status.set_defaults(handler=cmd_data_status)
    data_fetch = data_commands.add_parser("fetch", help="download and verify datasets")
    data_fetch.add_argument("datasets", nargs="+", help="dataset names, e.g. ptb")
    data_fetch.add_argument("--no-progress", action="store_true", help="no progress bars")
    data_fetch.set_defaults(handler=cmd_data_fetch)


def _add_runs(commands: Any) -> None:
    """rnnbench runs [PREFIX]"""
    listing = commands.add_parser("runs", help="the stored runs: id, architecture, task, seed, status, "
                                               "test metric")
    listing.add_argument("prefix", nargs="?", help="only run ids starting with this")
    listing.add_argument("--store")
    listing.add_argument("--architecture")
    listing.add_argument("--task")
    listing.add_argument("--status", help="completed, diverged, failed, interrupted or running")
    listing.set_defaults(handler=cmd_runs)


def _add_sample(commands: Any) -> None:
    """rnnbench sample RUN_ID"""
    sampler = commands.add_parser("sample", help="generate text from a trained language model, or "
                                                 "a PNG grid of images from an image-density model")
    sampler.add_argument("run_id", help="the run id printed by `rnnbench run` (or its first characters; "
                                        "`rnnbench runs` lists them)")
    sampler.add_argument("--prime", default="<eos>", help="text to start from (default: a sentence start)")
    sampler.add_argument("--length", type=int, default=50,
                         help="tokens to generate: words (ptb) or characters (ptb-char)")
    sampler.add_argument("--temperature", type=float, default=1.0)
    sampler.add_argument("--seed", type=int, default=0)
    sampler.add_argument("--store")
    sampler.add_argument("--count", type=int, default=16, help="images to draw (image tasks)")
    sampler.add_argument("--output", help="PNG file for images (default: samples/RUN_ID.png beside the store)")
    sampler.set_defaults(handler=cmd_sample)


def _add_diagnose(commands: Any) -> None:
    """rnnbench diagnose gradients ARCHITECTURES TASK"""
    diagnose = commands.add_parser("diagnose", help="diagnostics measured on trained runs")
    diagnostics = diagnose.add_subparsers(dest="diagnostic", required=True)
    gradients = diagnostics.add_parser(
        "gradients", help="||dL_T/dx_t|| against the distance T - t, at initialisation and after "
                          "training (trains the run first if the store lacks it), stored and plotted")
    gradients.add_argument("architectures", help="comma-separated, one curve each, e.g. rnn,lstm")
    gradients.add_argument("task")
    gradients.add_argument("--seed", type=int, default=0)
    gradients.add_argument("--output", help="PNG file (default: plots/gradients-TASK.png beside the store)")
    add_run_options(gradients)
    gradients.set_defaults(handler=cmd_diagnose_gradients)


def _interrupt_on_sigterm() -> None:
    """A killed run (SIGTERM) is recorded as interrupted, like Ctrl-C, instead of vanishing."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


# exit codes: what a script can tell apart (README, "Exit codes")
EXIT_OK, EXIT_NOT_COMPLETED, EXIT_REFUSED, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_PIPE_CLOSED = 141   # 128 + SIGPIPE, as a shell reports a command whose reader went away


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_library_chatter()
    _interrupt_on_sigterm()
    try:
        if args.data_dir is not None:  # through the environment, so that a sweep's runs see it too
            from rnnbench.toolkit import datasets as data

            if not args.data_dir.strip():
                raise BenchmarkError("--data-dir is empty: name a directory, or leave the option "
                                     f"out for ${data.DATA_ENV} or ~/.cache/rnnbench/data")
            os.environ[data.DATA_ENV] = str(data.data_dir(Path(args.data_dir).expanduser().resolve()))
        return args.handler(args)
    except DivergedError as error:   # the run started, is recorded, and did not complete
        print(f"rnnbench: the run diverged (recorded as diverged): {_one_line(error)}", file=sys.stderr)
        return EXIT_NOT_COMPLETED
    except BenchmarkError as error:   # the one place where a refusal becomes a message
        print(f"rnnbench: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_REFUSED
    except RunFailed as error:
        print(f"rnnbench: {error}", file=sys.stderr)
        return EXIT_NOT_COMPLETED
    except KeyboardInterrupt as error:
        print(_interrupted_message(args, error), file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:   # `rnnbench list | head -3`: the reader has gone, so end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # nothing left to flush at exit
        return EXIT_PIPE_CLOSED
    except Exception:   # a bug: the traceback, and a code of its own
        traceback.print_exc()
        print("rnnbench: internal error (the traceback above): please report it with the command "
              "that caused it", file=sys.stderr)
        return EXIT_INTERNAL


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())   # one line, whatever the message holds


def _interrupted_message(args: argparse.Namespace, error: KeyboardInterrupt) -> str:
    if isinstance(error, RunInterrupted):
        return ("rnnbench: interrupted; the run is recorded as interrupted, and running it again "
                "resumes from its last checkpoint")
    if args.command == "sweep" and not args.dry_run and (args.target or [])[:1] != ["status"]:
        return ("rnnbench: interrupted; run the same command again to continue (completed runs "
                "are kept)")
    return "rnnbench: interrupted"


if __name__ == "__main__":
    sys.exit(main())
