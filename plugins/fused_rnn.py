"""Recurrences on PyTorch's fused modules (cuDNN on a GPU, one fused kernel per layer on a CPU).

- rnn: Elman (1990), h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).
- gru: Cho et al. (2014), r/z gates, n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn)),
  h_t = (1 - z_t) * n_t + z_t * h_{t-1}.
- lstm: Hochreiter & Schmidhuber (1997) with forget gate (Gers et al. 2000),
  c_t = f_t * c_{t-1} + i_t * g_t, h_t = o_t * tanh(c_t).
- bilstm: two LSTMs, one reading forwards and one backwards (Graves & Schmidhuber 2005); the
  per-step output concatenates both directions; not causal.

The input projection of all gates and all steps is one matmul inside the fused op. Padded
batches run packed (`pack_padded_sequence`) so padding never reaches the state.

Initialisation settings: every one offers `arch.recurrent_init=orthogonal` (each gate's H x H block
of every W_hh, per layer and direction); lstm and bilstm also `arch.forget_bias` (the forget
slices [H:2H] of b_ih and b_hh, each set to half the value: PyTorch's gate order is i, f, g, o).
Dropout between layers (`arch.dropout`) draws a fresh mask at every step; one mask per sequence
(Gal & Ghahramani 2016) is deep_rnn's `arch.variational` (with arch.residual=false for a plain
stack).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnbench import (Architecture, AtLeast, Capabilities, Encoder, EncoderOutput, Probability,
                      SequenceBatch, register_architecture)


class FusedEncoder(Encoder):
    """Wraps nn.RNN / nn.GRU / nn.LSTM (batch first) in the encoder contract.

    `rnn` is one fused module of all layers, or, when there is dropout between layers, a list of
    one-layer fused modules with `dropout` applied between them, as the fused module would
    (the same numbers on a CPU). The reason is resuming: cuDNN keeps its own dropout generator,
    which no checkpoint can save, whereas `nn.functional.dropout` draws from torch's generator,
    which checkpoints restore (rnnbench.training.resume)."""

    def __init__(self, rnn: nn.RNNBase | nn.ModuleList, dropout: float = 0.0) -> None:
        super().__init__()
        self.rnn, self.dropout = rnn, dropout
        layers = list(rnn) if isinstance(rnn, nn.ModuleList) else [rnn]
        self.directions = 2 if layers[0].bidirectional else 1
        self.num_layers = sum(layer.num_layers for layer in layers)
        self.output_size = layers[0].hidden_size * self.directions

    def _run(self, values: Tensor | PackedSequence, state: Any) -> tuple[Tensor | PackedSequence, Any]:
        if not isinstance(self.rnn, nn.ModuleList):
            return self.rnn(values, state)
        per_layer = self.directions
        states: list[Any] = []
        for index, layer in enumerate(self.rnn):
            if index > 0:
                data = values.data if isinstance(values, PackedSequence) else values
                dropped = nn.functional.dropout(data, self.dropout, self.training)
                values = values._replace(data=dropped) if isinstance(values, PackedSequence) else dropped
            part = None
            if state is not None:
                rows = slice(index * per_layer, (index + 1) * per_layer)
                part = tuple(s[rows] for s in state) if isinstance(state, tuple) else state[rows]
            values, layer_state = layer(values, part)
            states.append(layer_state)
        if isinstance(states[0], tuple):
            return values, tuple(torch.cat(parts) for parts in zip(*states))
        return values, torch.cat(states)

    def _layers(self) -> list[tuple[nn.RNNBase, str]]:
        """(fused module, parameter suffix) for every layer and direction, e.g. '_l0_reverse'."""
        modules = list(self.rnn) if isinstance(self.rnn, nn.ModuleList) else [self.rnn]
        directions = ("", "_reverse")[:self.directions]
        return [(module, f"_l{layer}{direction}") for module in modules
                for layer in range(module.num_layers) for direction in directions]

    def recurrent_matrices(self) -> list[Tensor]:
        """Each gate's (H, H) block of W_hh, per layer and direction (1 block for rnn, 3 for gru,
        4 for lstm)."""
        return [block for module, suffix in self._layers()
                for block in getattr(module, "weight_hh" + suffix).split(module.hidden_size)]

    def forget_gate_biases(self) -> list[tuple[Tensor, ...]]:
        """LSTM only: the forget slices of b_ih and b_hh, per layer and direction."""
        return [tuple(getattr(module, name + suffix)[module.hidden_size:2 * module.hidden_size]
                      for name in ("bias_ih", "bias_hh"))
                for module, suffix in self._layers() if isinstance(module, nn.LSTM)]

    def forward(self, inputs: SequenceBatch, state: Any = None) -> EncoderOutput:
        values, steps = _autocast(inputs.values), inputs.values.shape[1]
        state = None if state is None else _autocast(state)
        # packing needs the lengths on the host: one copy per batch (a device sync on a GPU),
        # and the all-real test then runs on the host copy, not as a second sync
        lengths = inputs.lengths.cpu()
        if bool((lengths == steps).all()):
            outputs, state = self._run(values, state)
        else:
            packed = pack_padded_sequence(values, lengths, batch_first=True, enforce_sorted=False)
            outputs, state = self._run(packed, state)
            outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=steps)
        hidden: Tensor = state[0] if isinstance(state, tuple) else state
        final = hidden.view(self.num_layers, self.directions, hidden.shape[1], -1)[-1].transpose(0, 1)
        return EncoderOutput(outputs, final, state)


def _autocast(values: Any) -> Any:
    """Under CPU autocast (trainer.precision=bf16-mixed), inputs and carried state in the autocast
    dtype: CPU autocast runs nn.LSTM in bfloat16 but leaves a float32 input (an embedding's) as it
    is, which oneDNN refuses. CUDA autocast casts for cuDNN itself; elsewhere nothing changes."""
    if isinstance(values, tuple):
        return tuple(_autocast(part) for part in values)
    if not values.is_floating_point() or values.is_cuda or not torch.is_autocast_enabled("cpu"):
        return values
    return values.to(torch.get_autocast_dtype("cpu"))


@dataclass
class StackOptions:
    """num_layers: stacked layers; dropout: between layers (not on the last layer's output), a
    fresh mask at every step (for one mask per sequence, see deep_rnn's `variational`)."""

    num_layers: Annotated[int, AtLeast(1)] = 1
    dropout: Annotated[float, Probability] = 0.0


class _Fused(Architecture):
    depth_option = "num_layers"
    module: type[nn.RNNBase]
    bidirectional = False
    Options = StackOptions

    def build(self, input_size: int, hidden_size: int, options: StackOptions) -> Encoder:
        extra = {"nonlinearity": "tanh"} if self.module is nn.RNN else {}

        def fused(layer_input: int, layers: int) -> nn.RNNBase:
            return self.module(layer_input, hidden_size, num_layers=layers, batch_first=True,
                               bidirectional=self.bidirectional, **extra)

        if options.dropout == 0.0 or options.num_layers == 1:
            return FusedEncoder(fused(input_size, options.num_layers))
        between = hidden_size * (2 if self.bidirectional else 1)
        return FusedEncoder(nn.ModuleList(fused(input_size if depth == 0 else between, 1)
                                          for depth in range(options.num_layers)), options.dropout)


@register_architecture("rnn")
class VanillaRNN(_Fused):
    """Elman tanh RNN (Elman 1990), fused."""

    capabilities = Capabilities(causal=True, structures=("sequence",), recurrent_matrices=True)
    module = nn.RNN


@register_architecture("gru")
class GRU(_Fused):
    """Gated recurrent unit (Cho et al. 2014), fused."""

    capabilities = Capabilities(causal=True, structures=("sequence",), recurrent_matrices=True)
    module = nn.GRU


@register_architecture("lstm")
class LSTM(_Fused):
    """LSTM with forget gate (Hochreiter & Schmidhuber 1997; Gers et al. 2000), fused."""

    capabilities = Capabilities(causal=True, structures=("sequence",), recurrent_matrices=True,
                                forget_gate=True)
    module = nn.LSTM


@register_architecture("bilstm")
class BiLSTM(_Fused):
    """Bidirectional LSTM (Graves & Schmidhuber 2005), fused; not causal."""

    capabilities = Capabilities(causal=False, structures=("sequence",), state_layout="bidirectional",
                                carries_state=False, recurrent_matrices=True, forget_gate=True)
    module = nn.LSTM
    bidirectional = True
