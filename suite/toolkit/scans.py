"""Scans for linear recurrences, for architecture plugins: a parallel path and its plain reference.

A diagonal linear recurrence over time (dimension 1 of every tensor here),

    h_t = a_t * h_{t-1} + b_t,        h_0 = `initial` (zeros when None),

is what minGRU/minLSTM, LRU, RG-LRU, S4D and Mamba run (Martin & Cundy 2018; Blelloch 1990 for
the scan). Three ways to compute every h_t, equal to float32 tolerance:

- `sequential_scan`: the loop itself, the reference (as flash-linear-attention keeps a `naive`
  path beside every fast one);
- `linear_scan`: the parallel prefix scan by recursive doubling (Hillis & Steele 1986) over the
  associative operator (a1, b1) . (a2, b2) = (a1 a2, a2 b1 + b2): ceil(log2 T) steps of
  elementwise work, only products and sums, so it is stable for decays of any sign, complex ones
  included (LRU);
- `log_space_scan`: for positive decays and positive inputs, in log space (Heinsen 2023, as
  minGRU's paper does): log h_t = a*_t + logcumsumexp(log b_t - a*_t), a*_t = cumsum log a_t.

Padding: a padded step with a = 1 and b = 0 leaves the state as it was, so the state after the
last real step is the state at the end (`freeze_padding`).
"""

from __future__ import annotations

import torch
from torch import Tensor


def sequential_scan(decays: Tensor, inputs: Tensor, initial: Tensor | None = None) -> Tensor:
    """h_t = a_t * h_{t-1} + b_t step by step; (B, T, ...) -> every h_t, (B, T, ...)."""
    state = torch.zeros_like(inputs[:, 0]) if initial is None else initial
    states = []
    for step in range(inputs.shape[1]):
        state = decays[:, step] * state + inputs[:, step]
        states.append(state)
    return torch.stack(states, dim=1)


def linear_scan(decays: Tensor, inputs: Tensor, initial: Tensor | None = None) -> Tensor:
    """Every h_t of h_t = a_t * h_{t-1} + b_t by recursive doubling: after the step with offset
    d, (a_t, b_t) hold the composition of the 2d steps ending at t. (B, T, ...) -> (B, T, ...);
    `decays` broadcasts against `inputs`."""
    decays = decays.expand_as(inputs)
    if initial is not None:   # fold h_0 into the first step: b_1 + a_1 h_0
        inputs = torch.cat([(inputs[:, :1] + decays[:, :1] * initial.unsqueeze(1)), inputs[:, 1:]], dim=1)
    steps, offset = inputs.shape[1], 1
    while offset < steps:
        earlier_b = _shifted(inputs, offset, 0.0)
        earlier_a = _shifted(decays, offset, 1.0)
        inputs = inputs + decays * earlier_b
        decays = decays * earlier_a
        offset *= 2
    return inputs


def log_space_scan(log_decays: Tensor, log_inputs: Tensor, log_initial: Tensor | None = None) -> Tensor:
    """Every log h_t of h_t = a_t h_{t-1} + b_t for positive a and b, from log a and log b
    (Heinsen 2023): a*_t = sum_{k<=t} log a_k, log h_t = a*_t + logcumsumexp_k(log b_k - a*_k)."""
    if log_initial is not None:   # h_0 as an extra first input with decay 1
        log_inputs = torch.cat([log_initial.unsqueeze(1), log_inputs], dim=1)
        log_decays = torch.cat([torch.zeros_like(log_decays[:, :1]), log_decays], dim=1)
    cumulative = torch.cumsum(log_decays, dim=1)
    log_states = cumulative + torch.logcumsumexp(log_inputs - cumulative, dim=1)
    return log_states[:, 1:] if log_initial is not None else log_states


def freeze_padding(decays: Tensor, inputs: Tensor, real: Tensor) -> tuple[Tensor, Tensor]:
    """(a, b) with a = 1 and b = 0 at padded steps (`real`: (B, T) True at real steps), so that the
    state after an item's last real step carries through its padding unchanged."""
    mask = real.reshape(*real.shape, *([1] * (inputs.dim() - 2)))
    return torch.where(mask, decays, torch.ones_like(decays)), torch.where(mask, inputs, torch.zeros_like(inputs))


def _shifted(values: Tensor, offset: int, fill: float) -> Tensor:
    """`values` moved `offset` steps later along time, the first `offset` steps set to `fill`."""
    head = torch.full_like(values[:, :offset], fill)
    return torch.cat([head, values[:, :-offset]], dim=1)
