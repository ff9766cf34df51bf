"""PixelRNN: masks, skewing, receptive fields, what `final` holds, the layers against the paper's
convolutions written out directly, and the conformance kit's raster causality check catching a
broken mask."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rnnbench.plugins.pixel_rnn import (DiagonalBiLSTM, MaskedConv2d, PixelRNN, PixelRNNOptions, RowLSTM,
                                        skew, unskew)
from rnnbench.conformance.kit import ConformanceError, check_architecture
from rnnbench.core.contracts import GridBatch
from rnnbench.core.errors import BenchmarkError


def test_masks_a_and_b() -> None:
    mask_a = MaskedConv2d(1, 1, (3, 3), "A").mask
    mask_b = MaskedConv2d(1, 1, (3, 3), "B").mask
    torch.testing.assert_close(mask_a, torch.tensor([[1., 1., 1.], [1., 0., 0.], [0., 0., 0.]]))
    torch.testing.assert_close(mask_b, torch.tensor([[1., 1., 1.], [1., 1., 0.], [0., 0., 0.]]))
    torch.testing.assert_close(MaskedConv2d(1, 1, (1, 3), "B").mask, torch.tensor([[1., 1., 0.]]))


def test_skew_shifts_row_i_right_by_i_and_unskew_inverts_it() -> None:
    grid = torch.arange(1.0, 25.0).view(1, 3, 4, 2)  # (B, H, W, F), channels last
    skewed = skew(grid)
    assert skewed.shape == (1, 3, 6, 2)
    for row in range(3):
        torch.testing.assert_close(skewed[0, row, row:row + 4], grid[0, row])
        assert skewed[0, row, :row].abs().sum() == 0 and skewed[0, row, row + 4:].abs().sum() == 0
    torch.testing.assert_close(unskew(skewed, 4), grid)


def _lstm(gates: torch.Tensor, memory: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    output_gate, forget_gate, input_gate, candidate = gates.chunk(4, dim=dim)
    memory = forget_gate.sigmoid() * memory + input_gate.sigmoid() * candidate.tanh()
    return output_gate.sigmoid() * memory.tanh(), memory


def _row_lstm_by_convolutions(layer: RowLSTM, inputs: torch.Tensor) -> torch.Tensor:
    """Section 3.1 as written: the masked 1 x 3 convolution over the map, a size-3 convolution
    over the previous row's state."""
    input_gates = layer.input_to_state(inputs)
    hidden = memory = inputs.new_zeros(inputs.shape[0], inputs.shape[1], inputs.shape[3])
    rows = []
    for row in range(inputs.shape[2]):
        hidden, memory = _lstm(input_gates[:, :, row] + layer.state_to_state(hidden), memory, dim=1)
        rows.append(hidden)
    return torch.stack(rows, dim=2)


def _diagonal_bilstm_by_convolutions(layer: DiagonalBiLSTM, inputs: torch.Tensor) -> torch.Tensor:
    """Section 3.2 as written, one direction at a time: a 1 x 1 convolution, skewed (the padding
    zero), a 2 x 1 convolution down each column over the previous column's state, unskew; the
    right-to-left direction on the mirrored map, shifted down a row."""
    size, height, width = layer.hidden_size, inputs.shape[2], inputs.shape[3]
    weights = layer.input_to_state.weight.chunk(2)
    biases = layer.input_to_state.bias.chunk(2)
    maps = []
    for direction, image in enumerate((inputs, inputs.flip(3))):
        projected = F.conv2d(image, weights[direction][:, :, None, None], biases[direction])
        input_gates = skew(projected.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, 4h, H, W')
        kernel = layer.state_to_state[direction].view(2, size, 4 * size).permute(2, 1, 0)[..., None]
        hidden = memory = inputs.new_zeros(inputs.shape[0], size, height)
        columns = []
        for column in range(input_gates.shape[3]):
            recurrent = F.conv2d(F.pad(hidden, (1, 0))[..., None], kernel)[..., 0]  # rows i-1, i
            hidden, memory = _lstm(input_gates[..., column] + recurrent, memory, dim=1)
            columns.append(hidden)
        maps.append(unskew(torch.stack(columns, dim=3).permute(0, 2, 3, 1), width).permute(0, 3, 1, 2))
    return maps[0] + F.pad(maps[1].flip(3), (0, 0, 1, 0))[:, :, :height]


@pytest.mark.parametrize("layer_type, reference", [(RowLSTM, _row_lstm_by_convolutions),
                                                   (DiagonalBiLSTM, _diagonal_bilstm_by_convolutions)])
def test_layers_compute_the_papers_convolutions(layer_type, reference) -> None:
    """The layers compute their convolutions as matmuls over taps and skewed maps; the outputs and
    the gradients equal those of the convolutions written out directly."""
    torch.manual_seed(0)
    layer = layer_type(6)
    inputs = torch.randn(3, 6, 5, 7, requires_grad=True)
    fast, = torch.autograd.grad(layer(inputs).square().sum(), inputs)
    slow, = torch.autograd.grad(reference(layer, inputs).square().sum(), inputs)
    torch.testing.assert_close(layer(inputs), reference(layer, inputs))
    torch.testing.assert_close(fast, slow)


class _BrokenFirstMask(PixelRNN):
    """The first layer's convolution sees the pixel it must predict (mask B instead of A)."""

    def build(self, input_size, hidden_size, options):
        encoder = super().build(input_size, hidden_size, options)
        encoder.input_conv.mask[encoder.input_conv.mask.shape[0] // 2, encoder.input_conv.mask.shape[1] // 2] = 1.0
        return encoder


class _BrokenRowMask(PixelRNN):
    """The Row LSTM's input-to-state convolution sees the next column (j + 1) of its row."""

    def build(self, input_size, hidden_size, options):
        encoder = super().build(input_size, hidden_size, options)
        encoder.layers[0].input_to_state.mask.fill_(1.0)
        return encoder


@pytest.mark.parametrize("variant", ["row_lstm", "diagonal_bilstm"])
def test_raster_causality_catches_a_first_layer_mask_that_sees_the_current_pixel(variant: str) -> None:
    options = PixelRNNOptions(variant=variant)
    check_architecture(PixelRNN, options)  # the real masks pass
    with pytest.raises(ConformanceError, match="raster_causality.*changes the output at that pixel"):
        check_architecture(_BrokenFirstMask, options)


def test_raster_causality_catches_a_row_mask_that_sees_the_next_column() -> None:
    with pytest.raises(ConformanceError, match="raster_causality"):
        check_architecture(_BrokenRowMask, PixelRNNOptions(variant="row_lstm"))


def _dependence(variant: str, height: int = 6, width: int = 6) -> torch.Tensor:
    """(H, W) bool: which input pixels the output at the last position depends on."""
    torch.manual_seed(0)
    encoder = PixelRNN().build(1, 4, PixelRNNOptions(variant=variant, num_layers=1, first_kernel=3))
    values = torch.rand(1, 1, height, width, requires_grad=True)
    encoder(GridBatch(values)).outputs[..., -1, -1].sum().backward()
    return values.grad[0, 0].abs() > 0


def test_diagonal_bilstm_sees_every_earlier_pixel() -> None:
    """The Diagonal BiLSTM's receptive field is the whole context above and to the left."""
    seen = _dependence("diagonal_bilstm").flatten()
    assert seen[:-1].all(), "some earlier pixel is out of reach"
    assert not seen[-1]


def test_row_lstm_has_the_triangular_receptive_field_of_the_paper() -> None:
    """One layer after a 3 x 3 mask-A convolution: two pixels to the left in its own row, widening
    by one column per row upwards (van den Oord et al. 2016, figure 4), nothing at or after it."""
    rows, columns = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    expected = columns >= rows - 2
    expected[-1, -1] = False
    assert torch.equal(_dependence("row_lstm"), expected)


def test_a_pixel_changes_exactly_the_outputs_after_it_in_raster_order() -> None:
    """Diagonal BiLSTM: changing pixel (1, 1) changes every output after it in raster order (its
    right neighbour, the rest of its row, every later row) and none at or before it."""
    torch.manual_seed(0)
    encoder = PixelRNN().build(1, 4, PixelRNNOptions(num_layers=1, first_kernel=3)).eval()
    base = torch.rand(1, 1, 4, 5)
    with torch.no_grad():
        reference = encoder(GridBatch(base)).outputs
        changed = base.clone()
        changed[..., 1, 1] += 1.0
        outputs = encoder(GridBatch(changed)).outputs
    moved = (outputs - reference).abs().sum(dim=(0, 1)) > 1e-6
    after = torch.arange(4 * 5).view(4, 5) > 1 * 5 + 1
    assert torch.equal(moved, after)


@pytest.mark.parametrize("variant", ["row_lstm", "diagonal_bilstm"])
def test_final_summarises_the_image_through_every_layer(variant: str) -> None:
    """`final` (B, 1, O) is the last layer's output at the last position: it depends on every
    pixel of its image but the last, which a state taken at another position, or before the
    recurrent layers (a 3 x 3 mask-A convolution sees four pixels), would not."""
    torch.manual_seed(0)
    encoder = PixelRNN().build(2, 4, PixelRNNOptions(variant=variant, num_layers=2, first_kernel=3))
    values = torch.rand(3, 2, 5, 4, requires_grad=True)
    out = encoder(GridBatch(values))
    assert out.outputs.shape == (3, 4, 5, 4) and out.final.shape == (3, 1, 4)
    out.final[1].sum().backward()
    seen = values.grad.abs().sum(dim=1) > 0                       # (B, H, W)
    assert not seen[[0, 2]].any()                                 # only its own image
    assert not seen[1, -1, -1]                                    # not the last pixel itself
    # two layers of either variant reach every earlier pixel of a 5 x 4 image (the Row LSTM's
    # triangle widens by a column per row upwards, and again per layer)
    assert seen[1].flatten()[:-1].all()


@pytest.mark.parametrize("options, message", [
    (PixelRNNOptions(first_kernel=1), "first_kernel"),
    (PixelRNNOptions(first_kernel=4), "first_kernel"),
    (PixelRNNOptions(num_layers=-1), "num_layers"),
])
def test_bad_options_raise(options: PixelRNNOptions, message: str) -> None:
    with pytest.raises(BenchmarkError, match=message):
        PixelRNN().build(1, 4, options)


def test_sequence_input_raises() -> None:
    from rnnbench.core.contracts import SequenceBatch
    encoder = PixelRNN().build(1, 4, PixelRNNOptions())
    with pytest.raises(BenchmarkError, match="grid"):
        encoder(SequenceBatch(torch.zeros(2, 3, 1), torch.tensor([3, 3])))
