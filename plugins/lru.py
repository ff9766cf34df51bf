"""LRU, the linear recurrent unit (Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De 2023,
"Resurrecting recurrent neural networks for long sequences", section 3 and appendix A):

    h_t = diag(lambda) h_{t-1} + gamma * (B x_t),      h in C^N
    y_t = Re(C h_t) + D x_t
    lambda_j = exp(-exp(nu_j) + i exp(theta_j)),   gamma_j = exp(gamma_log_j)

The exponential parametrisation keeps |lambda| < 1 whatever nu is trained to; gamma normalises
the input so that the state's variance does not grow as |lambda| -> 1: it starts at
sqrt(1 - |lambda_j|^2) and is trained (log-parametrised), as in the paper's appendix code.
Initialisation (the paper's): |lambda| uniform on the ring [r_min, r_max] (nu = log(-log(u (r_max^2 - r_min^2) +
r_min^2) / 2)), phase uniform in [0, max_phase] (theta = log(phase)), B and C complex Gaussian
with variance 1 / (2 I) and 1 / N per part, D Gaussian. Here I need not equal H: D maps the input
to the output size, and the block's nonlinearity follows the layer (the paper's block: GELU), so
the encoder's output is GELU(y_t).

The parallel path is `linear_scan` over complex decays (recursive doubling: products and sums
only, stable for any phase); `forward_recurrent` is the loop. The carried state is h (complex) at
each item's last real step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnbench import (Architecture, AtLeast, BenchmarkError, Capabilities, Encoder, EncoderOutput, Positive,
                      SequenceBatch, UnitInterval, freeze_padding, linear_scan, register_architecture,
                      sequence_output, sequential_scan)


@dataclass
class LRUOptions:
    """r_min, r_max: the ring |lambda| is drawn from; max_phase: the largest initial phase.
    state_size: N, complex state units (default: the hidden size)."""

    r_min: Annotated[float, UnitInterval] = 0.9
    r_max: Annotated[float, UnitInterval] = 0.999
    max_phase: Annotated[float, Positive] = math.pi / 10
    state_size: Annotated[int | None, AtLeast(1)] = None


class LRUEncoder(Encoder):
    def __init__(self, input_size: int, hidden_size: int, options: LRUOptions) -> None:
        super().__init__()
        if not options.r_min < options.r_max:
            raise BenchmarkError(f"arch.r_min must be below arch.r_max, got {options.r_min} and "
                                 f"{options.r_max}: e.g. arch.r_min=0.9 arch.r_max=0.999")
        state = options.state_size or hidden_size
        self.output_size = hidden_size
        squared_modulus = torch.rand(state) * (options.r_max ** 2 - options.r_min ** 2) + options.r_min ** 2
        self.nu_log = nn.Parameter(torch.log(-0.5 * torch.log(squared_modulus)))
        self.theta_log = nn.Parameter(torch.log(options.max_phase * torch.rand(state).clamp(min=1e-4)))
        self.gamma_log = nn.Parameter(0.5 * torch.log(1 - squared_modulus))            # log sqrt(1 - |lambda|^2)
        self.input_real = nn.Parameter(torch.randn(state, input_size) / math.sqrt(2 * input_size))
        self.input_imag = nn.Parameter(torch.randn(state, input_size) / math.sqrt(2 * input_size))
        self.output_real = nn.Parameter(torch.randn(hidden_size, state) / math.sqrt(state))
        self.output_imag = nn.Parameter(torch.randn(hidden_size, state) / math.sqrt(state))
        self.skip = nn.Linear(input_size, hidden_size, bias=False)                # D
        nn.init.normal_(self.skip.weight, std=1.0 / math.sqrt(input_size))

    def _coefficients(self, inputs: SequenceBatch) -> tuple[Tensor, Tensor, Tensor]:
        """(lambda (N,), gamma * B x_t (B, T, N) complex, the inputs with padding zeroed)."""
        values = torch.where(inputs.mask().unsqueeze(-1), inputs.values, 0.0)
        decay = torch.polar(torch.exp(-torch.exp(self.nu_log)), torch.exp(self.theta_log))
        gamma = torch.exp(self.gamma_log)
        driven = torch.complex(values @ self.input_real.t(), values @ self.input_imag.t()) * gamma
        return decay, driven, values

    def _output(self, states: Tensor, values: Tensor, lengths: Tensor) -> EncoderOutput:
        output = torch.complex(self.output_real, self.output_imag)
        outputs = F.gelu((states @ output.t()).real + self.skip(values))
        return sequence_output(outputs, lengths, states[:, -1])

    def forward(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        decay, driven, values = self._coefficients(inputs)
        decays, driven = freeze_padding(decay.expand_as(driven), driven, inputs.mask())
        return self._output(linear_scan(decays, driven, state), values, inputs.lengths)

    def forward_recurrent(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        decay, driven, values = self._coefficients(inputs)
        decays, driven = freeze_padding(decay.expand_as(driven), driven, inputs.mask())
        return self._output(sequential_scan(decays, driven, state), values, inputs.lengths)


@register_architecture("lru")
class LRU(Architecture):
    """Linear recurrent unit (Orvieto et al. 2023): complex diagonal recurrence, exponential
    parametrisation, normalised input."""

    capabilities = Capabilities(causal=True, structures=("sequence",), parallel_form=True)
    Options = LRUOptions

    def build(self, input_size: int, hidden_size: int, options: LRUOptions) -> Encoder:
        return LRUEncoder(input_size, hidden_size, options)
