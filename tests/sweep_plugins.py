"""Plugins for the sweep tests, registered when this module is imported: a sweep's workers import
it too (a plugin registered outside entry points travels with its module, `rnnbench.sweeps.workers`)."""

from __future__ import annotations

import os
import signal

from rnnbench import BenchmarkError, register_architecture, register_task
from rnnbench.plugins.fused_rnn import GRU
from rnnbench.tasks.probes import Adding


@register_architecture("test-sweep-crash")
class CrashesItsProcess(GRU):
    """Kills its own process while the model is built, as a segmentation fault or the
    out-of-memory killer would."""

    def build(self, input_size, hidden_size, options):
        os.kill(os.getpid(), signal.SIGKILL)


@register_task("test-sweep-missing-data")
class MissingData(Adding):
    """Its data is gone by the time the run starts (it was there when the sweep was planned)."""

    def splits(self, batch_size, seed):
        raise BenchmarkError("dataset 'adding-files' is missing: run `rnnbench data fetch adding-files`")
