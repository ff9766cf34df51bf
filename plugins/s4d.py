"""S4D, the diagonal structured state space (Gu, Gupta, Goel & Re 2022, "On the parameterization and
initialization of diagonal state space models", S4D-Lin with ZOH discretisation):

    h_t = A_bar h_{t-1} + B_bar u_t,   y_t = 2 Re(C h_t) + D u_t        per channel, h in C^(N/2)
    A_bar = exp(dt A),   B_bar = (A_bar - 1) / A  (B = 1),   A_n = -1/2 + i pi n   (S4D-Lin)

Trained as a convolution: y = K * u + D u with the kernel K_l = 2 Re(sum_n C_n B_bar_n A_bar_n^l),
l < T, computed from the Vandermonde powers and applied by FFT over 2T points (causal, O(T log T)).
A carried state h_0 adds 2 Re(sum_n C_n A_bar_n^(t+1) h_0n) to y_t, and the state after the last
real step L - 1 is A_bar^L h_0 + sum_(k<L) A_bar^(L-1-k) B_bar u_k (the same powers, over the
inputs aligned to end at the last step). `forward_recurrent` runs the recurrence as a loop.

Channels: the input is projected to H channels (u), each an independent single-input
single-output SSM with its own dt (log dt uniform in [log 0.001, log 0.1]), A (real part
log-parametrised, -exp(log(1/2)) at the start) and C (complex Gaussian, variance 1/2 per part);
D is Gaussian. The output is GELU(y) (S4's block nonlinearity). State size N (`arch.state_size`,
default 64) counts real numbers, N/2 complex modes.
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
class S4DOptions:
    """state_size: N real numbers per channel (N/2 complex modes); even. dt_min, dt_max: the
    range of the initial step sizes (log-uniform)."""

    state_size: Annotated[int, Positive] = 64
    dt_min: Annotated[float, Positive] = 0.001
    dt_max: Annotated[float, Positive] = 0.1


class S4DEncoder(Encoder):
    def __init__(self, input_size: int, hidden_size: int, options: S4DOptions) -> None:
        super().__init__()
        if options.state_size % 2 or not options.dt_min < options.dt_max:
            raise BenchmarkError(f"arch.state_size must be even and arch.dt_min below arch.dt_max, got "
                                 f"{options.state_size}, {options.dt_min}, {options.dt_max}: e.g. "
                                 f"arch.state_size=64")
        modes = options.state_size // 2
        self.output_size = hidden_size
        self.projection = nn.Linear(input_size, hidden_size)
        self.log_dt = nn.Parameter(torch.rand(hidden_size) * (math.log(options.dt_max) - math.log(options.dt_min))
                                   + math.log(options.dt_min))
        self.log_a_real = nn.Parameter(torch.full((hidden_size, modes), math.log(0.5)))
        self.a_imag = nn.Parameter(math.pi * torch.arange(modes, dtype=torch.float32).repeat(hidden_size, 1))
        self.c = nn.Parameter(torch.randn(hidden_size, modes, 2) * math.sqrt(0.5))
        self.skip = nn.Parameter(torch.randn(hidden_size))   # D

    def _discrete(self) -> tuple[Tensor, Tensor, Tensor]:
        """(dt A, B_bar, C), each (H, N/2) complex."""
        a = torch.complex(-torch.exp(self.log_a_real), self.a_imag)
        dt_a = a * torch.exp(self.log_dt).unsqueeze(-1)
        return dt_a, (torch.exp(dt_a) - 1) / a, torch.view_as_complex(self.c)

    def _inputs(self, inputs: SequenceBatch) -> Tensor:
        """u, (B, T, H), zero at padded steps."""
        real = inputs.mask().unsqueeze(-1)
        return torch.where(real, self.projection(torch.where(real, inputs.values, 0.0)), 0.0)

    def forward(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        u = self._inputs(inputs)
        steps = u.shape[1]
        dt_a, b_bar, c = self._discrete()
        powers = _powers(dt_a, torch.arange(steps + 1, device=u.device, dtype=u.dtype))   # (H, N/2, T + 1)
        kernel = 2 * torch.einsum("hn,hnl->hl", c * b_bar, powers[..., :steps]).real      # (H, T)
        spectrum = torch.fft.rfft(u.transpose(1, 2), n=2 * steps) * torch.fft.rfft(kernel, n=2 * steps)
        y = torch.fft.irfft(spectrum, n=2 * steps)[..., :steps].transpose(1, 2) + self.skip * u
        lengths = inputs.lengths.to(u.device)
        # the inputs aligned to end at each item's last real step: the state there is one sum
        source = torch.arange(steps, device=u.device) - (steps - lengths).unsqueeze(1)      # (B, T)
        aligned = torch.where((source >= 0).unsqueeze(-1),
                              u.gather(1, source.clamp(min=0).unsqueeze(-1).expand_as(u)), 0.0)
        final_state = torch.einsum("bth,hnt->bhn", aligned.to(b_bar.dtype),
                                   (b_bar.unsqueeze(-1) * powers[..., :steps]).flip(-1))
        if state is not None:
            y = y + 2 * torch.einsum("bhn,hnt->bth", c * state, powers[..., 1:]).real
            final_state = final_state + _powers(dt_a, lengths.view(-1, 1, 1, 1).to(u.dtype)).squeeze(-1) * state
        return sequence_output(F.gelu(y), lengths, final_state)

    def forward_recurrent(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        u = self._inputs(inputs)
        dt_a, b_bar, c = self._discrete()
        a_bar = torch.exp(dt_a)
        h = torch.zeros(u.shape[0], *a_bar.shape, dtype=a_bar.dtype, device=u.device) if state is None else state
        real, outputs = inputs.mask(), []
        for step in range(u.shape[1]):
            updated = a_bar * h + b_bar * u[:, step].unsqueeze(-1)
            h = torch.where(real[:, step].view(-1, 1, 1), updated, h)
            outputs.append(2 * (c * h).sum(-1).real + self.skip * u[:, step])
        return sequence_output(F.gelu(torch.stack(outputs, dim=1)), inputs.lengths, h)


def _powers(dt_a: Tensor, exponents: Tensor) -> Tensor:
    """A_bar^l = exp(l dt A) for every exponent l (a trailing dimension), as modulus and phase:
    a complex exp costs 3.6 times as much on a CPU (82.9 against 22.8 ms for 2M values)."""
    exponents = exponents if exponents.dim() > 1 else exponents.view(1, 1, -1)
    return torch.polar(torch.exp(dt_a.real.unsqueeze(-1) * exponents), dt_a.imag.unsqueeze(-1) * exponents)


@register_architecture("s4d")
class S4D(Architecture):
    """S4D (Gu et al. 2022): a diagonal state space per channel, trained as an FFT convolution and
    run as a recurrence."""

    capabilities = Capabilities(causal=True, structures=("sequence",), parallel_form=True)
    Options = S4DOptions

    def build(self, input_size: int, hidden_size: int, options: S4DOptions) -> Encoder:
        return S4DEncoder(input_size, hidden_size, options)
