"""Runs keep freed memory in the process (`rnnbench.training.freed_memory`) and record it. Checked in a fresh
process: 128 MB of tensors (16 MB each) allocated, filled and freed. With glibc's defaults the
freed top of the heap goes back to the system at once (resident memory falls back); kept, it
stays resident for the next step's tensors."""

from __future__ import annotations

import sys

import pytest

from helpers import RECORDED_RUN, in_fresh_process

FREE_128_MB = """
import json, torch
def resident_mb():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) / 1024
before = resident_mb()
blocks = [torch.empty(4 * 1024 * 1024).fill_(1.0) for _ in range(8)]
del blocks
print(json.dumps({"kept_mb": resident_mb() - before,
                  "recorded": environment.get("freed_memory_kept")}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux")
def test_a_run_keeps_freed_memory_for_the_next_steps_and_records_it(tmp_path) -> None:
    default = in_fresh_process("environment = {}" + FREE_128_MB, tmp_path, threads=1)
    assert default["kept_mb"] < 32, default   # the check can tell: glibc's defaults give it back
    after_a_run = in_fresh_process(RECORDED_RUN + FREE_128_MB, tmp_path, threads=1)
    assert after_a_run["recorded"] is True
    assert after_a_run["kept_mb"] > 100, after_a_run
