"""The `rnnbench` command line: list, run, sweep, leaderboard."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

from suite.errors import BenchmarkError

DEFAULT_STORE = "runs/rnnbench.sqlite"


def _store_path(args: argparse.Namespace) -> Path:
    return Path(args.store or os.environ.get("RNNBENCH_STORE", DEFAULT_STORE))


def _csv(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    from suite.config import parse_assignments

    overrides = parse_assignments(args.set or [])
    if args.params:
        overrides["arch.params"] = args.params
    return overrides


# --------------------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace) -> int:
    from suite import registry

    architectures, tasks = registry.architectures(), registry.tasks()
    if args.matrix:
        print(matrix_text(architectures, tasks))
    else:
        if args.what in (None, "architectures"):
            print("Architectures:")
            for name, cls in architectures.items():
                caps = cls.capabilities
                print(f"  {name:<12} {'causal' if caps.causal else 'non-causal':<11} "
                      f"{'/'.join(caps.structures):<15} v{cls.version}  {_summary(cls)}")
        if args.what in (None, "tasks"):
            print("Tasks:")
            for name, cls in tasks.items():
                needs = cls.requirements
                print(f"  {name:<12} {needs.structure:<9} {'needs causal' if needs.causal else '':<13}"
                      f"{cls.primary_metric} ({cls.direction})  v{cls.version}  {_summary(cls)}")
    for entry, error in registry.load_errors().items():
        print(f"warning: plugin entry point {entry} failed to load: {error}", file=sys.stderr)
    return 0


def _summary(cls: type) -> str:
    doc = (sys.modules[cls.__module__].__doc__ or cls.__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""


def matrix_text(architectures: dict, tasks: dict) -> str:
    from suite.registry import pair_compatibility

    width = max(len(name) for name in architectures) + 2
    lines = ["architecture x task: ok, or the reason the pair cannot run", ""]
    header = " " * width + "".join(f"{name:<12}" for name in tasks)
    lines.append(header)
    reasons = []
    for arch_name, arch in architectures.items():
        cells = []
        for task_name, task in tasks.items():
            verdict = pair_compatibility(arch, task)
            if verdict.ok:
                cells.append(f"{'ok':<12}")
            else:
                reasons.append(f"  [{len(reasons) + 1}] {arch_name} x {task_name}: {verdict.reason}")
                cells.append(f"{'-- [' + str(len(reasons)) + ']':<12}")
        lines.append(f"{arch_name:<{width}}" + "".join(cells))
    if reasons:
        lines += ["", "Incompatible:"] + reasons
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    from suite.runner import run

    result = run(args.architecture, args.task, _overrides(args), preset=args.preset, seed=args.seed,
                 store=_store_path(args), progress=not args.no_progress, wandb=args.wandb)
    print(f"run {result.run_id} completed: {result.parameters} parameters "
          f"(hidden size {result.hidden_size}), {result.items_per_second:,.0f} items/s, "
          f"{result.wall_time_s:.1f} s")
    for name, value in sorted(result.metrics.items()):
        print(f"  {name:<24} {value:.6g}")
    print(f"stored in {result.store_path}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from suite.store import ResultStore
    from suite.sweep import plan, sweep

    overrides = _overrides(args)
    seeds = list(range(args.seeds))
    planned = plan(_csv(args.architectures), _csv(args.tasks), seeds, overrides, args.preset)
    store = ResultStore(_store_path(args))
    print(f"sweep: {len(planned)} runs ({len(seeds)} seed(s) each) into {store.path}")
    outcomes = sweep(planned, overrides, args.preset, store, progress=not args.no_progress)
    print("sweep done: " + ", ".join(f"{count} {status}" for status, count in sorted(outcomes.items())))
    if args.leaderboard:
        from suite.leaderboard import render
        print()
        print(render(store, fmt="md"))
    return 1 if outcomes.get("failed") or outcomes.get("interrupted") else 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from suite.leaderboard import render
    from suite.store import ResultStore

    path = _store_path(args)
    if not path.exists():
        raise BenchmarkError(f"no results store at {path}: run `rnnbench sweep` first or pass --store")
    text = render(ResultStore(path), args.task, args.format)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        print(f"leaderboard written to {args.output}")
    else:
        print(text, end="")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnbench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", help="registered architectures and tasks")
    listing.add_argument("what", nargs="?", choices=["architectures", "tasks"])
    listing.add_argument("--matrix", action="store_true", help="architecture x task compatibility")
    listing.set_defaults(handler=cmd_list)

    def add_run_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--set", action="append", metavar="KEY=VALUE",
                             help="a setting, e.g. optim.lr=0.01 (namespaces: arch. task. optim. trainer.)")
        command.add_argument("--preset", help="a named preset of the task, e.g. quick")
        command.add_argument("--params", help="parameter budget, e.g. 100k: the hidden size is chosen to match")
        command.add_argument("--store", help=f"results store (default ${{RNNBENCH_STORE}} or {DEFAULT_STORE})")
        command.add_argument("--no-progress", action="store_true", help="no progress bars")

    single = commands.add_parser("run", help="train one architecture on one task")
    single.add_argument("architecture")
    single.add_argument("task")
    single.add_argument("--seed", type=int, default=0)
    single.add_argument("--wandb", action="store_true", help="log to Weights & Biases (WANDB_MODE=offline works)")
    add_run_options(single)
    single.set_defaults(handler=cmd_run)

    many = commands.add_parser("sweep", help="architectures x tasks x seeds, one process per run")
    many.add_argument("--architectures", help="comma-separated (default: all)")
    many.add_argument("--tasks", help="comma-separated (default: all)")
    many.add_argument("--seeds", type=int, default=1, help="number of seeds (0, 1, ...)")
    many.add_argument("--leaderboard", action="store_true", help="print the leaderboard afterwards")
    add_run_options(many)
    many.set_defaults(handler=cmd_sweep)

    board = commands.add_parser("leaderboard", help="tables from the results store")
    board.add_argument("--task")
    board.add_argument("--format", choices=["md", "csv"], default="md")
    board.add_argument("--output", help="write to this file instead of printing")
    board.add_argument("--store")
    board.set_defaults(handler=cmd_leaderboard)
    return parser


def _quiet() -> None:
    """Keep Lightning's banners and tips out of the benchmark's output."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet()
    try:
        return args.handler(args)
    except BenchmarkError as error:
        print(f"rnnbench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnbench: interrupted; the run is recorded as interrupted and can be run again",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
