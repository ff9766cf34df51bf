"""Run every benchmark module's `main()` in turn and write what they measured, with the
environment, as one JSON file under benchmarks/results/.

    python -m benchmarks                      # the default set (what `nox -s bench` runs)
    python -m benchmarks NAME...              # a subset, or a module outside the default set
    python -m benchmarks --output FILE        # the JSON there instead
    python -m benchmarks --no-write           # print only
    BENCH_SMOKE=1 python -m benchmarks        # every module shrunk to seconds: a check that the
                                              # code runs, not a measurement (writes nothing
                                              # unless --output is given)

Each module prints what it measured and how (steps, windows, threads) and returns its figures; a
module that fails is reported and recorded, the others still run, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import logging
import math
import socket
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

MODULES = ("runner_overhead", "sweep_overhead", "concurrency", "architectures", "scaling", "time_series",
           "determinism", "modern")
OTHERS = ("ptb_reference", "mechanistic")   # their own commands: over the default set's 10 minutes on 2 CPUs
RESULTS = Path(__file__).parent / "results"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return str(value)


def default_output(now: datetime.datetime) -> Path:
    return RESULTS / f"{now:%Y-%m-%d-%H%M%S}-{socket.gethostname()}.json"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"modules to run (default: {', '.join(MODULES)}; also: {', '.join(OTHERS)})")
    parser.add_argument("--output", type=Path, help="the JSON file (default: benchmarks/results/DATE-HOST.json)")
    parser.add_argument("--no-write", action="store_true", help="print only, write no JSON")
    args = parser.parse_args(argv)
    for name in args.names:
        if name not in MODULES + OTHERS:
            parser.error(f"unknown benchmark '{name}': choose from {', '.join(MODULES + OTHERS)}")

    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    from benchmarks import timing
    from rnnbench.training.denormals import flush_denormals
    from rnnbench.training.freed_memory import keep_freed_memory

    flushed = flush_denormals()   # every side of every figure as a run trains: before any thread starts
    kept = keep_freed_memory()
    now = datetime.datetime.now()
    environment = {**timing.environment(), "denormals_flushed": flushed, "freed_memory_kept": kept}
    print(f"benchmarks {'(SMOKE: sizes shrunk, figures meaningless) ' if timing.SMOKE else ''}on "
          f"{environment['hostname']}: {environment['cpu_count']} CPUs ({environment['cpus_usable']} usable), "
          f"torch {environment['torch']} ({environment['parallel_backend']}, {environment['threads']} threads), "
          f"Lightning {environment['lightning']}, commit {environment['git_commit']}, subnormals "
          f"{'flushed to zero' if flushed else 'kept (no flush-to-zero on this CPU)'}, freed memory "
          f"{'kept in the process' if kept else 'handled by the C library'}; thread variables: "
          f"{ {k: v for k, v in environment['thread_variables'].items() if v is not None} }", flush=True)
    results: dict[str, Any] = {"started": now.isoformat(timespec="seconds"), "environment": environment,
                               "modules": {}}
    failed = []
    began = time.perf_counter()
    for name in args.names or MODULES:
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        entry: dict[str, Any] = {}
        try:
            entry["figures"] = importlib.import_module(f"benchmarks.{name}").main()
        except Exception as error:   # one module's failure must not lose the others' figures
            traceback.print_exc()
            entry["error"] = f"{type(error).__name__}: {error}"
            failed.append(name)
        entry["seconds"] = time.perf_counter() - started
        results["modules"][name] = entry
        print(f"--- {name}: {entry['seconds']:.1f} s", flush=True)
    results["seconds"] = time.perf_counter() - began

    print("\n=== time per module ===")
    for name, entry in results["modules"].items():
        print(f"  {name:<18}{entry['seconds']:>8.1f} s{'  FAILED: ' + entry['error'] if 'error' in entry else ''}")
    print(f"  {'total':<18}{results['seconds']:>8.1f} s")

    if not args.no_write and (args.output or not timing.SMOKE):
        output = args.output or default_output(now)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(_jsonable(results), indent=1) + "\n")
        print(f"\nwritten: {output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
