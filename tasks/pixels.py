"""Pixel-by-pixel image classification: sequential and permuted Fashion-MNIST, sequential 8x8 digits.

Le, Jaitly & Hinton (2015), "A Simple Way to Initialize Recurrent Networks of Rectified Linear
Units": an image is read one pixel per step in raster order (28 x 28 = 784 steps), and the class
is predicted from the state after the last pixel; in the permuted variant every image is read
under one fixed random permutation of the pixel order, which scatters neighbouring pixels far
apart in time and so tests long dependencies harder. The metric is test accuracy.

Our images are Fashion-MNIST (Xiao, Rasul & Vollgraf 2017), which is harder than the MNIST
digits of the published numbers. `sequential_digits` is a quick variant on scikit-learn's bundled
8x8 digits (1,797 images, 64 steps) for tests and smoke runs.

Pixels are scaled to [0, 1]. Validation images are held out of the training set by a fixed
shuffle that does not depend on the run's seed, so every run sees the same three splits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import numpy as np
import torch
from torch import Tensor

from rnnbench.toolkit import datasets as data
from rnnbench import (AtLeast, Baseline, Batch, BenchmarkError, IndexBatches, InputSpec, PooledClassifier,
                      Reference, Requirements, SequenceBatch, Splits, Task, register_task)
from rnnbench.toolkit.baselines import majority_class
from rnnbench.toolkit.pooling import Pooling

if TYPE_CHECKING:
    from torchmetrics import MetricCollection

NUM_CLASSES = 10
SPLIT_SEED = 20_240_601        # the fixed shuffle that holds validation images out of training
PERMUTATION_SEED = 1           # the fixed pixel order of the permuted task

# --------------------------------------------------------------------------- reading the data

read_idx = data.read_idx   # the IDX reader lives in the data layer


def load_fashion_mnist(split: str) -> tuple[Tensor, Tensor]:
    """(images (N, 28, 28) uint8, labels (N,) int64) of the official 'train' or 't10k' split."""
    images, labels = data.read_fashion_mnist(split)
    return torch.from_numpy(images), torch.from_numpy(labels)


@functools.lru_cache(maxsize=1)
def load_digits() -> tuple[Tensor, Tensor]:
    """(images (1797, 8, 8) uint8 in 0..16, labels (1797,)) from scikit-learn's bundled copy of
    the UCI optical recognition of handwritten digits test set."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise BenchmarkError("sequential_digits needs scikit-learn: pip install scikit-learn") from None
    bunch = sklearn_digits()
    return (torch.from_numpy(bunch.images.astype(np.uint8)),
            torch.from_numpy(bunch.target.astype(np.int64)))


def hold_out(size: int, held: int) -> tuple[Tensor, Tensor]:
    """(kept, held-out) indices of a fixed shuffle of `size` items."""
    if not 0 < held < size:
        raise BenchmarkError(f"task.val_size must be between 1 and {size - 1}, got {held}")
    order = torch.randperm(size, generator=torch.Generator().manual_seed(SPLIT_SEED))
    return order[held:], order[:held]


def fixed_permutation(length: int) -> Tensor:
    """The permuted task's pixel order: one permutation, the same for every run."""
    return torch.randperm(length, generator=torch.Generator().manual_seed(PERMUTATION_SEED))


# --------------------------------------------------------------------------- tasks


@dataclass
class PixelOptions:
    """train_size: use only the first N training images (None: all); val_size: images held out
    of the official training set for validation; test_size: only the first N test images (None:
    all); pooling: how the per-pixel states become one vector (`last`, as in the papers)."""

    train_size: Annotated[int, AtLeast(1)] | None = None
    val_size: Annotated[int, AtLeast(1)] = 2_000
    test_size: Annotated[int, AtLeast(1)] | None = None
    pooling: Pooling = "last"


class PixelClassification(Task):
    """One pixel per step, ten classes from the pooled state. Subclasses say where the images
    come from (`images`, as (N, H, W) in [0, 1]) and whether the pixel order is permuted."""
    item_unit = "images"

    requirements = Requirements(structure="sequence", causal=False)
    head_kind = "classification"
    primary_metric = "accuracy"
    direction = "max"
    permuted = False
    Options = PixelOptions

    def images(self, split: str) -> tuple[Tensor, Tensor]:
        """(images (N, H, W) float in [0, 1], labels (N,)) of the official 'train' or 'test' split."""
        raise NotImplementedError

    def input_spec(self) -> InputSpec:
        return InputSpec(features=1)

    def sequences(self, split: str) -> tuple[Tensor, Tensor]:
        """(pixels (N, H*W, 1), labels) of 'train', 'val' or 'test', permuted if the task is."""
        options = self.options
        if split == "test":
            images, labels = self.images("test")
            chosen = torch.arange(images.shape[0] if options.test_size is None
                                  else min(options.test_size, images.shape[0]))
        else:
            images, labels = self.images("train")
            kept, held = hold_out(images.shape[0], options.val_size)
            chosen = held if split == "val" else kept[:options.train_size]
        if chosen.numel() == 0:
            raise BenchmarkError(f"{self.name}: the {split} split is empty; raise task.{split}_size")
        pixels = images[chosen].flatten(1)
        if self.permuted:
            pixels = pixels[:, fixed_permutation(pixels.shape[1])]
        return pixels.unsqueeze(-1).contiguous(), labels[chosen]

    def splits(self, batch_size: int, seed: int) -> Splits:
        def batches(split: str, shuffle: bool) -> IndexBatches:
            pixels, labels = self.sequences(split)
            lengths = torch.full((pixels.shape[0],), pixels.shape[1], dtype=torch.long)
            return IndexBatches(pixels.shape[0], batch_size, shuffle=shuffle, seed=seed,
                                make_batch=lambda index: Batch(
                                    SequenceBatch(pixels[index], lengths[index]), labels[index]))

        return Splits(train=batches("train", True), val=batches("val", False),
                      test=batches("test", False))

    def build_head(self, encoder_output_size, embedding, decoder=None):
        return PooledClassifier(encoder_output_size, NUM_CLASSES, pooling=self.options.pooling)

    def baselines(self, splits: Splits) -> tuple[Baseline, ...]:
        """The training split's most frequent class."""
        _, labels = self.sequences("train")
        return (majority_class("majority_class", torch.bincount(labels, minlength=NUM_CLASSES)),)

    def metrics(self) -> MetricCollection:
        from torchmetrics import MetricCollection
        from torchmetrics.classification import MulticlassAccuracy

        return MetricCollection({"accuracy": MulticlassAccuracy(NUM_CLASSES, average="micro")})


_FASHION_NOTE = ("MNIST digits, not Fashion-MNIST, which is harder; trained far longer than "
                 "our CPU budget")


class _FashionPixels(PixelClassification):
    defaults = {"optim.optimizer": "adam", "optim.lr": 1e-3, "optim.clip_norm": 1.0,
                "arch.hidden_size": 64, "trainer.batch_size": 64, "trainer.max_steps": 3000,
                "trainer.val_every_steps": 500, "trainer.patience": 4}
    presets = {"quick": {"task.train_size": 2_000, "task.val_size": 500, "task.test_size": 1_000,
                         "trainer.max_steps": 100, "trainer.val_every_steps": 50,
                         "arch.hidden_size": 32}}

    def images(self, split: str) -> tuple[Tensor, Tensor]:
        images, labels = load_fashion_mnist("train" if split == "train" else "t10k")
        return images.float() / 255.0, labels


@register_task("sequential_fmnist")
class SequentialFashionMNIST(_FashionPixels):
    """Fashion-MNIST read one pixel per step (784 steps); 10-way accuracy."""

    def references(self) -> tuple[Reference, ...]:
        return (Reference("tanh-RNN, sequential MNIST", 0.350, "Cooijmans et al. 2017", _FASHION_NOTE),
                Reference("LSTM, sequential MNIST", 0.989, "Cooijmans et al. 2017", _FASHION_NOTE),
                Reference("chance", 1 / NUM_CLASSES, "uniform guess over 10 classes"))


@register_task("permuted_fmnist")
class PermutedFashionMNIST(_FashionPixels):
    """Fashion-MNIST pixels in one fixed seeded permutation (784 steps); 10-way accuracy."""

    permuted = True

    def references(self) -> tuple[Reference, ...]:
        return (Reference("tanh-RNN, permuted MNIST", 0.350, "Cooijmans et al. 2017", _FASHION_NOTE),
                Reference("LSTM, permuted MNIST", 0.902, "Cooijmans et al. 2017", _FASHION_NOTE),
                Reference("chance", 1 / NUM_CLASSES, "uniform guess over 10 classes"))


@dataclass
class DigitsOptions(PixelOptions):
    """As PixelOptions; of the 1,797 images, `val_size` and `test_size` are held out by a fixed
    shuffle and the rest train."""

    val_size: Annotated[int, AtLeast(1)] = 180
    test_size: Annotated[int, AtLeast(1)] | None = 360


@register_task("sequential_digits")
class SequentialDigits(PixelClassification):
    """scikit-learn's 8x8 digits read one pixel per step (64 steps): the quick variant."""

    Options = DigitsOptions
    defaults = {"optim.optimizer": "adam", "optim.lr": 3e-3, "optim.clip_norm": 1.0,
                "arch.hidden_size": 64, "trainer.batch_size": 32, "trainer.max_steps": 3000,
                "trainer.val_every_steps": 100, "trainer.patience": 10}
    presets = {"quick": {"trainer.max_steps": 60, "trainer.val_every_steps": 30,
                         "arch.hidden_size": 32}}

    def images(self, split: str) -> tuple[Tensor, Tensor]:
        images, labels = load_digits()
        test_size = self.options.test_size
        if test_size is None or not 0 < test_size < images.shape[0] - self.options.val_size:
            raise BenchmarkError(f"sequential_digits: task.test_size must be between 1 and "
                                 f"{images.shape[0] - self.options.val_size - 1} (the digits have "
                                 f"no official test split), got {test_size}")
        order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(SPLIT_SEED + 1))
        chosen = order[:test_size] if split == "test" else order[test_size:]
        return images[chosen].float() / 16.0, labels[chosen]

    def references(self) -> tuple[Reference, ...]:
        return (Reference("chance", 1 / NUM_CLASSES, "uniform guess over 10 classes"),)
