"""The base of generated tasks that train on short inputs and test on longer ones (Deletang et
al. 2023, "Neural networks and the Chomsky hierarchy", section 4: train on lengths 1-40, score
the accuracy on every length 41-500, each length weighing the same).

A subclass sets `vocab_size` (input token ids, 0 the blank answer step), `num_classes` (answer
labels) and implements `generate(size, n, generator) -> Generated`: `size` examples at length n,
with the positions that ask for an answer (`Generated.answer`). The base does the rest:
`LengthOptions`, the splits (`rnnbench.toolkit.generated.length_splits`), the answer head, the
metrics (`accuracy`: per-length accuracy averaged over lengths, recorded with its curve against
n; `answer_accuracy`: over every answer; `final_accuracy`: each item's last answer) and the
majority-answer baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ClassVar

import torch

from rnnbench.core.constraints import AtLeast
from rnnbench.core.contracts import Baseline, InputSpec, Reference, Requirements, Splits, Task
from rnnbench.core.errors import BenchmarkError
from rnnbench.toolkit.baselines import answer_counts, majority_class
from rnnbench.toolkit.generated import Generated, LengthRanges, length_splits
from rnnbench.toolkit.heads import AnswerClassifier

if TYPE_CHECKING:
    from torchmetrics import MetricCollection


@dataclass
class LengthOptions:
    """min_length..max_length: the lengths n trained on (and validated on, to choose the
    checkpoint in distribution); test_min_length..test_max_length: the lengths tested, every
    test_length_step-th; train_size: examples per training pass; eval_per_length: examples per
    validated or tested length."""

    min_length: Annotated[int, AtLeast(1)] = 1
    max_length: Annotated[int, AtLeast(1)] = 40
    test_min_length: Annotated[int, AtLeast(1)] = 41
    test_max_length: Annotated[int, AtLeast(1)] = 500
    test_length_step: Annotated[int, AtLeast(1)] = 1
    train_size: Annotated[int, AtLeast(1)] = 12_800
    eval_per_length: Annotated[int, AtLeast(1)] = 8


class LengthGeneralisationTask(Task):
    """A generated task scored by accuracy on lengths longer than those it trained on."""

    requirements: ClassVar[Requirements] = Requirements(structure="sequence")
    head_kind = "tagging"
    primary_metric = "accuracy"
    direction = "max"
    item_unit = "answers"
    Options = LengthOptions
    # the paper trains 1,000,000 steps of 128 with Adam at 1e-3 (Deletang et al., section 4); a
    # CPU affords a few thousand
    defaults: ClassVar[dict] = {"optim.optimizer": "adam", "optim.lr": 1e-3, "optim.clip_norm": 1.0,
                                "arch.hidden_size": 128, "trainer.batch_size": 64, "trainer.max_steps": 3000,
                                "trainer.val_every_steps": 250, "trainer.patience": 6}
    presets: ClassVar[dict] = {"quick": {"task.max_length": 8, "task.test_min_length": 9,
                                         "task.test_max_length": 16, "task.train_size": 512,
                                         "task.eval_per_length": 4, "arch.hidden_size": 16,
                                         "trainer.max_steps": 40, "trainer.val_every_steps": 20}}
    vocab_size: ClassVar[int]
    num_classes: ClassVar[int]

    def __init__(self, options: LengthOptions) -> None:
        super().__init__(options)
        if options.max_length < options.min_length or options.test_max_length < options.test_min_length:
            raise BenchmarkError(f"task '{self.name}': a length range ends before it starts "
                                 f"(training {options.min_length}-{options.max_length}, test "
                                 f"{options.test_min_length}-{options.test_max_length}): set "
                                 f"task.max_length >= task.min_length and task.test_max_length >= "
                                 f"task.test_min_length")
        if options.test_min_length <= options.max_length:
            raise BenchmarkError(f"task '{self.name}' tests length generalisation, so its test lengths "
                                 f"must all be unseen, but they start at {options.test_min_length}, "
                                 f"within the training lengths {options.min_length}-{options.max_length}: "
                                 f"set task.test_min_length={options.max_length + 1} or lower task.max_length")

    def generate(self, size: int, n: int, generator: torch.Generator) -> Generated:  # pragma: no cover
        raise NotImplementedError

    def ranges(self) -> LengthRanges:
        o = self.options
        return LengthRanges(train=range(o.min_length, o.max_length + 1),
                            test=range(o.test_min_length, o.test_max_length + 1, o.test_length_step),
                            eval_per_length=o.eval_per_length)

    def input_spec(self) -> InputSpec:
        return InputSpec(vocab_size=self.vocab_size)

    def splits(self, batch_size: int, seed: int) -> Splits:
        return length_splits(self.generate, self.ranges(), train_size=self.options.train_size,
                             batch_size=batch_size, seed=seed)

    def build_head(self, encoder_output_size, embedding, decoder=None):
        return AnswerClassifier(encoder_output_size, self.num_classes)

    def metrics(self) -> MetricCollection:
        from torchmetrics import MetricCollection

        from rnnbench.toolkit.metrics import AccuracyByLength, AnswerAccuracy, FinalAnswerAccuracy

        longest = max(self.options.max_length, self.options.test_max_length)
        return MetricCollection({"accuracy": AccuracyByLength(longest), "answer_accuracy": AnswerAccuracy(),
                                 "final_accuracy": FinalAnswerAccuracy()})

    def baselines(self, splits: Splits) -> tuple[Baseline, ...]:
        """The most frequent answer of the training data, at every answer position."""
        return (majority_class("majority answer", answer_counts(splits.train, self.num_classes)),)

    def references(self) -> tuple[Reference, ...]:
        return (Reference("chance (accuracy)", 1 / self.num_classes, f"uniform guess over {self.num_classes} answers"),)
