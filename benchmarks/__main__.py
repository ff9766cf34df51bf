"""Run every benchmark module's `main()` in turn; `python -m benchmarks NAME...` runs a subset."""

from __future__ import annotations

import importlib
import logging
import sys
import warnings

MODULES = ("runner_overhead", "sweep_overhead", "architectures", "time_series", "determinism")


def main(names: list[str]) -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    for name in names or MODULES:
        if name not in MODULES:
            sys.exit(f"unknown benchmark '{name}': choose from {', '.join(MODULES)}")
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
