"""Splits for generated tasks: data drawn from the seed, never read from disk.

Two shapes cover every generated task:

- `fixed_length_splits`: every example has the same shape (the probes, associative recall,
  selective copying). `make(size, generator)` returns a tuple of tensors whose first dimension
  is the example.
- `length_splits`: each example is generated at a length n (a Chomsky-hierarchy string, a word of
  a state-tracking problem), training on one range of n and testing on another, so that the test
  measures length generalisation (Deletang et al. 2023). `make(size, n, generator)` returns a
  `Generated` of `size` examples at length n.

In both, validation and test are drawn once per seed, each from its own stream; training draws
`train_size` fresh examples on every pass, from (seed, pass), so the data is unlimited yet
reproducible, and a resumed run replays the same pass (`rnnbench.toolkit.batching.IndexBatches`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnbench.core.contracts import IGNORE_INDEX, Batch, SequenceBatch, Splits
from rnnbench.toolkit.batching import IndexBatches

_SPLIT_OFFSETS = {"train": 0, "val": 1, "test": 2}


def split_generator(seed: int, split: str) -> torch.Generator:
    """The stream a split drawn once is drawn from (validation and test; training too where the
    training set is fixed, `fixed_length_splits(fresh=False)`): its own per (seed, split),
    disjoint from the fresh training passes' streams (which `IndexBatches` seeds with
    non-negative numbers)."""
    return torch.Generator().manual_seed(-(seed * 3 + _SPLIT_OFFSETS[split]) - 1)


def fixed_length_splits(make: Callable[[int, torch.Generator], tuple[Tensor, ...]], *, train_size: int,
                        eval_size: int, batch_size: int, seed: int, to_batch: Callable[..., Batch],
                        fresh: bool = True, train_batch: Callable[..., Batch] | None = None,
                        make_evaluation: Callable[[int, torch.Generator], tuple[Tensor, ...]] | None = None) -> Splits:
    """Splits of `make`'s examples; `to_batch(*tensors)` turns a slice of them into a Batch.
    `fresh`: training draws new examples every pass (unlimited data); False: one training set
    of `train_size` drawn once, shuffled every pass (its size is then a difficulty knob, as in
    MAD). `train_batch`: training batches are built by it instead (a task that trains on more
    positions than it scores). `make_evaluation`: validation and test examples are drawn by it
    instead (MAD's fuzzy recall asks for its longest keys only)."""
    train_batch = train_batch or to_batch
    make_evaluation = make_evaluation or make

    def fixed(split: str, build: Callable[..., Batch], size: int) -> Callable[[Tensor], Batch]:
        data = (make if split == "train" else make_evaluation)(size, split_generator(seed, split))
        return lambda index: build(*(t[index] for t in data))

    def drawn(generator: torch.Generator) -> Callable[[Tensor], Batch]:
        data = make(train_size, generator)
        return lambda index: train_batch(*(t[index] for t in data))

    train = (IndexBatches(train_size, batch_size, draw=drawn, seed=seed) if fresh else
             IndexBatches(train_size, batch_size, fixed("train", train_batch, train_size), shuffle=True, seed=seed))
    return Splits(train=train, val=IndexBatches(eval_size, batch_size, fixed("val", to_batch, eval_size)),
                  test=IndexBatches(eval_size, batch_size, fixed("test", to_batch, eval_size)))


def python_rng(generator: torch.Generator) -> random.Random:
    """A Python generator seeded from the torch one, for data built token by token (a bracketed
    expression, a stream of variable-length key-value motifs), where per-token torch calls
    would be slow."""
    return random.Random(int(torch.randint(0, 2**62, (1,), generator=generator)))


@dataclass
class Generated:
    """`size` examples generated at one length n: `inputs` (size, S) token ids, `targets`
    (size, S) with IGNORE_INDEX where nothing is asked, and `answer` (size, S) bool, the
    positions scored. S, the steps the model reads, may exceed n (an answer appended after the
    string)."""

    inputs: Tensor
    targets: Tensor
    answer: Tensor


@dataclass(frozen=True)
class LengthRanges:
    """Lengths n to train on (`train`, also the validation split's, so that the checkpoint is
    chosen in distribution) and to test on (`test`), with `eval_per_length` examples per tested
    length."""

    train: Sequence[int]
    test: Sequence[int]
    eval_per_length: int


def length_splits(make: Callable[[int, int, torch.Generator], Generated], ranges: LengthRanges, *,
                  train_size: int, batch_size: int, seed: int) -> Splits:
    """Splits of examples at varying lengths, batched by length (`IndexBatches` bucketing): a
    training pass has `train_size` examples spread evenly over `ranges.train`; validation has
    `eval_per_length` per training length, test as many per test length. Batches carry each
    item's length in `Batch.instance_length`."""
    train_lengths = _spread(ranges.train, train_size)

    def fixed(split: str, lengths: Sequence[int]) -> IndexBatches:
        per_item = torch.tensor(lengths, dtype=torch.long).repeat_interleave(ranges.eval_per_length)
        make_batch = _stacked(make, per_item, split_generator(seed, split))
        return IndexBatches(len(per_item), batch_size, make_batch, lengths=per_item)

    return Splits(train=IndexBatches(train_size, batch_size, seed=seed, shuffle=True, lengths=train_lengths,
                                     draw=lambda generator: _stacked(make, train_lengths, generator)),
                  val=fixed("val", ranges.train), test=fixed("test", ranges.test))


def _spread(lengths: Sequence[int], size: int) -> Tensor:
    """(size,) lengths cycling through `lengths`: each used size / len(lengths) times."""
    return torch.tensor(lengths, dtype=torch.long).repeat(-(-size // len(lengths)))[:size]


def _stacked(make: Callable[[int, int, torch.Generator], Generated], lengths: Tensor,
             generator: torch.Generator) -> Callable[[Tensor], Batch]:
    """Generate every example (one call of `make` per distinct length, in increasing length),
    padded into one tensor, and return the function that cuts a Batch out of it."""
    parts = {int(n): make(int((lengths == n).sum()), int(n), generator) for n in torch.unique(lengths)}
    steps = max(part.inputs.shape[1] for part in parts.values())
    size = len(lengths)
    inputs = torch.zeros(size, steps, dtype=torch.long)
    targets = torch.full((size, steps), IGNORE_INDEX, dtype=torch.long)
    answer = torch.zeros(size, steps, dtype=torch.bool)
    real = torch.zeros(size, dtype=torch.long)
    for n, part in parts.items():
        rows = torch.nonzero(lengths == n).squeeze(1)
        width = part.inputs.shape[1]
        inputs[rows, :width], targets[rows, :width], answer[rows, :width] = part.inputs, part.targets, part.answer
        real[rows] = width

    def make_batch(index: Tensor) -> Batch:
        width = int(real[index].max())
        return Batch(SequenceBatch(inputs[index, :width], real[index]), targets[index, :width],
                     metric_mask=answer[index, :width], instance_length=lengths[index])
    return make_batch
