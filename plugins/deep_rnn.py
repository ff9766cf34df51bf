"""Deep recurrent stack with residual connections between layers and (variational) dropout.

A stack of `num_layers` recurrent layers of one cell type (rnn: Elman 1990; gru: Cho et al. 2014;
lstm: Hochreiter & Schmidhuber 1997), each a fused single-layer PyTorch module (so the input
projection of all gates and steps is one matmul), with identity skip connections between layers
(Wu et al. 2016, "Google's Neural Machine Translation System", section 3.1; He et al. 2016):

    y^0 = x
    y^1 = RNN^1(y^0)
    y^l = RNN^l(D(y^{l-1})) + y^{l-1}        for l = 2..L   (without residuals: RNN^l(D(y^{l-1})))

The first layer has no skip because its input size differs from the hidden size. D is dropout on
the connections between layers only, never on the recurrent connections (Zaremba et al. 2014);
with `variational`, one dropout mask per sequence is shared across all time steps (Gal &
Ghahramani 2016, "A Theoretically Grounded Application of Dropout in Recurrent Neural Networks").
The encoder's outputs are y^L; `final` is y^L at each item's last real step.

Initialisation settings: `arch.recurrent_init=orthogonal` (each gate's H x H block of every
layer's W_hh) for every cell; `arch.forget_bias` with arch.cell=lstm only (the forget slices of
b_ih and b_hh, each half the value).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnbench import (Architecture, AtLeast, BenchmarkError, Capabilities, Encoder,
                      EncoderOutput, Probability, SequenceBatch, register_architecture)

CellType = Literal["rnn", "gru", "lstm"]
_MODULES: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


@dataclass
class DeepRNNOptions:
    """cell: recurrent cell of every layer (rnn is the tanh Elman cell).
    num_layers: depth of the stack. residual: identity skips between layers 2..L.
    dropout: probability on the inputs of layers 2..L. variational: one mask per sequence, shared
    across time (Gal & Ghahramani 2016) instead of a fresh mask at every step."""

    cell: CellType = "lstm"
    num_layers: Annotated[int, AtLeast(1)] = 4
    residual: bool = True
    dropout: Annotated[float, Probability] = 0.0
    variational: bool = False


class DeepResidualEncoder(Encoder):
    """The stack of `DeepRNNOptions`; the carried state is one tuple entry per layer."""

    def __init__(self, input_size: int, hidden_size: int, options: DeepRNNOptions) -> None:
        super().__init__()
        module = _MODULES[options.cell]
        extra = {"nonlinearity": "tanh"} if module is nn.RNN else {}
        self.layers = nn.ModuleList(
            module(input_size if depth == 0 else hidden_size, hidden_size, batch_first=True, **extra)
            for depth in range(options.num_layers))
        self.residual, self.dropout, self.variational = options.residual, options.dropout, options.variational
        self.output_size = hidden_size

    def _drop(self, values: Tensor) -> Tensor:
        if not self.training or self.dropout == 0.0:
            return values
        if not self.variational:
            return nn.functional.dropout(values, self.dropout, training=True)
        keep = 1.0 - self.dropout
        mask = torch.empty(values.shape[0], 1, values.shape[2], device=values.device,
                           dtype=values.dtype).bernoulli_(keep) / keep
        return values * mask

    def recurrent_matrices(self) -> list[Tensor]:
        """Each gate's (H, H) block of every layer's W_hh."""
        return [block for layer in self.layers for block in layer.weight_hh_l0.split(layer.hidden_size)]

    def forget_gate_biases(self) -> list[tuple[Tensor, ...]]:
        """With LSTM cells: the forget slices [H:2H] of b_ih and b_hh, per layer; else none."""
        return [(layer.bias_ih_l0[layer.hidden_size:2 * layer.hidden_size],
                 layer.bias_hh_l0[layer.hidden_size:2 * layer.hidden_size])
                for layer in self.layers if isinstance(layer, nn.LSTM)]

    def forward(self, inputs: SequenceBatch, state: Any = None) -> EncoderOutput:
        values, lengths = inputs.values, inputs.lengths
        steps = values.shape[1]
        packed = not bool((lengths == steps).all())
        states = state if state is not None else (None,) * len(self.layers)
        new_states = []
        layer_input = values
        for depth, (layer, layer_state) in enumerate(zip(self.layers, states)):
            source = layer_input if depth == 0 else self._drop(layer_input)
            if packed:
                sequence = pack_padded_sequence(source, lengths.cpu(), batch_first=True, enforce_sorted=False)
                output, layer_state = layer(sequence, layer_state)
                output, _ = pad_packed_sequence(output, batch_first=True, total_length=steps)
            else:
                output, layer_state = layer(source, layer_state)
            new_states.append(layer_state)
            layer_input = output + layer_input if self.residual and depth > 0 else output
        last = (lengths.to(values.device) - 1).clamp(min=0)
        final = layer_input[torch.arange(values.shape[0], device=values.device), last].unsqueeze(1)
        return EncoderOutput(layer_input, final, tuple(new_states))


@register_architecture("deep_rnn")
class DeepResidualRNN(Architecture):
    """Deep residual recurrent stack (rnn / gru / lstm cells)."""
    depth_option = "num_layers"

    capabilities = Capabilities(causal=True, structures=("sequence",), recurrent_matrices=True,
                                forget_gate=True)   # forget gates with arch.cell=lstm only
    Options = DeepRNNOptions

    def build(self, input_size: int, hidden_size: int, options: DeepRNNOptions) -> Encoder:
        if options.num_layers < 1:
            raise BenchmarkError(f"arch.num_layers must be at least 1, got {options.num_layers}")
        if not 0.0 <= options.dropout < 1.0:
            raise BenchmarkError(f"arch.dropout must be in [0, 1), got {options.dropout}")
        return DeepResidualEncoder(input_size, hidden_size, options)
