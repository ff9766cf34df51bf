"""What a run records about where it ran: versions, device, code revision and peak memory."""

from __future__ import annotations

import platform
import resource
import socket
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torchmetrics

from rnnbench.core.revision import git_commit

def environment() -> dict[str, Any]:
    """Versions, device and code revision, recorded with every run."""
    commit = git_commit()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    return {"python": platform.python_version(), "torch": torch.__version__,
            "lightning": pl.__version__, "torchmetrics": torchmetrics.__version__,
            "accelerator": "gpu" if torch.cuda.is_available() else "cpu", "device": device,
            "threads": torch.get_num_threads(), "hostname": socket.gethostname(), "git_commit": commit}

class PeakMemory:
    """Peak memory of one run, and what was measured (`kind`, recorded with the figure).

    On a GPU: `torch.cuda.max_memory_allocated`, reset when the run starts. On Linux: the
    process's peak resident set size (VmHWM), reset when the run starts by writing 5 to
    /proc/self/clear_refs. Elsewhere: `ru_maxrss`, the process's peak since it started, which
    bounds the run's from above when one process runs several runs.
    """

    def start(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
            self.kind = "cuda max_memory_allocated during the run"
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.kind = "peak resident set size (VmHWM) of the process during the run"
        except OSError:
            self.kind = "peak resident set size (ru_maxrss) of the process since it started"

    def peak_mb(self) -> float:
        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 2**20
        if "VmHWM" in self.kind:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

NONDETERMINISTIC = "does not have a deterministic implementation"
