"""Long-dependency probes, generated from a seed: the copy task and the adding problem.

Copy (Arjovsky, Shah & Bengio 2016, "Unitary Evolution RNNs", section 4.1): the input is 10
symbols drawn from an alphabet of 8, then T - 1 blanks, a delimiter, and 10 more blanks (T + 20
steps); the target is blank for the first T + 10 steps and then the 10 symbols. A memoryless
strategy (blanks, then uniform guesses) scores a cross-entropy of 10 log 8 / (T + 20) nats per
step; the task reports that per-step cross-entropy (`loss`) and the accuracy on the recalled
symbols (`accuracy`, chance 1/8).

Adding (Hochreiter & Schmidhuber 1997; in the form of Le, Jaitly & Hinton 2015): each step has a
value drawn from U(0, 1) and a marker; exactly two steps are marked, one in each half of the
sequence; the target is the sum of the two marked values. Always predicting 1 gives an MSE of
1/6 = 0.167.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import torch
from torch import Tensor

from rnnbench import (AtLeast, Baseline, Batch, InputSpec, PerStepClassifier,
                      PooledRegressor, Reference, Requirements, SequenceBatch, Splits, Task,
                      register_task)
from rnnbench.toolkit.baselines import constant_value, majority_class, mean_target
from rnnbench.toolkit.generated import fixed_length_splits
from rnnbench.toolkit.pooling import Pooling

if TYPE_CHECKING:
    from torchmetrics import MetricCollection


@dataclass
class ProbeOptions:
    """length: T; train_size / eval_size: examples generated for training and per evaluation split."""

    length: Annotated[int, AtLeast(1)] = 50
    train_size: Annotated[int, AtLeast(1)] = 20_000
    eval_size: Annotated[int, AtLeast(1)] = 1_000


def _splits(make, options: ProbeOptions, batch_size: int, seed: int, to_batch) -> Splits:
    return fixed_length_splits(make, train_size=options.train_size, eval_size=options.eval_size,
                               batch_size=batch_size, seed=seed, to_batch=to_batch)


# --------------------------------------------------------------------------- copy

COPY_SYMBOLS, COPY_RECALL = 8, 10
BLANK, DELIMITER = 0, COPY_SYMBOLS + 1          # symbols are 1..8
COPY_VOCAB = COPY_SYMBOLS + 2


def make_copy(size: int, length: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(inputs, targets), both (size, length + 20) token ids."""
    steps = length + 2 * COPY_RECALL
    symbols = torch.randint(1, COPY_SYMBOLS + 1, (size, COPY_RECALL), generator=generator)
    inputs = torch.full((size, steps), BLANK, dtype=torch.long)
    inputs[:, :COPY_RECALL] = symbols
    inputs[:, COPY_RECALL + length - 1] = DELIMITER
    targets = torch.full((size, steps), BLANK, dtype=torch.long)
    targets[:, -COPY_RECALL:] = symbols
    return inputs, targets


@register_task("copy")
class Copy(Task):
    """Copy task (Arjovsky et al. 2016): recall 10 symbols after T blanks; recalled-symbol accuracy."""
    item_unit = "steps"

    requirements = Requirements(structure="sequence", causal=True)
    head_kind = "tagging"
    primary_metric = "accuracy"
    direction = "max"
    # measured: lstm at T=20 reaches 0.90 recalled-symbol accuracy after 7000 of these steps
    defaults = {"optim.optimizer": "adam", "optim.lr": 3e-3, "optim.schedule": "cosine",
                "optim.clip_norm": 1.0, "arch.hidden_size": 128, "trainer.batch_size": 64,
                "trainer.max_steps": 8000, "trainer.val_every_steps": 1000, "trainer.patience": 4}
    presets = {"quick": {"task.length": 10, "task.train_size": 2_000, "task.eval_size": 256,
                         "trainer.max_steps": 60, "trainer.val_every_steps": 30,
                         "arch.hidden_size": 32}}
    Options = ProbeOptions
    curve_setting = "task.length"

    def input_spec(self) -> InputSpec:
        return InputSpec(vocab_size=COPY_VOCAB)

    def splits(self, batch_size: int, seed: int) -> Splits:
        steps = self.options.length + 2 * COPY_RECALL
        recalled = torch.zeros(steps, dtype=torch.bool)
        recalled[-COPY_RECALL:] = True

        def to_batch(inputs: Tensor, targets: Tensor) -> Batch:
            lengths = torch.full((inputs.shape[0],), steps, dtype=torch.long)
            return Batch(SequenceBatch(inputs, lengths), targets,
                         metric_mask=recalled.expand(inputs.shape[0], steps))

        return _splits(lambda size, gen: make_copy(size, self.options.length, gen),
                              self.options, batch_size, seed, to_batch)

    def build_head(self, encoder_output_size, embedding, decoder=None):
        return PerStepClassifier(encoder_output_size, COPY_VOCAB)

    def metrics(self) -> MetricCollection:
        from torchmetrics import MetricCollection
        from torchmetrics.classification import MulticlassAccuracy

        return MetricCollection({"accuracy": MulticlassAccuracy(COPY_VOCAB, average="micro")})

    def baselines(self, splits: Splits) -> tuple[Baseline, ...]:
        """Memoryless: one fixed symbol at every recalled position (accuracy 1/8 in expectation,
        what any strategy without memory of the symbols scores)."""
        counts = torch.zeros(COPY_VOCAB, dtype=torch.long)
        counts[1] = 1
        return (majority_class("memoryless", counts),)

    def references(self) -> tuple[Reference, ...]:
        steps = self.options.length + 2 * COPY_RECALL
        return (Reference(f"memoryless baseline at T={self.options.length} (loss, nats/step)",
                          COPY_RECALL * math.log(COPY_SYMBOLS) / steps, "Arjovsky et al. 2016"),
                Reference("chance (accuracy)", 1 / COPY_SYMBOLS, "uniform guess over 8 symbols"))


# --------------------------------------------------------------------------- adding


def make_adding(size: int, length: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(inputs (size, length, 2), targets (size,)): values and markers, sum of marked values."""
    values = torch.rand(size, length, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (size,), generator=generator)
    second = torch.randint(half, length, (size,), generator=generator)
    markers = torch.zeros(size, length)
    rows = torch.arange(size)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = values[rows, first] + values[rows, second]
    return torch.stack([values, markers], dim=-1), targets


@dataclass
class AddingOptions(ProbeOptions):
    """pooling: how the sequence is summarised before the regression layer."""

    pooling: Pooling = "last"


@register_task("adding")
class Adding(Task):
    """Adding problem (Hochreiter & Schmidhuber 1997): sum the two marked values; MSE."""
    item_unit = "sequences"

    requirements = Requirements(structure="sequence", causal=False)
    head_kind = "regression"
    primary_metric = "mse"
    direction = "min"
    # measured: rnn at T=50 leaves the 0.167 plateau after about 5000 of these steps (0.010 at 8000)
    defaults = {"optim.optimizer": "adam", "optim.lr": 1e-3, "optim.schedule": "cosine",
                "optim.clip_norm": 1.0, "arch.hidden_size": 128, "trainer.batch_size": 64,
                "trainer.max_steps": 8000, "trainer.val_every_steps": 500, "trainer.patience": 8}
    presets = {"quick": {"task.length": 20, "task.train_size": 2_000, "task.eval_size": 256,
                         "trainer.max_steps": 60, "trainer.val_every_steps": 30,
                         "arch.hidden_size": 32}}
    Options = AddingOptions
    curve_setting = "task.length"

    def input_spec(self) -> InputSpec:
        return InputSpec(features=2)

    def splits(self, batch_size: int, seed: int) -> Splits:
        def to_batch(inputs: Tensor, targets: Tensor) -> Batch:
            lengths = torch.full((inputs.shape[0],), inputs.shape[1], dtype=torch.long)
            return Batch(SequenceBatch(inputs, lengths), targets)

        return _splits(lambda size, gen: make_adding(size, self.options.length, gen),
                              self.options, batch_size, seed, to_batch)

    def build_head(self, encoder_output_size, embedding, decoder=None):
        return PooledRegressor(encoder_output_size, pooling=self.options.pooling)

    def metrics(self) -> MetricCollection:
        from torchmetrics import MeanSquaredError, MetricCollection

        return MetricCollection({"mse": MeanSquaredError()})

    def baselines(self, splits: Splits) -> tuple[Baseline, ...]:
        """Predicting the training targets' mean (about 1: an MSE of about 1/6)."""
        return (constant_value("mean", mean_target(splits.train)),)

    def references(self) -> tuple[Reference, ...]:
        return (Reference("predict 1 baseline", 1 / 6, "Hochreiter & Schmidhuber 1997 setup"),)
