"""Skip RNN: recurrent connections that reach several steps back in time.

A tanh RNN whose state at step t reads its own states at a set of delays D (`arch.delays`):

    h_t = tanh(W_x x_t + sum_{d in D} W_d h_{t-d} + b)          h_t = 0 for t < 0, or carried

Delays longer than one step are the NARX networks' tapped delay lines on the state (Lin, Horne,
Tino & Giles 1996, "Learning long-term dependencies in NARX recurrent neural networks") and the
dilated recurrent skip connections of Chang et al. 2017 ("Dilated recurrent neural networks"),
here several delays in one layer: a path from step t back to step t - k takes about k / max(D)
steps through the recurrence instead of k, so the gradient crosses long gaps through fewer
squashing nonlinearities (Lin et al.'s argument). D = {1} is the Elman RNN.

Default D = (1, 4) (`arch.delays=1+4`): the one-step connection keeps every step reachable, the
4-step one shortens long paths fourfold, for one extra H x H matrix. `arch.delays` is written as
increasing whole numbers joined by '+', read as the sum over delays (commas would clash with
`--vary`, which separates values by commas: `--vary arch.delays=1,1+4,1+2+4+8`): `1+8`, `1+2+4+8`
(each delay adds H x H weights, so under a parameter budget more delays mean a smaller hidden
size), `1` (the Elman RNN). The delays must include 1: a dilated layer alone (`4`) reads only
every fourth step back, so most earlier steps never reach a given step (Chang et al. stack it over
layers of smaller dilation; here the one-step connection plays their part).

Initialisation as `nn.RNN`: every weight and b uniform in [-1/sqrt(H), 1/sqrt(H)], each W_d scaled
by 1 / sqrt(|D|) so that the summed recurrent input has the variance of one Elman matrix.
Parameters: H I + |D| H^2 + H for I inputs (157 hidden units at 50k on the adding task with the
default delays, against 221 for the fused `rnn`). The
carried state holds the last max(D) hidden states, (B, max(D), H), oldest first, so that two halves
with the state carried equal the whole. The input projection of all steps is one matmul before the
time loop, the recurrent term of all delays one matmul per step; padded steps neither read their
input nor reach the returned state (taken at each item's last real steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from torch import Tensor, nn

from rnnbench import (Architecture, BenchmarkError, Capabilities, Constraint, Encoder, EncoderOutput,
                      SequenceBatch, register_architecture)

MAX_DELAY = 1024        # the carried state holds max(delays) hidden states


def parse_delays(text: Any) -> tuple[int, ...] | str:
    """The delays written in `text` ('1+4'), or what is wrong with it."""
    example = "e.g. arch.delays=1+4"
    parts = [part.strip() for part in str(text).split("+")]
    if not all(part.isascii() and part.isdigit() for part in parts):
        return (f"must be whole numbers of steps joined by '+' (not commas: they separate the values "
                f"of --vary), {example} (delays 1 and 4) or arch.delays=1+2+4+8")
    delays = tuple(int(part) for part in parts)
    if min(delays) < 1:
        return f"must be at least 1 step each (a delay of 0 would read the state being computed), {example}"
    if 1 not in delays:
        return (f"must include 1: without the one-step connection a step reads only the steps a "
                f"multiple of its delays back, and most earlier steps never reach it, e.g. "
                f"arch.delays={'+'.join(map(str, sorted({1, *delays})))}")
    if any(later <= earlier for earlier, later in zip(delays, delays[1:])):
        return (f"must be distinct and written in increasing order, e.g. "
                f"arch.delays={'+'.join(map(str, sorted(set(delays))))}")
    if delays[-1] > MAX_DELAY:
        return (f"must be at most {MAX_DELAY} steps (the carried state holds max(delays) hidden "
                f"states), {example}")
    return delays


class _Delays(Constraint):
    """Increasing delays of at least one step, joined by '+': 1+4."""

    def violation(self, value: Any) -> str | None:
        parsed = parse_delays(value)
        return parsed if isinstance(parsed, str) else None

    def __repr__(self) -> str:
        return "Delays"


Delays = _Delays()


@dataclass
class SkipRNNOptions:
    """delays: how many steps back the state reads its own past, increasing, joined by '+'
    ('1+4': h_t = tanh(W_x x_t + W_1 h_{t-1} + W_4 h_{t-4} + b))."""

    delays: Annotated[str, Delays] = "1+4"


class SkipRNNEncoder(Encoder):
    """The recurrence of the module docstring; the carried state is the last max(delays) states."""

    def __init__(self, input_size: int, hidden_size: int, delays: tuple[int, ...]) -> None:
        super().__init__()
        self.output_size = hidden_size
        self.delays = delays
        self.span = max(delays)
        self.input_projection = nn.Linear(input_size, hidden_size)                   # W_x, b
        # [W_{d_1} W_{d_2} ...]: one matmul per step over the delayed states side by side
        self.recurrent = nn.Linear(len(delays) * hidden_size, hidden_size, bias=False)
        bound = 1.0 / math.sqrt(hidden_size)
        nn.init.uniform_(self.input_projection.weight, -bound, bound)
        nn.init.uniform_(self.input_projection.bias, -bound, bound)
        recurrent_bound = bound / math.sqrt(len(delays))          # the sum has one matrix's variance
        nn.init.uniform_(self.recurrent.weight, -recurrent_bound, recurrent_bound)

    def delay_weight(self, delay: int) -> Tensor:
        """W_d, (H, H), for one of the delays."""
        index = self.delays.index(delay)
        return self.recurrent.weight[:, index * self.output_size:(index + 1) * self.output_size]

    def recurrent_matrices(self) -> list[Tensor]:
        """W_d, (H, H), for every delay d (`arch.recurrent_init=orthogonal` draws each orthogonal,
        without the 1 / sqrt(|D|) scale of the default initialisation)."""
        return [self.delay_weight(delay) for delay in self.delays]

    def forward(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        values, lengths = inputs.values, inputs.lengths
        batch = values.shape[0]
        real = inputs.mask().unsqueeze(-1)                                           # (B, T, 1)
        # W_x x_t + b for every step at once; padded steps read zeros, whatever they hold (inf, nan)
        driven = self.input_projection(torch.where(real, values, 0.0))
        if state is None:
            state = driven.new_zeros(batch, self.span, self.output_size)
        history = list(state.unbind(1))                       # h_{-span} .. h_{-1}, then h_0, h_1, ...
        recurrent_t = self.recurrent.weight.t()
        for step_input in driven.unbind(1):
            delayed = history[-self.delays[0]] if len(self.delays) == 1 else \
                torch.cat([history[-delay] for delay in self.delays], dim=1)
            history.append(torch.tanh(torch.addmm(step_input, delayed, recurrent_t)))
        every = torch.stack(history, dim=1)                                          # (B, span + T, H)
        outputs = torch.where(real, every[:, self.span:], 0.0)
        # each item's last `span` states up to its last real step (padding only follows them)
        ends = lengths.to(values.device)
        window = ends.unsqueeze(1) + torch.arange(self.span, device=values.device)   # (B, span)
        carried = every[torch.arange(batch, device=values.device).unsqueeze(1), window]
        return EncoderOutput(outputs, carried[:, -1:], carried)


@register_architecture("skip_rnn")
class SkipRNN(Architecture):
    """Tanh RNN with recurrent skip connections through time (NARX-style delays, dilations)."""

    version = 1
    capabilities = Capabilities(causal=True, structures=("sequence",), recurrent_matrices=True)
    Options = SkipRNNOptions

    def build(self, input_size: int, hidden_size: int, options: SkipRNNOptions) -> Encoder:
        delays = parse_delays(options.delays)
        if isinstance(delays, str):
            raise BenchmarkError(f"arch.delays {delays}, got '{options.delays}'")
        return SkipRNNEncoder(input_size, hidden_size, delays)
