"""Jordan network: recurrence from the output, not from the hidden state.

Jordan (1986), "Serial order: a parallel distributed processing approach" (ICS report 8604); the
lecture's simple recurrent network whose hidden layer sees the network's previous output:

    h_t = tanh(W_x x_t + W_y s_{t-1} + b)
    y_t = W_o h_t + b_o                       (linear output, size hidden_size)
    s_t = mu * s_{t-1} + y_t                  (mu = `arch.state_decay`, 0 by default)

With the default mu = 0, s_t = y_t and this is the lecture's h_t = tanh(W_x x_t + W_y y_{t-1} + b):
the hidden state h_{t-1} reaches step t only through the output y_{t-1}. mu > 0 gives Jordan's
"state units" with self-connections, s_t = mu s_{t-1} + y_t, an exponentially decaying trace of
the past outputs (his s(t+1) = mu s(t) + y(t)). s_0 = 0, or the carried state.

The encoder owns the output projection W_o, b_o: its per-step outputs are y_t (what the task's head
reads, like any encoder's outputs), `final` is y at each item's last real step, and the carried
state is s there (y itself when mu = 0). Every weight and bias starts uniform in
[-1/sqrt(H), 1/sqrt(H)], as in `nn.RNN`. Parameters: H I + 2 H^2 + 2 H for I inputs, H^2 more
than the fused `rnn` of the same size (W_o, b_o, less the second bias `nn.RNN` keeps): a parameter
budget (`--params`) gives it a smaller hidden size (157 against 221 at 50k on the adding task).

The input projection of all steps is one matmul before the time loop; padded steps neither read
their input nor reach the returned state (taken at each item's last real step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
from torch import Tensor, nn

from rnnbench import (Architecture, BenchmarkError, Capabilities, Encoder, EncoderOutput, Range,
                      SequenceBatch, register_architecture)


@dataclass
class JordanOptions:
    """state_decay: mu in [0, 1), the self-connection of Jordan's state units, s_t = mu s_{t-1} +
    y_t; 0 (default) feeds back exactly the previous output y_{t-1}."""

    state_decay: Annotated[float, Range(low=0.0, high=1.0, high_open=True)] = 0.0


def _validate(options: JordanOptions) -> None:
    decay = options.state_decay
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
        raise BenchmarkError(f"arch.state_decay must be in [0, 1): at least 0, less than 1, got {decay}: "
                             f"e.g. arch.state_decay=0 (feed back the previous output) or 0.5")


class JordanEncoder(Encoder):
    """The recurrence of the module docstring; outputs y, carried state s."""

    def __init__(self, input_size: int, hidden_size: int, options: JordanOptions) -> None:
        super().__init__()
        self.output_size = hidden_size
        self.state_decay = float(options.state_decay)
        self.input_projection = nn.Linear(input_size, hidden_size)                   # W_x, b
        self.feedback = nn.Linear(hidden_size, hidden_size, bias=False)             # W_y
        self.output_projection = nn.Linear(hidden_size, hidden_size)                # W_o, b_o
        bound = 1.0 / math.sqrt(hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def recurrent_matrices(self) -> list[Tensor]:
        """The two (H, H) matrices on the recurrent path s_{t-1} -> h_t -> y_t: W_y and W_o
        (`arch.recurrent_init=orthogonal` makes both orthogonal, so their product, the linearised
        recurrence at mu = 0, is orthogonal too)."""
        return [self.feedback.weight, self.output_projection.weight]

    def forward(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        values, lengths = inputs.values, inputs.lengths
        batch = values.shape[0]
        real = inputs.mask().unsqueeze(-1)                                           # (B, T, 1)
        # W_x x_t + b for every step at once; padded steps read zeros, whatever they hold (inf, nan)
        driven = self.input_projection(torch.where(real, values, 0.0))
        s = driven.new_zeros(batch, self.output_size) if state is None else state
        feedback_t = self.feedback.weight.t()
        output_t, output_bias = self.output_projection.weight.t(), self.output_projection.bias
        decay = self.state_decay
        ys, states = [], [s]
        for step_input in driven.unbind(1):
            h = torch.tanh(torch.addmm(step_input, s, feedback_t))
            y = torch.addmm(output_bias, h, output_t)
            s = y if decay == 0.0 else torch.add(y, s, alpha=decay)
            ys.append(y)
            states.append(s)
        items = torch.arange(batch, device=values.device)
        last = lengths.to(values.device)                          # index into [s_0, s_1, ..., s_T]
        outputs = torch.stack(ys, dim=1)                                             # (B, T, H)
        final = outputs[items, (last - 1).clamp(min=0)]                   # y at the last real step
        outputs = torch.where(real, outputs, 0.0)
        carried = torch.stack(states, dim=1)[items, last]
        return EncoderOutput(outputs, final.unsqueeze(1), carried)


@register_architecture("jordan")
class Jordan(Architecture):
    """Jordan network (Jordan 1986): the hidden layer sees the previous output."""

    version = 1
    capabilities = Capabilities(causal=True, structures=("sequence",), recurrent_matrices=True)
    Options = JordanOptions

    def build(self, input_size: int, hidden_size: int, options: JordanOptions) -> Encoder:
        _validate(options)
        return JordanEncoder(input_size, hidden_size, options)
