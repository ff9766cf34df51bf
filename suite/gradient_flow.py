"""Gradient flow through time, as measured: ||dL_T / dx_t|| against the distance T - t, and its
decay per step. Plain data and arithmetic, shared by the diagnostic that measures it
(`rnnbench.diagnostics`) and the plot that draws it (`rnnbench.plots`), which must not import the
runner."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


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
