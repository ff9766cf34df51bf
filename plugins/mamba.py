"""Mamba, the selective state space block (Gu & Dao 2023, "Mamba: linear-time sequence modeling with
selective state spaces", algorithm 2 and figure 3):

    x, z   = W_in x_t                                  (two branches of width E = expand * H)
    x      = SiLU(causal depthwise conv_k(x))           (kernel k = 4)
    Delta  = softplus(W_dt (W_delta x) + b_dt),  B_t = W_B x,  C_t = W_C x     (input-dependent)
    h_t    = exp(Delta_t A) * h_{t-1} + Delta_t B_t x_t     A = -exp(A_log), h in R^(E x N)
    y_t    = (C_t . h_t + D * x_t) * SiLU(z_t),   output W_out y_t

The selection (Delta, B, C functions of the input) lets the state ignore or keep each token.
Initialisation as the paper's code: A_log = log(1..N) per channel (S4D-real), b_dt such that
softplus(b_dt) is log-uniform in [0.001, 0.1], D = 1, dt rank ceil(H / 16), the linear maps as
`nn.Linear`. `arch.negative_eigenvalues=true` takes the transition 2 exp(Delta A) - 1, in (-1, 1)
instead of (0, 1) (Grazzi, Siems, Franke, Zela, Hutter & Pontil 2025, "Unlocking state-tracking in
linear RNNs through negative eigenvalues"): what lets a diagonal recurrence flip a sign per
token, as parity needs.

The parallel path is `linear_scan` over (B, T, E, N); `forward_recurrent` is the loop. The
carried state is (the last k - 1 real inputs of the convolution, h) at each item's last real step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnbench import (Architecture, AtLeast, Capabilities, Encoder, EncoderOutput, Positive, SequenceBatch,
                      freeze_padding, linear_scan, register_architecture, sequence_output,
                      sequential_scan)


@dataclass
class MambaOptions:
    """state_size: N per channel; expand: E / H; conv_kernel: k; negative_eigenvalues: the
    transition in (-1, 1) (Grazzi et al. 2025) instead of (0, 1)."""

    state_size: Annotated[int, Positive] = 16
    expand: Annotated[int, Positive] = 2
    conv_kernel: Annotated[int, AtLeast(1)] = 4
    negative_eigenvalues: bool = False


class MambaEncoder(Encoder):
    def __init__(self, input_size: int, hidden_size: int, options: MambaOptions) -> None:
        super().__init__()
        inner, state, rank = options.expand * hidden_size, options.state_size, math.ceil(hidden_size / 16)
        self.output_size, self.inner, self.rank, self.kernel = hidden_size, inner, rank, options.conv_kernel
        self.negative = options.negative_eigenvalues
        self.in_projection = nn.Linear(input_size, 2 * inner)
        self.conv = nn.Conv1d(inner, inner, options.conv_kernel, groups=inner)
        self.x_projection = nn.Linear(inner, rank + 2 * state, bias=False)
        self.dt_projection = nn.Linear(rank, inner)
        dt = torch.exp(torch.rand(inner) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        with torch.no_grad():
            self.dt_projection.bias.copy_(dt + torch.log(-torch.expm1(-dt)))   # softplus^-1(dt)
        self.a_log = nn.Parameter(torch.log(torch.arange(1, state + 1, dtype=torch.float32)).repeat(inner, 1))
        self.skip = nn.Parameter(torch.ones(inner))                               # D
        self.out_projection = nn.Linear(inner, hidden_size)

    def _convolved(self, inputs: SequenceBatch, state: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor, Tensor]:
        """(x after the causal convolution and SiLU (B, T, E), z (B, T, E), the convolution's
        next state: the last k - 1 real inputs (B, k - 1, E))."""
        real = inputs.mask().unsqueeze(-1)
        x, z = self.in_projection(torch.where(real, inputs.values, 0.0)).chunk(2, dim=-1)
        x = torch.where(real, x, 0.0)
        history = x.new_zeros(x.shape[0], self.kernel - 1, self.inner) if state is None else state[0]
        padded = torch.cat([history, x], dim=1)                                   # (B, k - 1 + T, E)
        convolved = F.conv1d(padded.transpose(1, 2), self.conv.weight, self.conv.bias, groups=self.inner)
        ends = inputs.lengths.to(x.device).view(-1, 1) + torch.arange(self.kernel - 1, device=x.device)
        next_history = padded.gather(1, ends.unsqueeze(-1).expand(-1, -1, self.inner))
        return F.silu(convolved.transpose(1, 2)), z, next_history

    def _selective(self, x: Tensor, real: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(transition (B, T, E, N), input Delta B x (B, T, E, N), C (B, T, N)), padding frozen."""
        delta_raw, b, c = self.x_projection(x).split([self.rank, self.a_log.shape[1], self.a_log.shape[1]], dim=-1)
        delta = F.softplus(self.dt_projection(delta_raw)).unsqueeze(-1)          # (B, T, E, 1)
        transition = torch.exp(-delta * torch.exp(self.a_log))
        if self.negative:
            transition = 2 * transition - 1
        decays, driven = freeze_padding(transition, delta * b.unsqueeze(2) * x.unsqueeze(-1), real)
        return decays, driven, c

    def _output(self, states: Tensor, x: Tensor, z: Tensor, c: Tensor, lengths: Tensor,
                history: Tensor) -> EncoderOutput:
        y = (states * c.unsqueeze(2)).sum(-1) + self.skip * x
        outputs = self.out_projection(y * F.silu(z))
        return sequence_output(outputs, lengths, (history, states[:, -1]))

    def forward(self, inputs: SequenceBatch, state: tuple[Tensor, Tensor] | None = None) -> EncoderOutput:
        x, z, history = self._convolved(inputs, state)
        decays, driven, c = self._selective(x, inputs.mask())
        states = linear_scan(decays, driven, None if state is None else state[1])
        return self._output(states, x, z, c, inputs.lengths, history)

    def forward_recurrent(self, inputs: SequenceBatch,
                          state: tuple[Tensor, Tensor] | None = None) -> EncoderOutput:
        x, z, history = self._convolved_step_by_step(inputs, state)
        decays, driven, c = self._selective(x, inputs.mask())
        states = sequential_scan(decays, driven, None if state is None else state[1])
        return self._output(states, x, z, c, inputs.lengths, history)

    def _convolved_step_by_step(self, inputs: SequenceBatch,
                                state: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor, Tensor]:
        """`_convolved` with the convolution as a sliding window, one step at a time."""
        real = inputs.mask().unsqueeze(-1)
        x, z = self.in_projection(torch.where(real, inputs.values, 0.0)).chunk(2, dim=-1)
        window = x.new_zeros(x.shape[0], self.kernel - 1, self.inner) if state is None else state[0]
        weight = self.conv.weight.squeeze(1).t()                                  # (k, E)
        outputs = []
        for step in range(x.shape[1]):
            current = torch.cat([window, x[:, step:step + 1]], dim=1)            # (B, k, E)
            outputs.append((current * weight).sum(1) + self.conv.bias)
            window = torch.where(real[:, step:step + 1], current[:, 1:], window)
        return F.silu(torch.stack(outputs, dim=1)), z, window


@register_architecture("mamba")
class Mamba(Architecture):
    """Mamba (Gu & Dao 2023): the selective state space block; optionally with eigenvalues in
    (-1, 1) (Grazzi et al. 2025)."""

    capabilities = Capabilities(causal=True, structures=("sequence",), parallel_form=True)
    Options = MambaOptions

    def build(self, input_size: int, hidden_size: int, options: MambaOptions) -> Encoder:
        return MambaEncoder(input_size, hidden_size, options)
