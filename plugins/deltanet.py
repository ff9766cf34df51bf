"""DeltaNet and Gated DeltaNet: a matrix memory written by the delta rule (Schlag, Irie &
Schmidhuber 2021, "Linear transformers are secretly fast weight programmers"; Yang, Wang, Zhang,
Shen & Kim 2024, "Parallelizing linear transformers with the delta rule over sequence length";
Yang, Kautz & Hatamizadeh 2025, "Gated delta networks"), per head:

    S_t = alpha_t S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T,     o_t = S_t q_t

q, k = L2-normalised SiLU(W_q x), SiLU(W_k x); v = W_v x; beta_t = sigmoid(w_b . x_t) in (0, 1)
(how far the memory moves from its prediction S k_t towards v_t); DeltaNet has alpha_t = 1,
Gated DeltaNet alpha_t = sigmoid(w_a . x_t + b_a), its bias started at logit(0.95). The heads'
outputs are concatenated and projected (W_o). The papers' output norm and gate are left out: the
recurrence is what is compared.

Trained chunkwise (Yang et al. 2024, the WY / UT form): within a chunk of C steps with
Gamma_t = prod_{i<=t} alpha_i, the memory's corrections u_t solve the triangular system
(I + L) U = diag(beta) (V - diag(Gamma) K S^T), L_tj = beta_t (Gamma_t / Gamma_j) k_t^T k_j (j < t),
so o_t = Gamma_t S q_t + sum_{j<=t} (Gamma_t / Gamma_j) (k_j^T q_t) u_j and the next chunk starts
from Gamma_C S + sum_j (Gamma_C / Gamma_j) u_j k_j^T: one triangular solve per chunk for all of
them, a loop over T / C chunks. `forward_recurrent` is the step-by-step rule. Padded steps take
beta = 0 and alpha = 1 (the memory is left as it was). The carried state is S, (B, heads, d, d).
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

GATE_START = 0.95   # Gated DeltaNet: alpha at the start


@dataclass
class DeltaNetOptions:
    """num_heads: heads (the hidden size must divide by it); chunk_size: C of the chunkwise form."""

    num_heads: Annotated[int, Positive] = 1
    chunk_size: Annotated[int, Positive] = 16


class DeltaNetEncoder(Encoder):
    def __init__(self, input_size: int, hidden_size: int, options: DeltaNetOptions, gated: bool) -> None:
        super().__init__()
        if hidden_size % options.num_heads:
            raise BenchmarkError(f"the hidden size {hidden_size} does not divide into arch.num_heads="
                                 f"{options.num_heads} heads: choose a divisor, e.g. arch.num_heads=1")
        self.output_size, self.heads, self.chunk = hidden_size, options.num_heads, options.chunk_size
        self.head_size, self.gated = hidden_size // options.num_heads, gated
        self.projection = nn.Linear(input_size, 3 * hidden_size + (2 if gated else 1) * self.heads)
        if gated:
            with torch.no_grad():
                self.projection.bias[-self.heads:] = math.log(GATE_START / (1 - GATE_START))
        self.out_projection = nn.Linear(hidden_size, hidden_size)

    def _heads(self, inputs: SequenceBatch) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """q, k, v (B, heads, T, d); beta and log alpha (B, heads, T), padding frozen."""
        real = inputs.mask()
        projected = self.projection(torch.where(real.unsqueeze(-1), inputs.values, 0.0))
        size = 3 * self.output_size
        q, k, v = (part.unflatten(-1, (self.heads, self.head_size)).transpose(1, 2)
                   for part in projected[..., :size].chunk(3, dim=-1))
        q, k = F.normalize(F.silu(q), dim=-1), F.normalize(F.silu(k), dim=-1)
        gates = projected[..., size:].transpose(1, 2)                              # (B, heads, T)
        beta = torch.where(real.unsqueeze(1), torch.sigmoid(gates[:, :self.heads]), 0.0)
        log_alpha = (torch.where(real.unsqueeze(1), F.logsigmoid(gates[:, self.heads:]), 0.0) if self.gated
                     else torch.zeros_like(beta))
        return q, k, v, beta, log_alpha

    def _output(self, o: Tensor, lengths: Tensor, memory: Tensor) -> EncoderOutput:
        outputs = self.out_projection(o.transpose(1, 2).flatten(2))
        return sequence_output(outputs, lengths, memory)

    def _initial(self, q: Tensor, state: Tensor | None) -> Tensor:
        return q.new_zeros(q.shape[0], self.heads, self.head_size, self.head_size) if state is None else state

    def forward(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        q, k, v, beta, log_alpha = self._heads(inputs)
        steps = q.shape[2]
        extra = -steps % self.chunk                     # padded to whole chunks: beta 0, alpha 1
        q, k, v = (F.pad(t, (0, 0, 0, extra)).unflatten(2, (-1, self.chunk)) for t in (q, k, v))
        beta, log_alpha = (F.pad(t, (0, extra)).unflatten(2, (-1, self.chunk)) for t in (beta, log_alpha))
        cumulative = log_alpha.cumsum(-1)                                          # log Gamma, (B, h, n, C)
        ratio = torch.exp((cumulative.unsqueeze(-1) - cumulative.unsqueeze(-2)).tril())   # Gamma_t / Gamma_j
        strictly = torch.ones(self.chunk, self.chunk, dtype=torch.bool, device=q.device).tril(-1)
        lower = (beta.unsqueeze(-1) * ratio * (k @ k.transpose(-1, -2))).masked_fill(~strictly, 0.0)
        system = lower + torch.eye(self.chunk, device=q.device)
        w_v = torch.linalg.solve_triangular(system, beta.unsqueeze(-1) * v, upper=False, unitriangular=True)
        w_k = torch.linalg.solve_triangular(system, (beta * cumulative.exp()).unsqueeze(-1) * k, upper=False,
                                            unitriangular=True)
        attend = (q @ k.transpose(-1, -2)) * ratio.tril()                         # (Gamma_t / Gamma_j) q_t.k_j
        to_end = torch.exp(cumulative[..., -1:] - cumulative).unsqueeze(-1)       # Gamma_C / Gamma_j
        memory, outputs = self._initial(q, state), []
        # per chunk (unbind: one gradient buffer for all chunks, not one per slice)
        for chunk_w_v, chunk_w_k, chunk_q, chunk_k, chunk_attend, chunk_to_end, chunk_log_gamma in zip(
                *(t.unbind(2) for t in (w_v, w_k, q, k, attend, to_end, cumulative))):
            corrections = chunk_w_v - chunk_w_k @ memory.transpose(-1, -2)                 # U, (B, h, C, d)
            gamma = chunk_log_gamma.exp().unsqueeze(-1)
            outputs.append(gamma * (chunk_q @ memory.transpose(-1, -2)) + chunk_attend @ corrections)
            memory = (chunk_log_gamma[..., -1:].exp().unsqueeze(-1) * memory
                      + (corrections * chunk_to_end).transpose(-1, -2) @ chunk_k)
        o = torch.cat(outputs, dim=2)[:, :, :steps]
        return self._output(o, inputs.lengths, memory)

    def forward_recurrent(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        q, k, v, beta, log_alpha = self._heads(inputs)
        memory, outputs = self._initial(q, state), []
        for step in range(q.shape[2]):
            decayed = log_alpha[:, :, step].exp().view(*beta.shape[:2], 1, 1) * memory
            key, value = k[:, :, step].unsqueeze(-1), v[:, :, step].unsqueeze(-1)   # (B, h, d, 1)
            memory = decayed + beta[:, :, step].view(*beta.shape[:2], 1, 1) * (value - decayed @ key) @ key.transpose(-1, -2)
            outputs.append(memory @ q[:, :, step].unsqueeze(-1))
        o = torch.cat(outputs, dim=-1).transpose(-1, -2)                         # (B, h, T, d)
        return self._output(o, inputs.lengths, memory)


_CAPABILITIES = Capabilities(causal=True, structures=("sequence",), parallel_form=True)


@register_architecture("deltanet")
class DeltaNet(Architecture):
    """DeltaNet (Schlag et al. 2021; Yang et al. 2024): a matrix memory written by the delta rule,
    trained chunkwise."""

    capabilities = _CAPABILITIES
    Options = DeltaNetOptions

    def build(self, input_size: int, hidden_size: int, options: DeltaNetOptions) -> Encoder:
        return DeltaNetEncoder(input_size, hidden_size, options, gated=False)


@register_architecture("gated_deltanet")
class GatedDeltaNet(Architecture):
    """Gated DeltaNet (Yang et al. 2025): the delta rule with a data-dependent decay alpha_t."""

    capabilities = _CAPABILITIES
    Options = DeltaNetOptions

    def build(self, input_size: int, hidden_size: int, options: DeltaNetOptions) -> Encoder:
        return DeltaNetEncoder(input_size, hidden_size, options, gated=True)
