"""Elman RNN written step by step (Elman 1990): h_t = act(W x_t + U h_{t-1} + b), h_0 = 0 or the
carried state. The starting point of an rnnbench architecture plugin: replace the recurrence in
`MyArchEncoder.forward` and keep the rules it follows (they are what `check_architecture` tests):

- padding: a step at or beyond an item's length leaves its state unchanged and outputs zeros;
- causality: the output at step t is computed from steps <= t only;
- carried state: `forward(second_half, state=first_half_output.state)` continues exactly where
  the first half stopped;
- `outputs` is (B, T, output_size); `final` is (B, 1, output_size) (one direction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from torch import Tensor, nn

from rnnbench import (Architecture, Capabilities, Encoder, EncoderOutput, Positive, SequenceBatch,
                      register_architecture)


class MyArchEncoder(Encoder):
    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str, recurrent_scale: float) -> None:
        super().__init__()
        self.input_projection = nn.Linear(input_size, hidden_size)          # W, b
        self.recurrent = nn.Linear(hidden_size, hidden_size, bias=False)    # U
        with torch.no_grad():
            self.recurrent.weight.mul_(recurrent_scale)
        self.activation = torch.tanh if nonlinearity == "tanh" else torch.relu
        self.output_size = hidden_size

    def forward(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        projected = self.input_projection(inputs.values)                    # (B, T, H), all steps at once
        batch, steps, hidden = projected.shape
        h = projected.new_zeros(batch, hidden) if state is None else state
        real = inputs.mask().unsqueeze(-1)                                  # (B, T, 1), False on padding
        outputs = []
        for t in range(steps):
            candidate = self.activation(projected[:, t] + self.recurrent(h))
            h = torch.where(real[:, t], candidate, h)                        # padding keeps h
            outputs.append(h)
        outputs = torch.stack(outputs, dim=1) * real
        return EncoderOutput(outputs, h.unsqueeze(1), h)


@register_architecture("myarch")
class MyArch(Architecture):
    """Elman RNN written step by step (the rnnbench plugin template)."""

    version = 1                      # bump whenever results would change
    capabilities = Capabilities(causal=True, structures=("sequence",))

    @dataclass
    class Options:
        """The plugin's `arch.` settings: `--set arch.nonlinearity=relu`, checked before a run."""

        nonlinearity: Literal["tanh", "relu"] = "tanh"
        recurrent_scale: Annotated[float, Positive] = 1.0   # multiplies U's initial weights

    def build(self, input_size: int, hidden_size: int, options: Options) -> Encoder:
        return MyArchEncoder(input_size, hidden_size, options.nonlinearity, options.recurrent_scale)
