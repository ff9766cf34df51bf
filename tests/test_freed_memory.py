"""Runs keep freed memory in the process (`rnnbench.freed_memory`) and record it. Checked in a fresh
process: 128 MB of tensors (16 MB each) allocated, filled and freed. With glibc's defaults the
freed top of the heap goes back to the system at once (resident memory falls back); kept, it
stays resident for the next step's tensors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import QUICK

CHILD = """
import json, sys, torch
from rnnbench.runner import run
from rnnbench.store import ResultStore
def resident_mb():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) / 1024
%s
before = resident_mb()
blocks = [torch.empty(4 * 1024 * 1024).fill_(1.0) for _ in range(8)]
del blocks
print(json.dumps({"kept_mb": resident_mb() - before, "recorded": recorded}))
"""
RUN = """
result = run("rnn", "copy", json.loads(sys.argv[1]), store=sys.argv[2], progress=False, check=False)
recorded = ResultStore(sys.argv[2]).runs_frame().set_index("run_id").environment[result.run_id]["freed_memory_kept"]
"""


def _child(tmp_path, setup: str) -> dict:
    finished = subprocess.run([sys.executable, "-c", CHILD % setup, json.dumps(QUICK), str(tmp_path / "r.sqlite")],
                              capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                              timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux")
def test_a_run_keeps_freed_memory_for_the_next_steps_and_records_it(tmp_path) -> None:
    default = _child(tmp_path, "recorded = None")
    assert default["kept_mb"] < 32, default   # the check can tell: glibc's defaults give it back
    after_a_run = _child(tmp_path, RUN)
    assert after_a_run["recorded"] is True
    assert after_a_run["kept_mb"] > 100, after_a_run
