"""minGRU and minLSTM: gated recurrences whose gates read the input only (Feng, Tung, Ahmed,
Bengio & Hajimirsadeghi 2024, "Were RNNs all we needed?", sections 3.1.2 and 3.2.2).

minGRU:   z_t = sigmoid(W_z x_t + b_z),  h~_t = g(W_h x_t + b_h)
          h_t = (1 - z_t) * h_{t-1} + z_t * h~_t
minLSTM:  f_t = sigmoid(W_f x_t + b_f),  i_t = sigmoid(W_i x_t + b_i),  h~_t = g(W_h x_t + b_h)
          f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)
          h_t = f'_t * h_{t-1} + i'_t * h~_t

g(x) = x + 0.5 for x >= 0 and sigmoid(x) below (the paper's appendix B.3, its log-space version):
h~ > 0, so every h_t > 0. The coefficients are computed in log space as the paper does,
log(1 - z) = -softplus(k), log z = -softplus(-k) for k the gate's pre-activation, and for minLSTM
log f' = -softplus(d), log i' = -softplus(-d) with d = softplus(-k_f) - softplus(-k_i). The gates
never see h_{t-1}, so every step's gates are one matmul over the whole sequence. The paper then
scans in log space (Heinsen 2023) because its closed-form scan divides by cumulative products;
here the chunked `linear_scan` (products over one chunk at most, no division) is as stable in
linear space and, on a CPU, several times faster than `log_space_scan` (torch's logcumsumexp):
7.4 ms against 1.1 ms for (4, 1024, 64) on one thread. The two agree (tests/test_modern_architectures.py). `forward_recurrent` is the loop of the
equations above. The carried state is h at each item's last real step (h_0 = 0).

Initialisation: `nn.Linear`'s. Parameters: minGRU 2 (I H + H), minLSTM 3 (I H + H).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnbench import (Architecture, Capabilities, Encoder, EncoderOutput, SequenceBatch, freeze_padding,
                      linear_scan, log_space_scan, register_architecture, sequence_output)


def g(values: Tensor) -> Tensor:
    """x + 0.5 for x >= 0, sigmoid(x) below: positive and continuous (Feng et al. 2024)."""
    return torch.where(values >= 0, values + 0.5, torch.sigmoid(values))


def log_g(values: Tensor) -> Tensor:
    """log g(x), without taking the log of a sigmoid that underflowed."""
    return torch.where(values >= 0, torch.log(F.relu(values) + 0.5), -F.softplus(-values))


@dataclass
class MinRNNOptions:
    pass


class MinRNNEncoder(Encoder):
    """minGRU (`cell="gru"`) or minLSTM (`cell="lstm"`): one projection for every gate and step."""

    def __init__(self, input_size: int, hidden_size: int, cell: str) -> None:
        super().__init__()
        self.cell, self.output_size = cell, hidden_size
        gates = 2 if cell == "gru" else 3
        self.projection = nn.Linear(input_size, gates * hidden_size)   # [k_z | h] or [k_f | k_i | h]

    def _log_coefficients(self, inputs: SequenceBatch) -> tuple[Tensor, Tensor, Tensor]:
        """(log decay, log input weight, candidate pre-activation), each (B, T, H)."""
        real = inputs.mask().unsqueeze(-1)
        projected = self.projection(torch.where(real, inputs.values, 0.0))
        if self.cell == "gru":
            gate, candidate = projected.chunk(2, dim=-1)
            return -F.softplus(gate), -F.softplus(-gate), candidate
        forget, input_gate, candidate = projected.chunk(3, dim=-1)
        difference = F.softplus(-forget) - F.softplus(-input_gate)
        return -F.softplus(difference), -F.softplus(-difference), candidate

    def forward(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        log_decay, log_weight, candidate = self._log_coefficients(inputs)
        decays, driven = freeze_padding(log_decay.exp(), torch.exp(log_weight + log_g(candidate)), inputs.mask())
        return _output(linear_scan(decays, driven, state), inputs.lengths)

    def forward_log_space(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        """`forward` with the paper's log-space scan (`log_space_scan`), for comparison."""
        log_decay, log_weight, candidate = self._log_coefficients(inputs)
        real = inputs.mask().unsqueeze(-1)
        # a padded step keeps the state: decay 1 (log 0), nothing added (log 0 = -inf)
        log_decay = torch.where(real, log_decay, 0.0)
        log_input = torch.where(real, log_weight + log_g(candidate), float("-inf"))
        log_initial = None if state is None else torch.log(state)
        return _output(torch.exp(log_space_scan(log_decay, log_input, log_initial)), inputs.lengths)

    def forward_recurrent(self, inputs: SequenceBatch, state: Tensor | None = None) -> EncoderOutput:
        log_decay, log_weight, candidate = self._log_coefficients(inputs)
        decay, weight, value = log_decay.exp(), log_weight.exp(), g(candidate)
        mask = inputs.mask()
        h = decay.new_zeros(decay.shape[0], self.output_size) if state is None else state
        outputs = []
        for step_decay, step_weight, step_value, step_real in zip(decay.unbind(1), weight.unbind(1),
                                                                   value.unbind(1), mask.unbind(1)):
            h = torch.where(step_real.unsqueeze(-1), step_decay * h + step_weight * step_value, h)
            outputs.append(h)
        return _output(torch.stack(outputs, dim=1), inputs.lengths)


def _output(outputs: Tensor, lengths: Tensor) -> EncoderOutput:
    """Per-step h; the state is h after the last step, where padding left it."""
    return sequence_output(outputs, lengths, outputs[:, -1])


@register_architecture("mingru")
class MinGRU(Architecture):
    """minGRU (Feng et al. 2024): a GRU whose gates read only x_t, scanned in parallel."""

    capabilities = Capabilities(causal=True, structures=("sequence",), parallel_form=True)
    Options = MinRNNOptions

    def build(self, input_size: int, hidden_size: int, options: MinRNNOptions) -> Encoder:
        return MinRNNEncoder(input_size, hidden_size, "gru")


@register_architecture("minlstm")
class MinLSTM(Architecture):
    """minLSTM (Feng et al. 2024): normalised forget and input gates from x_t, scanned in parallel."""

    capabilities = Capabilities(causal=True, structures=("sequence",), parallel_form=True)
    Options = MinRNNOptions

    def build(self, input_size: int, hidden_size: int, options: MinRNNOptions) -> Encoder:
        return MinRNNEncoder(input_size, hidden_size, "lstm")
