"""Freed memory kept in the process for the next training step (glibc's malloc).

By default glibc's malloc gives large freed blocks back to the operating system: a block above its
mmap threshold is unmapped when freed, and the top of the heap is trimmed once more than its trim
threshold is free there. The next step then allocates a tensor of the same size in fresh pages,
which the kernel zero-fills one page fault at a time on first touch. A language model's step frees
and allocates tens of megabytes (the logits and their gradients, the embedding's gradient): the
2x200 LSTM language model of `python -m benchmarks runner_overhead` (10k words, 20 x 20 tokens),
trained by a bare loop in 9 pairs of processes, one of each kind in turn, took a median 73.3 ms a
step with glibc's defaults (a median 5,600 page faults a step) and 67.7 ms with freed memory kept (600),
for the same arithmetic: no number a run records changes.

`keep_freed_memory` raises both thresholds with `mallopt`: blocks up to 32 MB (glibc's largest
mmap threshold on 64-bit systems) come from the heap, and the heap is not trimmed. A process's
resident memory then stays at its peak, as a run's process needs it again at the next step.
Where the C library is not glibc (macOS, musl), nothing changes.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3       # mallopt's parameters (malloc.h)
LARGEST_MMAP_THRESHOLD = 32 * 1024 * 1024          # glibc refuses more on 64-bit systems
NEVER_TRIM = 2 ** 31 - 1


def keep_freed_memory() -> bool:
    """Set the thresholds for this process; False where there is no glibc `mallopt`."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, LARGEST_MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
