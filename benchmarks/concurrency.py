"""Two identical runs started together against one run alone (target: together, each takes at most
2.5 times as long as alone).

Each run is its own process, `python -m rnnbench.cli run ...` as a user would start it, with its
own store (two runs with one store would be one run: the second would wait for the first's claim).
First one run alone, then two started at the same moment; the figure is the slower of the two
against the run alone, as wall time of the process (start-up and evaluation included) and as the
training time the run records (`timings.fit_s`). Three thread settings:

- the suite's default: no thread variable; each run takes the usable CPUs shared out between the
  training processes registered on the machine (`rnnbench.training.cpu_share`): all of them alone, half
  each for two started together;
- every core each: OMP_NUM_THREADS set to the CPU count for every process (torch's own default,
  and the suite's before `cpu_share`);
- every core each + OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep at once instead of
  spinning (GNU OpenMP spins for a while by default, which on a full machine takes the cores
  from the other process's threads).

Each run records the thread count it used; it is printed beside the figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.timing import THREAD_VARIABLES, Table, ratio, recorded, runner_threads, size

ARCHITECTURE, TASK = "lstm", "adding"
SETTINGS = {"arch.hidden_size": "128", "task.length": "100", "task.train_size": "3200", "task.eval_size": "128",
            "trainer.batch_size": "32", "trainer.max_steps": size("200", "5"),
            "trainer.val_every_steps": size("200", "5"), "trainer.early_stopping": "false"}


def _base_environment() -> dict[str, str]:
    """This process's environment without any thread setting."""
    return {name: value for name, value in os.environ.items() if name not in THREAD_VARIABLES}


def policies() -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """name: (extra environment of a run alone, of each of two runs together)."""
    every_core = {"OMP_NUM_THREADS": str(runner_threads(1, _base_environment()))}
    passive = {**every_core, "OMP_WAIT_POLICY": "PASSIVE"}
    return {"suite default (shared)": ({}, {}),
            "every core each": (every_core, every_core),
            "every core each + PASSIVE": (passive, passive)}


def _command(store: Path) -> list[str]:
    command = [sys.executable, "-m", "rnnbench.cli", "run", ARCHITECTURE, TASK, "--store", str(store),
               "--no-progress", "--no-check"]
    for key, value in SETTINGS.items():
        command += ["--set", f"{key}={value}"]
    return command


def launch(stores: list[Path], extra: dict[str, str]) -> list[dict[str, Any]]:
    """Start one process per store at once; wait for all; their wall times and records."""
    environment = {**_base_environment(), **extra}
    started = time.perf_counter()
    processes = [subprocess.Popen(_command(store), env=environment, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for store in stores]
    results = []
    for process, store in zip(processes, stores):
        out, err = process.communicate()
        wall = time.perf_counter() - started
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(_command(store))} failed ({process.returncode}): {err[-2000:]}")
        record = recorded(store, _run_id(store))
        environment_record = record["environment"]
        results.append({"wall_s": wall, "fit_s": environment_record["timings"]["fit_s"],
                        "threads": environment_record["threads"], "peak_memory_mb": record["peak_memory_mb"]})
    return results


def _run_id(store: Path) -> str:
    from rnnbench.store import ResultStore

    return str(ResultStore(store).runs_frame().run_id.iloc[0])


def main() -> dict[str, Any]:
    print(f"{ARCHITECTURE} on {TASK}, {SETTINGS['trainer.max_steps']} steps "
          f"({', '.join(f'{k}={v}' for k, v in SETTINGS.items() if k != 'trainer.max_steps')}), "
          f"each run a `python -m rnnbench.cli run` process with its own store; CPUs: {os.cpu_count()}")
    figures: dict[str, Any] = {"settings": SETTINGS, "policies": {}}
    with tempfile.TemporaryDirectory() as folder:
        for index, (name, (alone_env, pair_env)) in enumerate(policies().items()):
            started = time.perf_counter()
            root = Path(folder) / str(index)
            alone = launch([root / "alone" / "r.sqlite"], alone_env)[0]
            pair = launch([root / "a" / "r.sqlite", root / "b" / "r.sqlite"], pair_env)
            slower = max(pair, key=lambda result: result["wall_s"])
            figures["policies"][name] = {
                "environment_alone": alone_env, "environment_together": pair_env, "alone": alone,
                "together": pair, "wall_ratio": ratio(slower["wall_s"], alone["wall_s"]),
                "fit_ratio": ratio(max(result["fit_s"] for result in pair), alone["fit_s"])}
            print(f"  {name}: {time.perf_counter() - started:.1f} s", flush=True)
    table = Table("\ntwo identical runs together against one alone (ratio: the slower of the two / alone; "
                  "target <= 2.5)",
                  [("threads", ""), ("threads alone", "d"), ("threads each of two", "d"), ("alone wall s", ".1f"),
                   ("together wall s", ".1f"), ("wall ratio", ".2f"), ("alone fit s", ".1f"),
                   ("together fit s", ".1f"), ("fit ratio", ".2f"), ("<= 2.5", "")])
    for name, result in figures["policies"].items():
        pair = result["together"]
        table.add(name, result["alone"]["threads"], pair[0]["threads"], result["alone"]["wall_s"],
                  max(r["wall_s"] for r in pair), result["wall_ratio"], result["alone"]["fit_s"],
                  max(r["fit_s"] for r in pair), result["fit_ratio"],
                  "yes" if result["wall_ratio"] <= 2.5 else "NO")
    table.print()
    return figures
