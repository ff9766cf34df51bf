"""Gradient flow through time, as measured: ||dL_T / dx_t|| against the distance T - t, and its
decay per step. Plain data and arithmetic, shared by the diagnostic that measures it
(`rnnbench.training.diagnostics`, which stores the curves with the run) and the reports that read
them back (`stored_gradient_flow`) and draw them (`rnnbench.reports.run_plots`), which must not
import training."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnbench.core.errors import BenchmarkError
from rnnbench.store import ResultStore

PHASES = ("init", "trained")   # the curves `grad_norm/init` and `grad_norm/trained`


def decay_per_step(norms: Tensor) -> float:
    """exp of the least-squares slope of log(norm) against distance: the factor by which the
    gradient shrinks per step if the decay is exponential (1 = no decay). Distances where the
    gradient underflowed to zero (float32 below ~1e-45) are left out of the fit."""
    measured = norms > 0
    distance = torch.arange(norms.shape[0], dtype=torch.float64)[measured]
    logs = norms[measured].double().log()
    if distance.numel() < 2:
        return 0.0
    centred = distance - distance.mean()
    slope = float((centred * (logs - logs.mean())).sum() / centred.pow(2).sum())
    return math.exp(slope)


@dataclass
class GradientFlow:
    run_id: str
    architecture: str
    task: str
    init: Tensor
    trained: Tensor


def stored_gradient_flow(store: ResultStore, run_id: str, architecture: str, task: str) -> GradientFlow:
    """The curves a previous `diagnose_gradients` stored with the run."""
    curves = {phase: torch.tensor([y for _, y in store.curve(run_id, f"grad_norm/{phase}")])
              for phase in PHASES}
    if any(curve.numel() == 0 for curve in curves.values()):
        raise BenchmarkError(f"run {run_id} has no stored gradient curves: run "
                             f"`rnnbench diagnose gradients {architecture} {task}` first")
    return GradientFlow(run_id, architecture, task, curves["init"], curves["trained"])
