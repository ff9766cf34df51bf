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

Trained chunkwise (Yang et al. 2024, the WY / UT form; `delta_rule_chunkwise` of the scan
toolkit, where the derivation is), run step by step by `forward_recurrent`
(`delta_rule_sequential`). Padded steps take
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
                      SequenceBatch, delta_rule_chunkwise, delta_rule_sequential, register_architecture,
                      sequence_output)

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
        o, memory = delta_rule_chunkwise(q, k, v, beta, log_alpha, self._initial(q, state), self.chunk)
        return self._output(o, inputs.lengths, memory)

    def forward_recurrent(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        q, k, v, beta, log_alpha = self._heads(inputs)
        o, memory = delta_rule_sequential(q, k, v, beta, log_alpha, self._initial(q, state))
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
