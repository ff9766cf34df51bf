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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from suite.contracts import Architecture, Capabilities, Encoder, EncoderOutput, SequenceBatch
from suite.registry import register_architecture


class FusedEncoder(Encoder):
    """Wraps nn.RNN / nn.GRU / nn.LSTM (batch first) in the encoder contract."""

    def __init__(self, module: nn.RNNBase) -> None:
        super().__init__()
        self.rnn = module
        self.directions = 2 if module.bidirectional else 1
        self.output_size = module.hidden_size * self.directions

    def forward(self, inputs: SequenceBatch, state: Any = None) -> EncoderOutput:
        values, lengths = inputs.values, inputs.lengths
        steps = values.shape[1]
        if bool((lengths == steps).all()):
            outputs, state = self.rnn(values, state)
        else:
            packed = pack_padded_sequence(values, lengths.cpu(), batch_first=True, enforce_sorted=False)
            outputs, state = self.rnn(packed, state)
            outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=steps)
        hidden: Tensor = state[0] if isinstance(state, tuple) else state
        layers = self.rnn.num_layers
        final = hidden.view(layers, self.directions, hidden.shape[1], -1)[-1].transpose(0, 1)
        return EncoderOutput(outputs, final, state)


@dataclass
class StackOptions:
    """num_layers: stacked layers; dropout: between layers (not on the last layer's output)."""

    num_layers: int = 1
    dropout: float = 0.0


class _Fused(Architecture):
    module: type[nn.RNNBase]
    bidirectional = False
    Options = StackOptions

    def build(self, input_size: int, hidden_size: int, options: StackOptions) -> Encoder:
        extra = {"nonlinearity": "tanh"} if self.module is nn.RNN else {}
        module = self.module(input_size, hidden_size, num_layers=options.num_layers,
                             dropout=options.dropout if options.num_layers > 1 else 0.0,
                             batch_first=True, bidirectional=self.bidirectional, **extra)
        return FusedEncoder(module)


@register_architecture("rnn")
class VanillaRNN(_Fused):
    """Elman tanh RNN (Elman 1990), fused."""

    capabilities = Capabilities(causal=True, structures=("sequence",))
    module = nn.RNN


@register_architecture("gru")
class GRU(_Fused):
    """Gated recurrent unit (Cho et al. 2014), fused."""

    capabilities = Capabilities(causal=True, structures=("sequence",))
    module = nn.GRU


@register_architecture("lstm")
class LSTM(_Fused):
    """LSTM with forget gate (Hochreiter & Schmidhuber 1997; Gers et al. 2000), fused."""

    capabilities = Capabilities(causal=True, structures=("sequence",))
    module = nn.LSTM


@register_architecture("bilstm")
class BiLSTM(_Fused):
    """Bidirectional LSTM (Graves & Schmidhuber 2005), fused; not causal."""

    capabilities = Capabilities(causal=False, structures=("sequence",), state_layout="bidirectional",
                                carries_state=False)
    module = nn.LSTM
    bidirectional = True
