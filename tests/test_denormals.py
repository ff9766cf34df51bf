"""Runs train with subnormal floats flushed to zero (`rnnbench.denormals`), on every thread of
torch's pool, and record it. Checked in a fresh process: the flags are per-thread state that a
process keeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from helpers import QUICK

SUBNORMAL = 1e-39   # below float32's smallest normal number, 1.18e-38

CHILD = """
import json, sys, torch
from rnnbench.runner import run
from rnnbench.store import ResultStore
result = run("rnn", "copy", json.loads(sys.argv[1]), store=sys.argv[2], progress=False, check=False)
environment = ResultStore(sys.argv[2]).runs_frame().set_index("run_id").environment[result.run_id]
# large enough for torch to split it over its threads: each thread's share must come out zero
values = torch.full((1 << 20,), %r)
print(json.dumps({"recorded": environment["denormals_flushed"], "threads": torch.get_num_threads(),
                  "sum": float((values * 1.0).sum())}))
""" % SUBNORMAL


def test_a_run_trains_with_subnormals_flushed_on_every_thread_and_records_it(tmp_path) -> None:
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU has no flush-to-zero flags for torch to set")
    environment = {**os.environ, "OMP_NUM_THREADS": "2"}
    finished = subprocess.run([sys.executable, "-c", CHILD, json.dumps(QUICK), str(tmp_path / "r.sqlite")],
                              capture_output=True, text=True, env=environment, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    seen = json.loads(finished.stdout.strip().splitlines()[-1])
    assert seen["threads"] == 2
    assert seen["recorded"] is True
    assert seen["sum"] == 0.0, seen   # not flushed: 1e-39 x 2^20, about 1e-33
