"""Image density modelling on binarized Fashion-MNIST, in nats per image and bits per dimension.

van den Oord, Kalchbrenner & Kavukcuoglu (2016), "Pixel Recurrent Neural Networks": the joint
distribution of an image's pixels factorises in raster order, p(x) = prod_i p(x_i | x_<i), each
factor a Bernoulli whose logit a causal grid encoder computes at pixel i from the pixels before
it (`rnnbench.toolkit.heads.PerPixelBernoulli`). The metric is the test negative log-likelihood in nats per
image (`nll`), as the field reports for binarized MNIST, and in bits per dimension
(`bits_per_dim` = nll / (784 ln 2)).

Binarization: `threshold` (default) sets a pixel to 1 where its intensity exceeds half of the
range, once and for all; `dynamic` draws every pixel from Bernoulli(intensity) afresh on every
training pass (Salakhutdinov & Murray 2008) and once, with a fixed seed, for validation and test.
Validation images are held out of the training set as in `tasks.pixels`.

`rnnbench sample` draws images pixel by pixel from a trained model (`ImageDensity.sample`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnbench import (AtLeast, Baseline, Batch, BenchmarkError, GridBatch, IndexBatches, InputSpec,
                      PerPixelBernoulli, Reference, Requirements, Splits, Task, register_task)
from rnnbench.toolkit.datasets import read_fashion_mnist
from rnnbench.tasks.pixels import hold_out

if TYPE_CHECKING:
    from torchmetrics import MetricCollection

THRESHOLD = 0.5            # of the intensity range, for the fixed binarization
EVALUATION_DRAW_SEED = 7   # the one dynamic draw of the validation and test images


@dataclass
class DensityOptions:
    """binarization: threshold or dynamic (see the module docstring); train_size: only the first
    N training images (None: all); val_size: held out of the training set; test_size: only the
    first N test images (None: all 10,000)."""

    binarization: Literal["threshold", "dynamic"] = "threshold"
    train_size: Annotated[int, AtLeast(1)] | None = None
    val_size: Annotated[int, AtLeast(1)] = 2_000
    test_size: Annotated[int, AtLeast(1)] | None = None


@register_task("binarized_fmnist")
class ImageDensity(Task):
    item_unit = "images"
    requirements = Requirements(structure="grid", causal=True)
    draws_images = True
    head_kind = "generation"
    primary_metric = "nll"
    direction = "min"
    Options = DensityOptions
    defaults = {"optim.optimizer": "adam", "optim.lr": 1e-3, "optim.clip_norm": 1.0,
                "arch.hidden_size": 32, "trainer.batch_size": 32, "trainer.max_steps": 2_000,
                "trainer.val_every_steps": 250, "trainer.patience": 4}
    presets = {"quick": {"task.train_size": 1_000, "task.val_size": 200, "task.test_size": 200,
                         "trainer.max_steps": 50, "trainer.val_every_steps": 25,
                         "arch.hidden_size": 16}}

    def input_spec(self) -> InputSpec:
        return InputSpec(features=1)

    def intensities(self, split: str) -> Tensor:
        """(N, 1, 28, 28) grey levels in [0, 1] of 'train', 'val' or 'test'."""
        options = self.options
        if split == "test":
            images = torch.from_numpy(read_fashion_mnist("t10k")[0])
            images = images[:options.test_size]
        else:
            images = torch.from_numpy(read_fashion_mnist("train")[0])
            kept, held = hold_out(images.shape[0], options.val_size)
            images = images[held if split == "val" else kept[:options.train_size]]
        if images.shape[0] == 0:
            raise BenchmarkError(f"binarized_fmnist: the {split} split is empty; raise task.{split}_size")
        return images.float().div(255.0).unsqueeze(1)

    def binarize(self, intensities: Tensor, generator: torch.Generator) -> Tensor:
        if self.options.binarization == "threshold":
            return (intensities > THRESHOLD).float()
        return torch.bernoulli(intensities, generator=generator)

    def splits(self, batch_size: int, seed: int) -> Splits:
        def fixed(split: str) -> IndexBatches:
            images = self.binarize(self.intensities(split),
                                   torch.Generator().manual_seed(EVALUATION_DRAW_SEED))
            return IndexBatches(images.shape[0], batch_size, _as_batch(images))

        intensities = self.intensities("train")
        # with dynamic binarization every pass draws new binary images (from the seed and the pass)
        train = IndexBatches(intensities.shape[0], batch_size, shuffle=True, seed=seed,
                             draw=lambda generator: _as_batch(self.binarize(intensities, generator)))
        return Splits(train=train, val=fixed("val"), test=fixed("test"))

    def build_head(self, encoder_output_size, embedding, decoder=None):
        return PerPixelBernoulli(encoder_output_size, channels=1)

    def baselines(self, splits: Splits) -> tuple[Baseline, ...]:
        """Independent pixels: each pixel's probability of being on, from the training images'
        intensities (what binarization draws from), clipped away from 0 and 1."""
        on = self.intensities("train").mean(0).clamp(1e-3, 1 - 1e-3)     # (1, 28, 28)
        logits = torch.log(on) - torch.log1p(-on)
        return (Baseline("independent_pixels", lambda batch: logits.expand_as(batch.targets)),)

    def metrics(self) -> MetricCollection:
        from torchmetrics import MetricCollection

        from rnnbench.toolkit.metrics import BernoulliNLL

        return MetricCollection({"nll": BernoulliNLL("image"), "bits_per_dim": BernoulliNLL("dimension")})

    def references(self) -> tuple[Reference, ...]:
        note = "binarized MNIST digits, not Fashion-MNIST; trained far longer than our CPU budget"
        return (Reference("Diagonal BiLSTM, 7 layers, h=16", 79.20, "van den Oord et al. 2016", note),
                Reference("DRAW (upper bound)", 80.97, "van den Oord et al. 2016", note),
                Reference("independent pixels (training-set marginals)", self.independent_pixels_nll(),
                          "computed here", "a model that ignores every other pixel"))

    def independent_pixels_nll(self) -> float:
        """Test NLL (nats per image) of the best model without context: each pixel Bernoulli with
        its mean over the (binarized) training images."""
        generator = torch.Generator().manual_seed(EVALUATION_DRAW_SEED)
        train = self.binarize(self.intensities("train"), generator)
        test = self.binarize(self.intensities("test"), generator)
        marginal = train.mean(dim=0, keepdim=True).clamp(1e-4, 1 - 1e-4)
        nats = F.binary_cross_entropy(marginal.expand_as(test), test, reduction="sum")
        return float(nats) / test.shape[0]

    @torch.no_grad()
    def sample(self, model: nn.Module, count: int, generator: torch.Generator) -> Tensor:
        """(count, 1, 28, 28) binary images drawn in raster order, x_i ~ p(x_i | x_<i): one
        forward pass of the whole canvas per pixel, which any causal grid encoder allows."""
        device = next(model.parameters()).device
        canvas = torch.zeros(count, 1, 28, 28, device=device)
        for row in range(canvas.shape[2]):
            for column in range(canvas.shape[3]):
                encoded = model.encoder(GridBatch(canvas), None)
                logits = model.head.predict(encoded.outputs)[:, :, row, column]
                uniform = torch.rand(logits.shape, generator=generator).to(device)
                canvas[:, :, row, column] = (uniform < torch.sigmoid(logits)).float()
        return canvas


def _as_batch(images: Tensor):
    return lambda index: Batch(GridBatch(images[index]), images[index])
