"""Scans for linear recurrences, for architecture plugins: a parallel path and its plain reference.

A diagonal linear recurrence over time (dimension 1 of every tensor here),

    h_t = a_t * h_{t-1} + b_t,        h_0 = `initial` (zeros when None),

is what minGRU/minLSTM, LRU, RG-LRU, S4D and Mamba run (Martin & Cundy 2018; Blelloch 1990 for
the scan). Three ways to compute every h_t, equal to float32 tolerance:

- `sequential_scan`: the loop itself, the reference (as flash-linear-attention keeps a `naive`
  path beside every fast one);
- `linear_scan`: a two-level (chunked) scan: about sqrt(T) chunks scanned at once, then the
  states carried across chunks: about 2 sqrt(T) steps of Python, only products (over one chunk at
  most) and sums, so it is stable for decays of any sign, complex ones included (LRU);
- `doubling_scan`: the textbook parallel prefix scan by recursive doubling (Hillis & Steele 1986),
  log2 T passes over the whole sequence: equal, and slower on a CPU;
- `log_space_scan`: for positive decays and positive inputs, in log space (Heinsen 2023, as
  minGRU's paper does): log h_t = a*_t + logcumsumexp(log b_t - a*_t), a*_t = cumsum log a_t.

Padding: a padded step with a = 1 and b = 0 leaves the state as it was, so the state after the
last real step is the state at the end (`freeze_padding`).

A matrix-valued state written by the (gated) delta rule, per head (DeltaNet, Gated DeltaNet),

    S_t = alpha_t S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T,     o_t = S_t q_t,

has its chunkwise form in `delta_rule_chunkwise` (Yang et al. 2024, the WY / UT form) and its
reference in `delta_rule_sequential`; beta_t = 0 and alpha_t = 1 leave the memory as it was.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F


LOOP_ELEMENTS = 8_192   # a step this large: the plain loop is as fast as the chunked scan on a CPU


def sequential_scan(decays: Tensor, inputs: Tensor, initial: Tensor | None = None) -> Tensor:
    """h_t = a_t * h_{t-1} + b_t step by step; (B, T, ...) -> every h_t, (B, T, ...)."""
    state = torch.zeros_like(inputs[:, 0]) if initial is None else initial
    states = []
    # unbind, not decays[:, t]: each slice's backward would fill a gradient as large as the input
    for decay, step_input in zip(decays.expand_as(inputs).unbind(1), inputs.unbind(1)):
        state = decay * state + step_input
        states.append(state)
    return torch.stack(states, dim=1)


def linear_scan(decays: Tensor, inputs: Tensor, initial: Tensor | None = None) -> Tensor:
    """Every h_t of h_t = a_t * h_{t-1} + b_t, in two levels: the T steps cut into about sqrt(T)
    chunks of about sqrt(T) steps. First each chunk's own end state (from zero) and the product of
    its decays, every chunk at once; then the state entering each chunk, carried from chunk to
    chunk; then every chunk again from its entering state, every chunk at once, keeping each h.
    Products over at most one chunk, sums, no division: stable for decays of any sign or phase,
    and about 3 sqrt(T) steps of Python instead of T. When one step alone holds `LOOP_ELEMENTS`
    numbers or more, the plain loop is as fast (its steps are not dominated by the per-operation
    overhead, and it reads the data once) and is used. (B, T, ...) -> (B, T, ...); `decays`
    broadcasts."""
    decays = decays.expand_as(inputs)
    batch, steps, rest = inputs.shape[0], inputs.shape[1], inputs.shape[2:]
    if inputs[:, 0].numel() >= LOOP_ELEMENTS or steps < 4:
        return sequential_scan(decays, inputs, initial)
    size = math.isqrt(steps - 1) + 1
    chunks = -(-steps // size)
    extra = chunks * size - steps
    if extra:   # whole chunks: padded steps keep the state (a = 1, b = 0)
        decays = torch.cat([decays, decays.new_ones(batch, extra, *rest)], dim=1)
        inputs = torch.cat([inputs, inputs.new_zeros(batch, extra, *rest)], dim=1)
    # unbind, not a[:, :, t]: each slice's backward would fill a gradient as large as the input
    a = decays.reshape(batch, chunks, size, *rest).unbind(2)
    b = inputs.reshape(batch, chunks, size, *rest).unbind(2)
    end, product = b[0], a[0]
    for decay, step_input in zip(a[1:], b[1:]):
        end, product = decay * end + step_input, product * decay
    entering = [torch.zeros_like(inputs[:, 0]) if initial is None else initial.expand_as(inputs[:, 0])]
    for chunk_product, chunk_end in zip(product.unbind(1)[:-1], end.unbind(1)[:-1]):
        entering.append(chunk_product * entering[-1] + chunk_end)
    state, states = torch.stack(entering, dim=1), []
    for decay, step_input in zip(a, b):
        state = decay * state + step_input
        states.append(state)
    return torch.stack(states, dim=2).reshape(batch, chunks * size, *rest)[:, :steps]


def doubling_scan(decays: Tensor, inputs: Tensor, initial: Tensor | None = None) -> Tensor:
    """Every h_t by recursive doubling (Hillis & Steele 1986) over the associative operator
    (a1, b1) . (a2, b2) = (a1 a2, a2 b1 + b2): ceil(log2 T) steps over the whole tensor. The
    textbook parallel scan; on a CPU it moves log2 T times the data of `linear_scan`, which is
    faster there (python -m benchmarks modern)."""
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


def delta_rule_sequential(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, log_alpha: Tensor,
                          initial: Tensor) -> tuple[Tensor, Tensor]:
    """The gated delta rule step by step: q, k, v (B, h, T, d); beta, log alpha (B, h, T); the
    memory S (B, h, d_v, d_k). Returns (o (B, h, T, d_v), S after the last step)."""
    memory, outputs = initial, []
    for q_t, k_t, v_t, beta_t, log_alpha_t in zip(q.unbind(2), k.unbind(2), v.unbind(2), beta.unbind(2),
                                                  log_alpha.unbind(2)):
        decayed = log_alpha_t.exp()[..., None, None] * memory
        key = k_t.unsqueeze(-1)                                                     # (B, h, d, 1)
        memory = decayed + beta_t[..., None, None] * (v_t.unsqueeze(-1) - decayed @ key) @ key.transpose(-1, -2)
        outputs.append(memory @ q_t.unsqueeze(-1))
    return torch.cat(outputs, dim=-1).transpose(-1, -2), memory


def delta_rule_chunkwise(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, log_alpha: Tensor, initial: Tensor,
                         chunk_size: int) -> tuple[Tensor, Tensor]:
    """`delta_rule_sequential`, chunk by chunk (Yang et al. 2024). Within a chunk of C steps
    entered with memory S, with Gamma_t = prod_{i<=t} alpha_i, the rank-one corrections u_t
    (S_t = Gamma_t S + sum_{j<=t} (Gamma_t / Gamma_j) u_j k_j^T) solve the unit lower-triangular
    system (I + L) U = diag(beta) (V - diag(Gamma) K S^T), L_tj = beta_t (Gamma_t / Gamma_j)
    k_t.k_j for j < t; so U = W_v - W_k S^T with W_v, W_k solved once for every chunk, and
    o_t = Gamma_t S q_t + sum_{j<=t} (Gamma_t / Gamma_j) (k_j.q_t) u_j; the next chunk enters
    with Gamma_C S + sum_j (Gamma_C / Gamma_j) u_j k_j^T. A loop over T / C chunks."""
    steps, chunk = q.shape[2], chunk_size
    extra = -steps % chunk                       # whole chunks: the padded steps have beta 0, alpha 1
    q, k, v = (F.pad(t, (0, 0, 0, extra)).unflatten(2, (-1, chunk)) for t in (q, k, v))
    beta, log_alpha = (F.pad(t, (0, extra)).unflatten(2, (-1, chunk)) for t in (beta, log_alpha))
    cumulative = log_alpha.cumsum(-1)                                              # log Gamma, (B, h, n, C)
    ratio = torch.exp((cumulative.unsqueeze(-1) - cumulative.unsqueeze(-2)).tril())   # Gamma_t / Gamma_j
    strictly = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril(-1)
    lower = (beta.unsqueeze(-1) * ratio * (k @ k.transpose(-1, -2))).masked_fill(~strictly, 0.0)
    system = lower + torch.eye(chunk, device=q.device)
    w_v = torch.linalg.solve_triangular(system, beta.unsqueeze(-1) * v, upper=False, unitriangular=True)
    w_k = torch.linalg.solve_triangular(system, (beta * cumulative.exp()).unsqueeze(-1) * k, upper=False,
                                        unitriangular=True)
    attend = (q @ k.transpose(-1, -2)) * ratio.tril()                             # (Gamma_t / Gamma_j) q_t.k_j
    to_end = torch.exp(cumulative[..., -1:] - cumulative).unsqueeze(-1)           # Gamma_C / Gamma_j
    memory, outputs = initial, []
    # per chunk (unbind: one gradient buffer for all chunks, not one per slice)
    for chunk_w_v, chunk_w_k, chunk_q, chunk_k, chunk_attend, chunk_to_end, chunk_log_gamma in zip(
            *(t.unbind(2) for t in (w_v, w_k, q, k, attend, to_end, cumulative))):
        corrections = chunk_w_v - chunk_w_k @ memory.transpose(-1, -2)                     # U, (B, h, C, d)
        outputs.append(chunk_log_gamma.exp().unsqueeze(-1) * (chunk_q @ memory.transpose(-1, -2))
                       + chunk_attend @ corrections)
        memory = (chunk_log_gamma[..., -1:].exp().unsqueeze(-1) * memory
                  + (corrections * chunk_to_end).transpose(-1, -2) @ chunk_k)
    return torch.cat(outputs, dim=2)[:, :, :steps], memory
