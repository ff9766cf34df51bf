"""Subnormal floats flushed to zero on the CPU, for every run.

A gradient that vanishes through time (long copy or adding sequences, a loss read at the last
step) passes through float32's subnormal range, below 1.2e-38, on its way to zero, and x86
arithmetic on subnormals is many times slower: an LSTM's backward pass over 200 steps took 129 ms
instead of 15 ms on this suite's 2-core machine (`python -m benchmarks scaling` shows the jump
between T = 100 and T = 200). The CPU's flush-to-zero and denormals-are-zero flags
(`torch.set_flush_denormal`) treat them as zero. A term below 1.2e-38 is lost in any sum with a
normal gradient anyway, and runs measured both ways recorded the same metrics bit for bit (lstm on
adding, rnn and gru on copy, T = 200).

The flags belong to each thread, and a new thread copies its creator's: `rnnbench.training.runner.run` sets
them first thing, before the run's first torch operation starts torch's OpenMP threads (in a
worker, before its first run; the flags stay for its later runs). In a process whose threads
already ran torch code, only the calling thread and threads started later are flushed.
"""

from __future__ import annotations

import torch


def flush_denormals() -> bool:
    """Set the flags on this thread (and the threads it starts); False where the CPU has none."""
    return bool(torch.set_flush_denormal(True))
