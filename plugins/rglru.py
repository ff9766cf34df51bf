"""RG-LRU, the real-gated linear recurrent unit of Hawk and Griffin (De, Smith, Fernando et al.
2024, "Griffin: mixing gated linear recurrences with local attention", section 2.4):

    r_t = sigmoid(W_a x_t + b_a)                   recurrence gate
    i_t = sigmoid(W_x x_t + b_x)                   input gate
    a_t = a^(c r_t),  a = sigmoid(Lambda),  c = 8  (log a_t = -c r_t softplus(-Lambda))
    h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (i_t * x_t)

with x_t the input projected to the hidden size. Hawk's recurrent block multiplies the recurrence's
output by a GELU gate branch of the same input, y_t = h_t * GELU(W_g x_t + b_g) (the block's
short convolution is left out here: the recurrence is what is compared). Initialisation as the
paper: Lambda such that a^c = sigmoid(Lambda)^c is uniform in [0.9, 0.999]; the linear maps as
`nn.Linear`. sqrt(1 - a_t^2) is computed as sqrt(-expm1(2 log a_t)).

The parallel path is `linear_scan`; `forward_recurrent` is the loop. The carried state is h at
each item's last real step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnbench import (Architecture, Capabilities, Encoder, EncoderOutput, SequenceBatch, freeze_padding,
                      linear_scan, register_architecture, sequence_output, sequential_scan)

GATE_POWER = 8.0   # c


@dataclass
class RGLRUOptions:
    pass


class RGLRUEncoder(Encoder):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.output_size = hidden_size
        self.projection = nn.Linear(input_size, 4 * hidden_size)   # [x | gate a | gate i | branch g]
        low, high = 0.9 ** (1 / GATE_POWER), 0.999 ** (1 / GATE_POWER)   # a^c in [0.9, 0.999]
        a = torch.empty(hidden_size).uniform_(low, high)
        self.recurrence_logit = nn.Parameter(torch.log(a / (1 - a)))   # Lambda

    def _coefficients(self, inputs: SequenceBatch) -> tuple[Tensor, Tensor, Tensor]:
        """(a_t, sqrt(1 - a_t^2) i_t x_t, the GELU branch), each (B, T, H)."""
        values = torch.where(inputs.mask().unsqueeze(-1), inputs.values, 0.0)
        x, gate_a, gate_i, branch = self.projection(values).chunk(4, dim=-1)
        log_a = -GATE_POWER * torch.sigmoid(gate_a) * F.softplus(-self.recurrence_logit)
        scale = torch.sqrt(-torch.expm1(2 * log_a))
        decays, driven = freeze_padding(torch.exp(log_a), scale * torch.sigmoid(gate_i) * x, inputs.mask())
        return decays, driven, F.gelu(branch)

    def _output(self, states: Tensor, branch: Tensor, lengths: Tensor) -> EncoderOutput:
        outputs = states * branch
        return sequence_output(outputs, lengths, states[:, -1])

    def forward(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        decays, driven, branch = self._coefficients(inputs)
        return self._output(linear_scan(decays, driven, state), branch, inputs.lengths)

    def forward_recurrent(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        decays, driven, branch = self._coefficients(inputs)
        return self._output(sequential_scan(decays, driven, state), branch, inputs.lengths)


@register_architecture("rglru")
class RGLRU(Architecture):
    """RG-LRU (De et al. 2024, Hawk): a real diagonal recurrence gated by the input, with Hawk's
    GELU output gate."""

    capabilities = Capabilities(causal=True, structures=("sequence",), parallel_form=True)
    Options = RGLRUOptions

    def build(self, input_size: int, hidden_size: int, options: RGLRUOptions) -> Encoder:
        return RGLRUEncoder(input_size, hidden_size)

