"""Runs train with subnormal floats flushed to zero (`rnnbench.training.denormals`), on every thread of
torch's pool, and record it. Checked in a fresh process: the flags are per-thread state that a
process keeps."""

from __future__ import annotations

import pytest
import torch

from helpers import RECORDED_RUN, in_fresh_process

SUBNORMAL = 1e-39   # below float32's smallest normal number, 1.18e-38

CHILD = RECORDED_RUN + """
import torch
# large enough for torch to split it over its threads: each thread's share must come out zero
values = torch.full((1 << 20,), %r)
print(json.dumps({"recorded": environment["denormals_flushed"], "threads": torch.get_num_threads(),
                  "sum": float((values * 1.0).sum())}))
""" % SUBNORMAL


def test_a_run_trains_with_subnormals_flushed_on_every_thread_and_records_it(tmp_path) -> None:
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU has no flush-to-zero flags for torch to set")
    seen = in_fresh_process(CHILD, tmp_path, threads=2)
    assert seen["threads"] == 2
    assert seen["recorded"] is True
    assert seen["sum"] == 0.0, seen   # not flushed: 1e-39 x 2^20, about 1e-33
