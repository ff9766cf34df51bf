"""PixelRNN: Row LSTM and Diagonal BiLSTM layers over 2D grids, causal in raster order.

van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks", section 3:

- first layer: a k x k convolution with mask A (a pixel sees the pixels above it and to its
  left, not itself); all later masked convolutions use mask B (the position itself allowed: its
  features already exclude its own pixel). The paper's R/G/B sub-pixel ordering is not used: the
  backbone predicts a whole pixel from strictly earlier pixels, so mask A hides all its channels.
- Row LSTM (section 3.1), row by row from the top, with the input-to-state convolution of every
  row precomputed by one masked 1 x 3 convolution (taps j-1, j) and a 1D convolution of size 3
  over the previous row's state (each convolution computed as a matmul over the row's taps):
      [o, f, i, g] = sigma(K_ss * h_{i-1} + K_is * x_i)   (tanh for g)
      c_i = f . c_{i-1} + i . g,   h_i = o . tanh(c_i)
- Diagonal BiLSTM (section 3.2): the input map is skewed (row i shifted right by i), the
  input-to-state map is a 1 x 1 convolution of the skewed map (one matmul for all positions), and
  the recurrence runs column by column with a 2 x 1 state-to-state convolution over the previous
  column (rows i-1 and i: the pixels above and to the left), then the map is unskewed. The
  right-to-left direction runs on the mirrored image and its output map is shifted down one row
  before being added, so it never sees the current row's future pixels.
- residual connections (section 3.4): y_l = y_{l-1} + LSTM_l(y_{l-1}).

Encoder output: (B, O, H, W), where the output at (i, j) depends only on pixels strictly before
(i, j) in raster order, so a head can predict pixel (i, j) from it. `final` is the output at the
last position (H-1, W-1), which has seen every pixel but the last; no state is carried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnbench import (Architecture, AtLeast, BenchmarkError, Capabilities, Encoder,
                      EncoderOutput, GridBatch, NonNegative, Odd, register_architecture)

Variant = Literal["row_lstm", "diagonal_bilstm"]


@dataclass
class PixelRNNOptions:
    """variant: row_lstm or diagonal_bilstm. num_layers: recurrent layers after the first masked
    convolution. first_kernel: size k of the first k x k mask-A convolution (odd, at least 3)."""

    variant: Variant = "diagonal_bilstm"
    num_layers: Annotated[int, NonNegative] = 2
    first_kernel: Annotated[int, AtLeast(3), Odd] = 7


class MaskedConv2d(nn.Conv2d):
    """A same-padded convolution whose kernel sees the rows above the centre, and on the centre row
    the columns left of the centre, plus the centre itself for mask B (not for mask A)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int],
                 mask_type: Literal["A", "B"]) -> None:
        rows, columns = kernel_size
        super().__init__(in_channels, out_channels, kernel_size, padding=(rows // 2, columns // 2))
        mask = torch.zeros(rows, columns)
        mask[:rows // 2] = 1.0
        mask[rows // 2, :columns // 2 + (1 if mask_type == "B" else 0)] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, inputs: Tensor) -> Tensor:
        return F.conv2d(inputs, self.weight * self.mask, self.bias, padding=self.padding)


def _lstm_update(gates: Tensor, memory: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """[o, f, i, g] along `dim` -> (hidden, memory)."""
    output_gate, forget_gate, input_gate, candidate = gates.chunk(4, dim=dim)
    memory = torch.sigmoid(forget_gate) * memory + torch.sigmoid(input_gate) * torch.tanh(candidate)
    return torch.sigmoid(output_gate) * torch.tanh(memory), memory


def row_taps(rows: Tensor) -> Tensor:
    """(..., W, C) -> (..., W, 3C): each position's [x_{j-1}; x_j; x_{j+1}] (zero past the edges),
    so that a width-3 convolution along the row is one matmul with `tap_matrix` of its kernel."""
    padded = F.pad(rows, (0, 0, 1, 1))
    return torch.cat([padded[..., :-2, :], rows, padded[..., 2:, :]], dim=-1)


def tap_matrix(kernel: Tensor) -> Tensor:
    """A width-3 convolution kernel (out, in, 3) as the (3 in, out) matrix that `row_taps` meets."""
    return kernel.permute(2, 1, 0).flatten(0, 1)


class RowLSTM(nn.Module):
    """One Row LSTM layer, (B, hidden, H, W) -> (B, hidden, H, W). Works channels-last inside, with
    each width-3 convolution as one matmul over `row_taps`: the input-to-state one for every row at
    once, the state-to-state one per row (convolution calls per row took over a third of the
    layer's training step in the profiler at 16 x 16 images, hidden 32)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.input_to_state = MaskedConv2d(hidden_size, 4 * hidden_size, (1, 3), "B")
        self.state_to_state = nn.Conv1d(hidden_size, 4 * hidden_size, 3, padding=1, bias=False)

    def forward(self, inputs: Tensor) -> Tensor:
        batch, channels, height, width = inputs.shape
        masked = (self.input_to_state.weight * self.input_to_state.mask)[:, :, 0]     # (4h, h, 3)
        features = row_taps(inputs.permute(0, 2, 3, 1)).transpose(0, 1)           # (H, B, W, 3h)
        input_gates = torch.addmm(self.input_to_state.bias, features.reshape(-1, 3 * channels),
                                  tap_matrix(masked)).view(height, batch * width, 4 * channels)
        kernel = tap_matrix(self.state_to_state.weight)
        hidden = memory = inputs.new_zeros(batch, width, channels)
        rows = []
        for row_gates in input_gates.unbind(0):  # unbind: one gradient buffer, not one per row
            gates = torch.addmm(row_gates, row_taps(hidden).view(batch * width, -1), kernel)
            hidden, memory = _lstm_update(gates.view(batch, width, -1), memory, dim=-1)
            rows.append(hidden)
        return torch.stack(rows, dim=1).permute(0, 3, 1, 2)


def skew(grid: Tensor) -> Tensor:
    """(..., H, W, F) -> (..., H, W + H - 1, F): row i shifted right by i, zeros elsewhere."""
    height, width = grid.shape[-3:-1]
    flat = F.pad(grid, (0, 0, 0, height)).flatten(-3, -2)[..., :height * (width + height - 1), :]
    return flat.unflatten(-2, (height, width + height - 1))


def unskew(grid: Tensor, width: int) -> Tensor:
    """Inverse of `skew`: (..., H, W + H - 1, F) -> (..., H, W, F)."""
    height = grid.shape[-3]
    flat = F.pad(grid.flatten(-3, -2), (0, 0, 0, height))
    return flat.unflatten(-2, (height, width + height))[..., :width, :]


class DiagonalBiLSTM(nn.Module):
    """One Diagonal BiLSTM layer, (B, hidden, H, W) -> (B, hidden, H, W); both directions run in
    the same column loop with one batched matmul per column. Works channels-last inside, so that
    skewing and the per-column slices copy contiguous feature rows."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.input_to_state = nn.Linear(hidden_size, 2 * 4 * hidden_size)  # 1 x 1 conv, both directions
        # per direction, the 2 x 1 kernel: [row i-1; row i] of the previous column -> 4 gates
        self.state_to_state = nn.Parameter(torch.empty(2, 2 * hidden_size, 4 * hidden_size))
        nn.init.uniform_(self.state_to_state, -hidden_size ** -0.5, hidden_size ** -0.5)

    def forward(self, inputs: Tensor) -> Tensor:
        batch, channels, height, width = inputs.shape
        size = self.hidden_size
        # skew first, then the 1 x 1 convolution (as the paper orders them): skewing the input map
        # moves C channels a position where skewing the projected gates moved 8h. A constant-1
        # channel carries the bias, so the skew's zero padding stays zero after the projection.
        features = inputs.permute(0, 2, 3, 1)                                     # (B, H, W, C)
        features = F.pad(torch.stack([features, features.flip(2)]), (0, 1), value=1.0)  # mirror right-to-left
        skewed = skew(features).permute(0, 3, 1, 2, 4).reshape(2, -1, channels + 1)   # (2, W'BH, C+1)
        weight = torch.cat([self.input_to_state.weight, self.input_to_state.bias.unsqueeze(1)], dim=1)
        weight = weight.view(2, 4 * size, channels + 1).transpose(1, 2)                # per direction
        columns = torch.bmm(skewed, weight).view(2, -1, batch * height, 4 * size)      # (2, W', BH, 4h)
        hidden = memory = inputs.new_zeros(2, batch, height, size)
        outputs = []
        for column in columns.unbind(1):  # unbind: one gradient buffer, not one per column
            above = F.pad(hidden, (0, 0, 1, 0))[:, :, :height]               # row i gets row i-1
            previous = torch.cat([above, hidden], dim=-1).view(2, batch * height, 2 * size)
            gates = torch.baddbmm(column, previous, self.state_to_state).view(2, batch, height, 4 * size)
            hidden, memory = _lstm_update(gates, memory, dim=-1)
            outputs.append(hidden)
        states = unskew(torch.stack(outputs, dim=3), width)                  # (2, B, H, W, h)
        backward = F.pad(states[1].flip(2), (0, 0, 0, 0, 1, 0))[:, :height]  # shifted down one row
        return (states[0] + backward).permute(0, 3, 1, 2)


class PixelRNNEncoder(Encoder):
    def __init__(self, channels: int, hidden_size: int, options: PixelRNNOptions) -> None:
        super().__init__()
        kernel = options.first_kernel
        self.input_conv = MaskedConv2d(channels, hidden_size, (kernel, kernel), "A")
        layer = RowLSTM if options.variant == "row_lstm" else DiagonalBiLSTM
        self.layers = nn.ModuleList(layer(hidden_size) for _ in range(options.num_layers))
        self.output_size = hidden_size

    def forward(self, inputs: GridBatch, state: None = None) -> EncoderOutput:
        if not isinstance(inputs, GridBatch) or inputs.values.dim() != 4:
            raise BenchmarkError("PixelRNN reads (B, C, H, W) grids: use it on a grid task")
        features = self.input_conv(inputs.values)
        for layer in self.layers:
            features = features + layer(features)
        final = features[:, :, -1, -1].unsqueeze(1)
        return EncoderOutput(features, final, None)


@register_architecture("pixelrnn")
class PixelRNN(Architecture):
    """PixelRNN (Row LSTM or Diagonal BiLSTM) with masked convolutions and residual layers."""
    depth_option = "num_layers"

    capabilities = Capabilities(causal=True, structures=("grid",), carries_state=False)
    Options = PixelRNNOptions

    def build(self, input_size: int, hidden_size: int, options: PixelRNNOptions) -> Encoder:
        if options.first_kernel < 3 or options.first_kernel % 2 == 0:
            raise BenchmarkError(f"arch.first_kernel must be an odd size of at least 3 (a 1 x 1 mask-A "
                                 f"convolution sees no pixel), got {options.first_kernel}")
        if options.num_layers < 0:
            raise BenchmarkError(f"arch.num_layers must be non-negative, got {options.num_layers}")
        return PixelRNNEncoder(input_size, hidden_size, options)
