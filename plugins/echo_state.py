"""Echo-state network: a fixed random leaky reservoir; only the readout learns.

Leaky-integrator ESN (Jaeger 2001; Jaeger, Lukosevicius, Popovici & Siewert 2007; notation of
Lukosevicius 2012, "A Practical Guide to Applying Echo State Networks", eqs. 2-3):

    x~(t) = tanh(W_in [1; u(t)] + W x(t-1))
    x(t)  = (1 - a) x(t-1) + a x~(t)

W is sparse (each weight nonzero with probability `density`), drawn uniformly and rescaled to the
requested spectral radius rho(W) (below 1 by default, for the echo-state property); W_in is
uniform in [-input_scaling, input_scaling] (bias column: [-bias_scaling, bias_scaling]); a is the
leak rate. W and W_in are buffers: they never receive a gradient and are not counted as parameters.
So `arch.recurrent_init=orthogonal` is refused here (Capabilities.recurrent_matrices is False): W is
not trained, and is drawn at its spectral radius on purpose.

Readout: the task's head is trained either by gradient like every other plugin, or, with
`optim.optimizer=ridge` on a regression task, in closed form by `EchoStateEncoder.fit_readout`:
one pass over the training split, then W_out = Y X^T (X X^T + N beta I)^-1 over N items
(Lukosevicius 2012, eq. 9, with beta per item), no backpropagation through time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

import torch
from torch import Tensor, nn

from rnnbench import (Architecture, BenchmarkError, Capabilities, Encoder, EncoderOutput,
                      NonNegative, SequenceBatch, UnitInterval, register_architecture)

MAX_RESERVOIR = 8192


@dataclass
class EchoStateOptions:
    """spectral_radius: rho(W) after rescaling. leak_rate: a in (0, 1]. density: fraction of
    nonzero reservoir weights. input_scaling / bias_scaling: ranges of W_in's input and bias
    columns. ridge: beta of the closed-form readout (optim.optimizer=ridge), which minimises the
    mean squared error over the training items plus beta ||W_out||^2."""

    spectral_radius: Annotated[float, NonNegative] = 0.9
    leak_rate: Annotated[float, UnitInterval] = 1.0
    density: Annotated[float, UnitInterval] = 0.1
    input_scaling: Annotated[float, NonNegative] = 1.0
    bias_scaling: Annotated[float, NonNegative] = 0.2
    ridge: Annotated[float, NonNegative] = 1e-6


def random_reservoir(size: int, density: float, spectral_radius: float) -> Tensor:
    """A (size, size) sparse uniform random matrix rescaled to `spectral_radius`, drawn from the
    global torch generator (seeded by the runner)."""
    weights = torch.rand(size, size) * 2.0 - 1.0
    weights = weights * (torch.rand(size, size) < density)
    radius = torch.linalg.eigvals(weights.double()).abs().max().item()
    if radius == 0.0:
        raise BenchmarkError(f"the random reservoir of {size} units at density {density} has no "
                             f"nonzero eigenvalue: raise arch.density or arch.hidden_size")
    return weights * (spectral_radius / radius)


class EchoStateEncoder(Encoder):
    """The reservoir of `EchoStateOptions`; the carried state is x(t) of the last real step."""

    def __init__(self, input_size: int, hidden_size: int, options: EchoStateOptions) -> None:
        super().__init__()
        self.leak_rate, self.ridge = options.leak_rate, options.ridge
        self.output_size = hidden_size
        if torch.get_default_device().type == "meta":  # sizing only: no eigen-decomposition
            reservoir = torch.empty(hidden_size, hidden_size)
        else:
            reservoir = random_reservoir(hidden_size, options.density, options.spectral_radius)
        input_weights = (torch.rand(hidden_size, input_size) * 2.0 - 1.0) * options.input_scaling
        input_bias = (torch.rand(hidden_size) * 2.0 - 1.0) * options.bias_scaling
        self.register_buffer("reservoir", reservoir)
        self.register_buffer("input_weights", input_weights)
        self.register_buffer("input_bias", input_bias)

    def fixed_weights(self) -> list[Tensor]:
        """W (the reservoir, sparse), W_in and its bias: drawn once and never trained."""
        return [self.reservoir, self.input_weights, self.input_bias]

    def forward(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        values, lengths = inputs.values, inputs.lengths
        batch, steps = values.shape[:2]
        # W_in [1; u(t)] for every step at once; padded steps only follow the last real one
        driven = torch.addmm(self.input_bias, values.reshape(batch * steps, -1),
                             self.input_weights.t()).view(batch, steps, -1)
        reservoir_t = self.reservoir.t()
        current = state if state is not None else values.new_zeros(batch, self.output_size)
        leak = self.leak_rate
        states = []
        for step_input in driven.unbind(1):
            candidate = torch.tanh(torch.addmm(step_input, current, reservoir_t))
            current = candidate if leak == 1.0 else torch.lerp(current, candidate, leak)
            states.append(current)
        outputs = torch.stack(states, dim=1)
        last = (lengths.to(values.device) - 1).clamp(min=0)
        final = outputs[torch.arange(batch, device=values.device), last]
        return EncoderOutput(outputs, final.unsqueeze(1), final)

    @torch.no_grad()
    def fit_readout(self, pairs: Iterable[tuple[Tensor, Tensor]], readout: nn.Linear) -> None:
        """Set `readout` to the ridge-regression solution over `pairs` of (features (N, O) as the
        readout sees them, targets (N, out_features)), accumulated in one pass:
        [W b] = Y X~^T (X~ X~^T + N beta I')^-1 with X~ = [X; 1] over N items and the bias left
        unregularised (I' is the identity without its bias entry)."""
        size = readout.in_features + 1
        gram = torch.zeros(size, size, dtype=torch.float64)
        cross = torch.zeros(size, readout.out_features, dtype=torch.float64)
        seen = 0
        for features, targets in pairs:
            features = features.detach().double().cpu()
            features = torch.cat([features, features.new_ones(features.shape[0], 1)], dim=1)
            gram += features.t() @ features
            cross += features.t() @ targets.detach().double().cpu().reshape(features.shape[0], -1)
            seen += features.shape[0]
        if seen == 0:
            raise BenchmarkError("the closed-form readout saw no training items: check the task's train split")
        penalty = torch.full((size,), self.ridge * seen, dtype=torch.float64)
        penalty[-1] = 0.0
        solution = torch.linalg.solve(gram + torch.diag(penalty), cross)  # (O + 1, out)
        readout.weight.copy_(solution[:-1].t().to(readout.weight))
        readout.bias.copy_(solution[-1].to(readout.bias))


@register_architecture("esn")
class EchoState(Architecture):
    """Leaky echo-state network with a fixed sparse reservoir."""

    capabilities = Capabilities(causal=True, structures=("sequence",), closed_form_readout=True)
    Options = EchoStateOptions

    def build(self, input_size: int, hidden_size: int, options: EchoStateOptions) -> Encoder:
        if not 0.0 < options.leak_rate <= 1.0:
            raise BenchmarkError(f"arch.leak_rate must be in (0, 1], got {options.leak_rate}")
        if not 0.0 < options.density <= 1.0:
            raise BenchmarkError(f"arch.density must be in (0, 1], got {options.density}")
        if options.spectral_radius <= 0.0:
            raise BenchmarkError(f"arch.spectral_radius must be positive, got {options.spectral_radius}")
        if options.ridge < 0.0:
            raise BenchmarkError(f"arch.ridge must be non-negative, got {options.ridge}")
        if hidden_size > MAX_RESERVOIR:
            raise BenchmarkError(f"a reservoir of {hidden_size} units is too large (at most "
                                 f"{MAX_RESERVOIR}): set arch.hidden_size, or a smaller arch.params "
                                 f"(only the readout counts towards a parameter budget)")
        return EchoStateEncoder(input_size, hidden_size, options)
