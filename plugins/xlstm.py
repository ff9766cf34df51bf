"""xLSTM's two cells (Beck, Poeppel, Spanring, Auer, Prudnikova, Kopp, Klambauer, Brandstetter &
Hochreiter 2024, "xLSTM: extended long short-term memory", sections 2.2-2.3 and appendix A), with
exponential input gates and the stabiliser m that keeps them finite.

mLSTM (matrix memory, per head of size d; gates read x_t only):
    q_t, k_t, v_t = W_q x_t, W_k x_t / sqrt(d), W_v x_t;   i~_t, f~_t = w_i.x_t + b_i, w_f.x_t + b_f
    m_t = max(log f_t + m_{t-1}, i~_t),  i'_t = exp(i~_t - m_t),  f'_t = exp(log f_t + m_{t-1} - m_t)
    C_t = f'_t C_{t-1} + i'_t v_t k_t^T,   n_t = f'_t n_{t-1} + i'_t k_t     (log f = logsigmoid f~)
    h_t = sigmoid(W_o x_t) * C_t q_t / max(|n_t . q_t|, exp(-m_t))
  Its parallel form (appendix A.3): with F_t = sum_{s<=t} log f_s and D_tj = F_t - F_j + i~_j,
  m_t = max_j D_tj, and C_t q_t, n_t . q_t are sums over j <= t weighted by exp(D_tj - m_t), the
  carried state entering as j = 0 with log weight F_t + m_0: quadratic in T, every step at once.
sLSTM (scalar memory with recurrent gates, block-diagonal per head; no parallel form):
    [z~, i~, f~, o~]_t = W x_t + R h_{t-1} + b,   z = tanh z~, o = sigmoid o~, log f = logsigmoid f~
    m, i', f' as above;  c_t = f' c_{t-1} + i' z_t,  n_t = f' n_{t-1} + i',  h_t = o_t c_t / n_t

A fresh state starts with C = n = c = h = 0 and m = -inf (no earlier contribution). Forget-gate
biases start linearly spaced in [3, 6] over the heads (the paper's), input-gate biases at 0, the
linear maps as `nn.Linear`, R at `nn.Linear`'s range. The xLSTM blocks' up-projections,
convolutions and head norms are left out: the cells are what is compared. Padded steps leave
the state as it was (log f = 0, i~ = -inf).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnbench import (Architecture, BenchmarkError, Capabilities, Encoder, EncoderOutput, Positive,
                      SequenceBatch, register_architecture, sequence_output)


@dataclass
class XLSTMOptions:
    """num_heads: heads (the hidden size must divide by it)."""

    num_heads: Annotated[int, Positive] = 1


def _check_heads(hidden_size: int, heads: int) -> None:
    if hidden_size % heads:
        raise BenchmarkError(f"the hidden size {hidden_size} does not divide into arch.num_heads={heads} "
                             f"heads: choose a divisor, e.g. arch.num_heads=1")


class MLSTMEncoder(Encoder):
    def __init__(self, input_size: int, hidden_size: int, options: XLSTMOptions) -> None:
        super().__init__()
        _check_heads(hidden_size, options.num_heads)
        self.output_size, self.heads, self.head_size = hidden_size, options.num_heads, hidden_size // options.num_heads
        self.projection = nn.Linear(input_size, 4 * hidden_size + 2 * self.heads)   # q k v o | i~ f~
        with torch.no_grad():
            self.projection.bias[-2 * self.heads:-self.heads] = 0.0
            self.projection.bias[-self.heads:] = torch.linspace(3.0, 6.0, self.heads)
        self.out_projection = nn.Linear(hidden_size, hidden_size)

    def forget_gate_biases(self) -> list[tuple[Tensor, ...]]:
        return [(self.projection.bias[-self.heads:],)]

    def _gates(self, inputs: SequenceBatch) -> tuple[Tensor, ...]:
        """q, k, v (B, h, T, d), o (B, T, H), i~ and log f (B, h, T), padding frozen."""
        real = inputs.mask()
        projected = self.projection(torch.where(real.unsqueeze(-1), inputs.values, 0.0))
        q, k, v, o = projected[..., :4 * self.output_size].chunk(4, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, self.head_size)).transpose(1, 2) for t in (q, k, v))
        gates = projected[..., 4 * self.output_size:].transpose(1, 2)
        input_gate = torch.where(real.unsqueeze(1), gates[:, :self.heads], float("-inf"))
        log_forget = torch.where(real.unsqueeze(1), F.logsigmoid(gates[:, self.heads:]), 0.0)
        return q, k / math.sqrt(self.head_size), v, torch.sigmoid(o), input_gate, log_forget

    def _output(self, h: Tensor, o: Tensor, lengths: Tensor, state: tuple) -> EncoderOutput:
        outputs = self.out_projection(o * h.transpose(1, 2).flatten(2))
        return sequence_output(outputs, lengths, state)

    def forward(self, inputs: SequenceBatch, state: tuple[Tensor, Tensor, Tensor] | None = None) -> EncoderOutput:
        q, k, v, o, input_gate, log_forget = self._gates(inputs)
        steps = q.shape[2]
        cumulative = log_forget.cumsum(-1)                                          # F_t, (B, h, T)
        log_weights = cumulative.unsqueeze(-1) - cumulative.unsqueeze(-2) + input_gate.unsqueeze(-2)
        causal = torch.ones(steps, steps, dtype=torch.bool, device=q.device).tril()
        log_weights = log_weights.masked_fill(~causal, float("-inf"))              # D_tj, (B, h, T, T)
        stabiliser = log_weights.amax(-1)                                           # m_t without the state
        if state is not None:
            stabiliser = torch.maximum(stabiliser, cumulative + state[2].unsqueeze(-1))
        weights = torch.exp(log_weights - stabiliser.unsqueeze(-1)) * (q @ k.transpose(-1, -2))
        numerator, denominator = weights @ v, weights.sum(-1)
        if state is not None:
            carried = torch.exp(cumulative + state[2].unsqueeze(-1) - stabiliser).unsqueeze(-1)   # (B, h, T, 1)
            numerator = numerator + carried * (q @ state[0].transpose(-1, -2))
            denominator = denominator + carried.squeeze(-1) * (q @ state[1].unsqueeze(-1)).squeeze(-1)
        h = numerator / torch.maximum(denominator.abs(), torch.exp(-stabiliser)).unsqueeze(-1)
        return self._output(h, o, inputs.lengths, self._final_state(k, v, input_gate, cumulative, stabiliser, state))

    def _final_state(self, k: Tensor, v: Tensor, input_gate: Tensor, cumulative: Tensor, stabiliser: Tensor,
                     state: tuple[Tensor, Tensor, Tensor] | None) -> tuple[Tensor, Tensor, Tensor]:
        """(C, n, m) after the last step (the padding left them as they were at the last real one)."""
        m = stabiliser[..., -1]
        weight = torch.exp(cumulative[..., -1:] - cumulative + input_gate - m.unsqueeze(-1))   # (B, h, T)
        memory = (weight.unsqueeze(-1) * v).transpose(-1, -2) @ k
        normaliser = (weight.unsqueeze(-1) * k).sum(-2)
        if state is not None:
            carried = torch.exp(cumulative[..., -1] + state[2] - m)
            memory = memory + carried[..., None, None] * state[0]
            normaliser = normaliser + carried.unsqueeze(-1) * state[1]
        return memory, normaliser, m

    def forward_recurrent(self, inputs: SequenceBatch,
                          state: tuple[Tensor, Tensor, Tensor] | None = None) -> EncoderOutput:
        q, k, v, o, input_gate, log_forget = self._gates(inputs)
        batch, heads, steps, size = q.shape
        if state is None:
            state = (q.new_zeros(batch, heads, size, size), q.new_zeros(batch, heads, size),
                     q.new_full((batch, heads), float("-inf")))
        memory, normaliser, m = state
        outputs = []
        for t in range(steps):
            m_new = torch.maximum(log_forget[..., t] + m, input_gate[..., t])
            i_gate, f_gate = torch.exp(input_gate[..., t] - m_new), torch.exp(log_forget[..., t] + m - m_new)
            memory = f_gate[..., None, None] * memory + i_gate[..., None, None] * (v[:, :, t].unsqueeze(-1) @ k[:, :, t].unsqueeze(-2))
            normaliser = f_gate.unsqueeze(-1) * normaliser + i_gate.unsqueeze(-1) * k[:, :, t]
            m = m_new
            numerator = (memory @ q[:, :, t].unsqueeze(-1)).squeeze(-1)
            denominator = (normaliser * q[:, :, t]).sum(-1)
            outputs.append(numerator / torch.maximum(denominator.abs(), torch.exp(-m)).unsqueeze(-1))
        return self._output(torch.stack(outputs, dim=2), o, inputs.lengths, (memory, normaliser, m))


class SLSTMEncoder(Encoder):
    def __init__(self, input_size: int, hidden_size: int, options: XLSTMOptions) -> None:
        super().__init__()
        _check_heads(hidden_size, options.num_heads)
        self.output_size, self.heads, self.head_size = hidden_size, options.num_heads, hidden_size // options.num_heads
        self.input_projection = nn.Linear(input_size, 4 * hidden_size)             # W, b: [z | i | f | o]
        bound = 1.0 / math.sqrt(self.head_size)
        self.recurrent = nn.Parameter(torch.empty(4, self.heads, self.head_size, self.head_size).uniform_(-bound, bound))
        with torch.no_grad():
            self.input_projection.bias[hidden_size:2 * hidden_size] = 0.0
            self.input_projection.bias[2 * hidden_size:3 * hidden_size] = torch.linspace(
                3.0, 6.0, self.heads).repeat_interleave(self.head_size)

    def forget_gate_biases(self) -> list[tuple[Tensor, ...]]:
        return [(self.input_projection.bias[2 * self.output_size:3 * self.output_size],)]

    def recurrent_matrices(self) -> list[Tensor]:
        return [self.recurrent[gate, head] for gate in range(4) for head in range(self.heads)]

    def forward(self, inputs: SequenceBatch, state: tuple[Tensor, ...] | None = None) -> EncoderOutput:
        real = inputs.mask()
        driven = self.input_projection(torch.where(real.unsqueeze(-1), inputs.values, 0.0))
        batch = driven.shape[0]
        if state is None:
            zeros = driven.new_zeros(batch, self.output_size)
            state = (zeros, zeros, driven.new_full((batch, self.output_size), float("-inf")), zeros)
        c, n, m, h = state
        outputs = []
        for step_input, step_real in zip(driven.unbind(1), real.unbind(1)):   # unbind: one gradient buffer
            heads = h.view(1, batch, self.heads, 1, self.head_size)
            recurrent = (heads @ self.recurrent.transpose(-1, -2).unsqueeze(1)).squeeze(-2)   # (4, B, heads, d)
            pre = step_input + recurrent.permute(1, 0, 2, 3).reshape(batch, 4 * self.output_size)
            z, input_gate, forget, out = pre.chunk(4, dim=-1)
            log_forget = F.logsigmoid(forget)
            m_new = torch.maximum(log_forget + m, input_gate)
            i_gate, f_gate = torch.exp(input_gate - m_new), torch.exp(log_forget + m - m_new)
            c_new = f_gate * c + i_gate * torch.tanh(z)
            n_new = f_gate * n + i_gate
            h_new = torch.sigmoid(out) * c_new / n_new
            keep = step_real.unsqueeze(-1)
            c, n, m, h = (torch.where(keep, new, old) for new, old in ((c_new, c), (n_new, n), (m_new, m), (h_new, h)))
            outputs.append(h)
        history = torch.stack(outputs, dim=1)
        return sequence_output(history, inputs.lengths, (c, n, m, h))


@register_architecture("mlstm")
class MLSTM(Architecture):
    """mLSTM (Beck et al. 2024): a matrix memory with exponential gating, trained in its parallel
    (quadratic) form."""

    capabilities = Capabilities(causal=True, structures=("sequence",), parallel_form=True, forget_gate=True)
    Options = XLSTMOptions

    def build(self, input_size: int, hidden_size: int, options: XLSTMOptions) -> Encoder:
        return MLSTMEncoder(input_size, hidden_size, options)


@register_architecture("slstm")
class SLSTM(Architecture):
    """sLSTM (Beck et al. 2024): scalar memory, exponential gating, block-diagonal recurrent gates."""

    capabilities = Capabilities(causal=True, structures=("sequence",), forget_gate=True, recurrent_matrices=True)
    Options = XLSTMOptions

    def build(self, input_size: int, hidden_size: int, options: XLSTMOptions) -> Encoder:
        return SLSTMEncoder(input_size, hidden_size, options)
