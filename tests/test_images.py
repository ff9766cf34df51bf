import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.core import registry
from rnnbench.cli import main
from rnnbench.core.contracts import (Architecture, Batch, Capabilities, Encoder, EncoderOutput, GridBatch,
                             SequenceBatch)
from rnnbench.conformance.kit import conformance_checks
from rnnbench.core.errors import BenchmarkError
from rnnbench.toolkit.heads import PerPixelBernoulli
from rnnbench.training.model import BenchmarkModel
from rnnbench.training.runner import run
from rnnbench.store import ResultStore
from rnnbench.toolkit.metrics import BernoulliNLL
from rnnbench.tasks.images import THRESHOLD, ImageDensity

TINY = {"task.train_size": "256", "task.val_size": "64", "task.test_size": "64",
        "trainer.batch_size": "32", "trainer.max_steps": "40", "trainer.val_every_steps": "40",
        "arch.hidden_size": "8", "optim.lr": "0.01"}


class MaskedConvolution(Encoder):
    """One 5x5 convolution with PixelCNN's mask A: the output at (i, j) sees the rows above and
    the pixels to the left on row i, never (i, j) itself. A test stand-in for a causal grid
    encoder, not an architecture of the suite."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, hidden, 5, padding=2)
        mask = torch.ones(5, 5)
        mask[2, 2:] = 0
        mask[3:] = 0
        self.register_buffer("mask", mask)
        self.output_size = hidden

    def forward(self, inputs: GridBatch, state=None) -> EncoderOutput:
        outputs = torch.relu(F.conv2d(inputs.values, self.conv.weight * self.mask, self.conv.bias,
                                      padding=2))
        return EncoderOutput(outputs, outputs[:, :, -1, -1].unsqueeze(1), None)


@registry.register_architecture("test-masked-conv")
class MaskedConvolutionArchitecture(Architecture):
    capabilities = Capabilities(causal=True, structures=("grid",), carries_state=False)

    def build(self, input_size, hidden_size, options):
        return MaskedConvolution(input_size, hidden_size)


def _task(**settings) -> ImageDensity:
    return ImageDensity(ImageDensity.Options(**settings))


def test_the_stand_in_encoder_is_causal_in_raster_order():
    # one 5x5 convolution does not reach the first pixel from the last: skip that check only
    checks = {check.name: check for check in conformance_checks(MaskedConvolutionArchitecture)}
    for name in ("grid:shapes", "grid:raster_causality", "grid:determinism"):
        checks[name].run()


@pytest.mark.data("fashion_mnist")
def test_threshold_binarization_is_fixed_and_the_targets_are_the_image():
    task = _task(train_size=64, val_size=16, test_size=16)
    batch = next(iter(task.splits(8, seed=0).test))
    intensities = task.intensities("test")[:8]
    assert torch.equal(batch.inputs.values, (intensities > THRESHOLD).float())
    assert torch.equal(batch.targets, batch.inputs.values)
    assert batch.inputs.values.shape == (8, 1, 28, 28)


@pytest.mark.data("fashion_mnist")
def test_dynamic_binarization_draws_anew_every_pass_but_evaluates_one_fixed_draw():
    task = _task(binarization="dynamic", train_size=64, val_size=16, test_size=16)
    splits = task.splits(64, seed=0)
    first, second = next(iter(splits.train)), next(iter(splits.train))
    assert not torch.equal(first.inputs.values.sum(0), second.inputs.values.sum(0))
    again = _task(binarization="dynamic", train_size=64, val_size=16, test_size=16).splits(64, seed=0)
    assert torch.equal(next(iter(again.train)).inputs.values, first.inputs.values)
    test_a = next(iter(splits.test)).inputs.values
    test_b = next(iter(_task(binarization="dynamic", test_size=16).splits(64, seed=5).test)).inputs.values
    assert torch.equal(test_a, test_b)
    assert set(test_a.unique().tolist()) <= {0.0, 1.0}
    # the draw is Bernoulli(intensity): its mean follows the grey levels
    mean_intensity = task.intensities("test").mean().item()
    assert abs(test_a.mean().item() - mean_intensity) < 0.02


def test_the_nll_metric_gives_784_ln2_nats_and_one_bit_per_dimension_for_a_coin():
    logits = torch.zeros(3, 1, 28, 28)
    targets = torch.bernoulli(torch.full((3, 1, 28, 28), 0.5))
    nats, bits = BernoulliNLL("image"), BernoulliNLL("dimension")
    nats.update(logits, targets)
    bits.update(logits, targets)
    assert nats.compute().item() == pytest.approx(784 * math.log(2))
    assert bits.compute().item() == pytest.approx(1.0)


def test_the_head_needs_per_pixel_outputs():
    head = PerPixelBernoulli(4)
    encoded = EncoderOutput(torch.zeros(2, 5, 4), torch.zeros(2, 1, 4), None)
    batch = Batch(SequenceBatch(torch.zeros(2, 5, 1), torch.full((2,), 5)), torch.zeros(2, 5))
    with pytest.raises(BenchmarkError, match="per-pixel"):
        head(encoded, batch)


@pytest.mark.data("fashion_mnist")
def test_a_tiny_causal_model_beats_independent_pixels(tmp_path):
    store = tmp_path / "r.sqlite"
    result = run("test-masked-conv", "binarized_fmnist", TINY, store=store, progress=False, check=False)
    references = ResultStore(store).runs_frame().task_info.iloc[0]["references"]
    independent = next(ref["value"] for ref in references if ref["model"].startswith("independent"))
    assert result.metrics["test/nll"] < independent
    assert result.metrics["test/bits_per_dim"] == pytest.approx(
        result.metrics["test/nll"] / (784 * math.log(2)), rel=1e-4)
    assert result.metrics["test/loss"] == pytest.approx(result.metrics["test/nll"], rel=1e-4)


class LeftNeighbour(Encoder):
    """Output at (i, j) = pixel (i, j - 1), and 1 in the first column: causal. A model whose
    logits follow it draws all-ones images only if every drawn pixel is fed back."""

    output_size = 1

    def forward(self, inputs: GridBatch, state=None) -> EncoderOutput:
        shifted = F.pad(inputs.values, (1, 0), value=1.0)[..., :-1]
        return EncoderOutput(shifted, shifted[:, :, -1, -1].unsqueeze(1), None)


def test_sampling_draws_pixels_in_raster_order_from_what_was_drawn():
    head = PerPixelBernoulli(1)
    with torch.no_grad():
        head.logits.weight.fill_(40.0)
        head.logits.bias.fill_(-20.0)
    model = BenchmarkModel(None, LeftNeighbour(), head)
    images = _task().sample(model, 2, torch.Generator().manual_seed(0))
    assert images.shape == (2, 1, 28, 28)
    assert torch.equal(images, torch.ones_like(images))


@pytest.mark.data("fashion_mnist")
def test_rnnbench_sample_writes_a_png_grid_of_a_trained_run(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    settings = {**TINY, "trainer.max_steps": "4", "trainer.val_every_steps": "4"}
    result = run("test-masked-conv", "binarized_fmnist", settings, store=store, progress=False, check=False)
    output = tmp_path / "grid.png"
    assert main(["sample", result.run_id, "--store", str(store), "--count", "4",
                 "--output", str(output)]) == 0
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread
    picture = imread(output)
    tile = 28 * 4 + 1                                    # pixels drawn 4 x 4, a 1-pixel gap
    assert picture.shape[:2] == (1 + tile, 1 + 8 * tile)  # 4 images on one row of 8 tiles
    assert "written to" in capsys.readouterr().out


def test_sampling_a_task_that_does_not_generate_is_refused():
    from rnnbench.tasks.probes import Copy

    with pytest.raises(BenchmarkError, match="does not draw samples"):
        Copy(Copy.Options()).sample(nn.Linear(1, 1), 2, torch.Generator())
