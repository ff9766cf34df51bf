"""IndRNN, the independently recurrent neural network (Li, Li, Cook, Zhu & Gao 2018, "Independently
recurrent neural network (IndRNN): building a longer and deeper RNN", equation 2):

    h_t = relu(W x_t + u * h_{t-1} + b)        u in R^H: each unit sees only its own past

The recurrent weight is a vector, so the gradient through a unit over T steps is a product of
u_j and relu's 0/1 slopes, and u_j near 1 lets a unit keep its value. The paper also clips |u_j|
to 2^(1/T) for a horizon T; that constraint is not applied here (u is trained freely). Initialisation (the paper's
for long horizons): u uniform in [0, 1]; W and b as `nn.Linear`. The recurrence is elementwise and
nonlinear: no scan applies, and a step is one fused multiply-add after the input projection of
all steps (one matmul). The carried state is h at each item's last real step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnbench import (Architecture, Capabilities, Encoder, EncoderOutput, SequenceBatch,
                      register_architecture, sequence_output)


@dataclass
class IndRNNOptions:
    pass


class IndRNNEncoder(Encoder):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.output_size = hidden_size
        self.input_projection = nn.Linear(input_size, hidden_size)            # W, b
        self.recurrent_weight = nn.Parameter(torch.rand(hidden_size))        # u

    def forward(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        real = inputs.mask().unsqueeze(-1)
        driven = self.input_projection(torch.where(real, inputs.values, 0.0))
        h = driven.new_zeros(driven.shape[0], self.output_size) if state is None else state
        outputs = []
        for step_input, step_real in zip(driven.unbind(1), real.unbind(1)):   # unbind: one gradient buffer
            updated = torch.relu(torch.addcmul(step_input, self.recurrent_weight, h))
            h = torch.where(step_real, updated, h)
            outputs.append(h)
        return sequence_output(torch.stack(outputs, dim=1), inputs.lengths, h)


@register_architecture("indrnn")
class IndRNN(Architecture):
    """IndRNN (Li et al. 2018): relu units, each with a scalar recurrent weight."""

    capabilities = Capabilities(causal=True, structures=("sequence",))
    Options = IndRNNOptions

    def build(self, input_size: int, hidden_size: int, options: IndRNNOptions) -> Encoder:
        return IndRNNEncoder(input_size, hidden_size)
