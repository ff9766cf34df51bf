"""Leaky-integrator RNN: tanh units that each integrate at their own rate (time scale).

Leaky-integrator units (Mozer 1992, "Induction of multiscale temporal structure"; Jaeger,
Lukosevicius, Popovici & Siewert 2007, "Optimization and applications of echo state networks with
leaky-integrator neurons"), here with every weight trained by backpropagation through time:

    h~_t = tanh(W_x x_t + W_h h_{t-1} + b)
    h_t  = (1 - a) * h_{t-1} + a * h~_t          a in (0, 1]^H, one leak rate per unit

h_0 = 0 or the carried state. A unit with a = 1 is a plain Elman unit; a unit with a small a keeps
a fraction 1 - a of its value each step, a time constant of about 1 / a steps, and the gradient
through it decays by (1 - a) per step plus what W_h adds, instead of by W_h alone: what lets such
units carry information across longer gaps than Elman units (Mozer 1992's motivation).

The rates (`arch.leak_rates`):

- `learned` (default): a_i = sigmoid(theta_i) with theta_i trained like every other weight. The
  sigmoid keeps a in (0, 1) whatever the optimiser does. theta_i starts at logit(s_i), s_i being the
  spread below with its fastest entries capped at `LEARNED_START_CAP` = 0.95 (the sigmoid never
  reaches 1, and at logit 0.95 = 2.94 its slope, 0.05, still lets the rate move).
- `fixed`: a_i = s_i, a buffer, never trained (Jaeger et al. 2007 fix it; here each unit gets its
  own).

The spread s over H units is geometric from 1 down to `arch.min_leak_rate`:
s_i = min_leak_rate ** (i / (H - 1)), i = 0 .. H - 1 (s = 1 for H = 1), so the time constants
1 / s_i run from 1 step to 1 / min_leak_rate steps (100 by default) with as many units per octave
at every scale. `min_leak_rate=1` makes every unit an Elman unit: the fused `rnn`'s equations, with
one bias b where `nn.RNN` has b_ih + b_hh.

Initialisation as `nn.RNN`: every weight and b uniform in [-1/sqrt(H), 1/sqrt(H)]. Parameters with
learned rates: H I + H^2 + 2 H, those of the fused `rnn` (the rates take the place of its second
bias), so a parameter budget gives both the same hidden size; with fixed rates H fewer. The input
projection of all steps is one matmul before the time loop; padded steps neither read their input
nor reach the returned state (the state is taken at each item's last real step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from torch import Tensor, nn

from rnnbench import (Architecture, BenchmarkError, Capabilities, Encoder, EncoderOutput,
                      SequenceBatch, UnitInterval, register_architecture)

LEARNED_START_CAP = 0.95


@dataclass
class LeakyRNNOptions:
    """leak_rates: `learned` (a = sigmoid(theta), trained, started at the spread) or `fixed` (the
    spread, never trained). min_leak_rate: the slowest unit's rate; the spread runs geometrically
    from 1 down to it over the units (time constants 1 to 1 / min_leak_rate steps)."""

    leak_rates: Literal["learned", "fixed"] = "learned"
    min_leak_rate: Annotated[float, UnitInterval] = 0.01


def leak_rate_spread(size: int, min_leak_rate: float) -> list[float]:
    """`size` rates geometric from 1 down to `min_leak_rate` (one rate of 1 when size is 1)."""
    if size == 1:
        return [1.0]
    return [min_leak_rate ** (i / (size - 1)) for i in range(size)]


def _validate(options: LeakyRNNOptions) -> None:
    if options.leak_rates not in ("learned", "fixed"):
        raise BenchmarkError(f"arch.leak_rates must be learned or fixed, got '{options.leak_rates}': "
                             f"e.g. arch.leak_rates=learned")
    rate = options.min_leak_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 < rate <= 1.0:
        raise BenchmarkError(f"arch.min_leak_rate must be in (0, 1]: greater than 0, at most 1, got "
                             f"{rate}: e.g. arch.min_leak_rate=0.01")


class LeakyRNNEncoder(Encoder):
    """The recurrence of the module docstring; the carried state is h of the last real step."""

    def __init__(self, input_size: int, hidden_size: int, options: LeakyRNNOptions) -> None:
        super().__init__()
        self.output_size = hidden_size
        self.input_projection = nn.Linear(input_size, hidden_size)               # W_x, b
        self.recurrent = nn.Linear(hidden_size, hidden_size, bias=False)        # W_h
        bound = 1.0 / math.sqrt(hidden_size)
        for weight in (self.input_projection.weight, self.input_projection.bias, self.recurrent.weight):
            nn.init.uniform_(weight, -bound, bound)
        spread = leak_rate_spread(hidden_size, options.min_leak_rate)
        self.learned = options.leak_rates == "learned"
        if self.learned:
            start = [min(rate, LEARNED_START_CAP) for rate in spread]
            self.leak_logit = nn.Parameter(torch.tensor([math.log(r / (1.0 - r)) for r in start]))
        else:
            self.register_buffer("fixed_rates", torch.tensor(spread))

    def recurrent_matrices(self) -> list[Tensor]:
        """W_h, (H, H)."""
        return [self.recurrent.weight]

    @property
    def leak_rates(self) -> Tensor:
        """a, (H,): the rate of each unit."""
        return torch.sigmoid(self.leak_logit) if self.learned else self.fixed_rates

    def forward(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        values, lengths = inputs.values, inputs.lengths
        batch = values.shape[0]
        real = inputs.mask().unsqueeze(-1)                                       # (B, T, 1)
        # W_x x_t + b for every step at once; padded steps read zeros, whatever they hold (inf, nan)
        driven = self.input_projection(torch.where(real, values, 0.0))
        # the state in the dtype of the step inputs (bf16 under autocast, for lerp)
        h = driven.new_zeros(batch, self.output_size) if state is None else state.to(driven.dtype)
        rate = self.leak_rates.to(driven.dtype)
        recurrent_t = self.recurrent.weight.t()
        states = [h]
        for step_input in driven.unbind(1):
            candidate = torch.tanh(torch.addmm(step_input, h, recurrent_t))
            h = torch.lerp(h, candidate, rate)                                   # (1 - a) h + a h~
            states.append(h)
        history = torch.stack(states, dim=1)                                      # (B, 1 + T, H)
        outputs = torch.where(real, history[:, 1:], 0.0)
        last = history[torch.arange(batch, device=values.device), lengths.to(values.device)]
        return EncoderOutput(outputs, last.unsqueeze(1), last)


@register_architecture("leaky_rnn")
class LeakyRNN(Architecture):
    """Leaky-integrator tanh RNN with per-unit leak rates spread over time scales."""

    version = 1
    capabilities = Capabilities(causal=True, structures=("sequence",), recurrent_matrices=True)
    Options = LeakyRNNOptions

    def build(self, input_size: int, hidden_size: int, options: LeakyRNNOptions) -> Encoder:
        _validate(options)
        return LeakyRNNEncoder(input_size, hidden_size, options)
