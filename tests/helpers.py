"""Small shared pieces for the tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

QUICK = {"trainer.max_steps": "6", "trainer.val_every_steps": "3", "task.train_size": "64",
         "task.eval_size": "32", "arch.hidden_size": "8", "trainer.batch_size": "16",
         "task.length": "6"}

# the start of an `in_fresh_process` script: a QUICK run recorded, its environment record read back
RECORDED_RUN = """
import json, sys
from rnnbench.training.runner import run
from rnnbench.store import ResultStore
result = run("rnn", "copy", json.loads(sys.argv[1]), store=sys.argv[2], progress=False, check=False)
environment = ResultStore(sys.argv[2]).runs_frame().set_index("run_id").environment[result.run_id]
"""


def in_fresh_process(script: str, folder: Path, threads: int) -> dict[str, Any]:
    """Run `script` in a new Python process, for settings a process keeps once set (argv: the QUICK
    settings as JSON and a store path in `folder`; OMP_NUM_THREADS=`threads`), and return the JSON
    object its last line of output prints."""
    finished = subprocess.run([sys.executable, "-c", script, json.dumps(QUICK), str(Path(folder) / "r.sqlite")],
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    assert finished.returncode == 0, finished.stderr[-2000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


def ctrl_c_at(step: int, monkeypatch, signum: int = signal.SIGINT):
    """Press Ctrl-C (a real SIGINT to this process), or send `signum`, while training step `step`
    runs; returns the unpatched `TrainingModule.training_step`."""
    from rnnbench.training import runner

    original = runner.TrainingModule.training_step

    def interrupted(self, batch, index):
        if self.global_step == step:
            os.kill(os.getpid(), signum)
        return original(self, batch, index)

    monkeypatch.setattr(runner.TrainingModule, "training_step", interrupted)
    return original


def at_batch_end(monkeypatch, read) -> list:
    """`read(trainer, module, batch_index)` after every training step of the runs that follow, as
    the optimiser left it: read where every callback sees it, in the runner's `RecordProgress`."""
    from rnnbench.training import runner

    seen: list = []
    original = runner.RecordProgress.on_train_batch_end

    def spy(self, trainer, module, outputs, batch, batch_index):
        seen.append(read(trainer, module, batch_index))
        return original(self, trainer, module, outputs, batch, batch_index)

    monkeypatch.setattr(runner.RecordProgress, "on_train_batch_end", spy)
    return seen


def matrix_rows(matrix: str) -> dict[str, list[str]]:
    """{architecture: its cells for every task, in task order} from `rnnbench list --matrix`,
    whose grid comes in blocks of task columns (each block: a line of numbers, then a row per
    architecture)."""
    lines = matrix.splitlines()
    end = next(index for index, line in enumerate(lines) if line.startswith("Tasks: "))
    rows: dict[str, list[str]] = {}
    for line in lines[1:end]:
        if line and not line.startswith(" "):
            name, *cells = line.split()
            rows.setdefault(name, []).extend(cells)
    return rows


def matrix_columns(matrix: str) -> dict[str, int]:
    """{task: its column index} from `rnnbench list --matrix` (tasks are numbered columns, named
    in the 'Tasks:' lines below the grid)."""
    lines = matrix.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("Tasks: "))
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    named = " ".join(line.strip() for line in lines[start:end]).removeprefix("Tasks: ").split(", ")
    return {name: int(number) - 1 for number, name in (item.split(" ", 1) for item in named)}
