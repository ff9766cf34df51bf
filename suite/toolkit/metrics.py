"""The custom torchmetrics metrics the tasks report.

They live here, not in the task modules, so that loading a task (as `rnnbench list` does for every
one) does not import torchmetrics: a task imports this module inside its `metrics()`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from rnnbench.core.contracts import IGNORE_INDEX


# --------------------------------------------------------------------------- images


class BernoulliNLL(Metric):
    """Negative log-likelihood of binary pixels under Bernoulli logits, summed and divided by the
    number of images (`per="image"`, nats) or by the number of pixels times ln 2
    (`per="dimension"`, bits)."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, per: Literal["image", "dimension"]) -> None:
        super().__init__()
        self.per = per
        for name in ("nats", "images", "dimensions"):
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, targets: Tensor) -> None:
        self.nats += F.binary_cross_entropy_with_logits(logits.double(), targets.double(),
                                                        reduction="sum")
        self.images += targets.shape[0]
        self.dimensions += targets.numel()

    def compute(self) -> Tensor:
        if self.per == "image":
            return self.nats / self.images.clamp(min=1)
        return self.nats / self.dimensions.clamp(min=1) / math.log(2)


# --------------------------------------------------------------------------- language modelling


class _TokenNLL(Metric):
    """The summed negative log-likelihood (nats) of the target tokens under softmax(logits), and
    their count, over everything seen since reset; `compute` turns the mean into the metric."""

    full_state_update = False
    higher_is_better = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("nll_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, targets: Tensor) -> None:
        self.nll_sum += F.cross_entropy(logits.float(), targets, reduction="sum").double()
        self.count += targets.numel()

    def mean_nll(self) -> Tensor:
        return self.nll_sum / self.count.clamp(min=1)


class Perplexity(_TokenNLL):
    """exp of the mean negative log-likelihood per token, over everything seen since reset."""

    def compute(self) -> Tensor:
        return torch.exp(self.mean_nll())


class BitsPerCharacter(_TokenNLL):
    """Bits per character: the mean negative log2-likelihood per predicted character over
    everything seen since reset, -(1/N) sum_i log2 p(c_i | c_<i) = mean NLL in nats / ln 2.

    Summed over the whole stream and divided once, so a split read in several batches scores
    exactly as if read in one. Predicting uniformly over V symbols gives log2(V)."""

    def compute(self) -> Tensor:
        return self.mean_nll() / math.log(2)


# --------------------------------------------------------------------------- tagging


def _tag_ids(predictions: Tensor) -> Tensor:
    """(B, T) tag ids from (B, T, C) scores or (B, T) ids."""
    return predictions.argmax(dim=-1) if predictions.dim() == 3 else predictions


class TokenAccuracy(Metric):
    """Correct tags / tagged tokens; positions whose target is IGNORE_INDEX do not count."""

    full_state_update = False
    higher_is_better = True

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, predictions: Tensor, targets: Tensor) -> None:
        real = targets != IGNORE_INDEX
        self.correct += ((_tag_ids(predictions) == targets) & real).sum()
        self.total += real.sum()

    def compute(self) -> Tensor:
        return self.correct.float() / self.total.clamp(min=1)


class EntityScore(Metric):
    """Entity-level precision, recall or F1 over everything seen since reset (fractions, 0-1).

    Entities are read from each sentence's tag strings with conlleval's chunk rules
    (seqeval's `get_entities`), so an I-X after O, or after another type, opens an entity as in
    conlleval; an entity is correct when its type, start and end all match the gold one.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, tags: list[str], score: Literal["precision", "recall", "f1"]) -> None:
        super().__init__()
        self.tags, self.score = list(tags), score
        for name in ("correct", "predicted", "gold"):
            self.add_state(name, torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, predictions: Tensor, targets: Tensor) -> None:
        from seqeval.metrics.sequence_labeling import get_entities  # seqeval pulls in scikit-learn

        predicted_ids, lengths = _tag_ids(predictions).tolist(), (targets != IGNORE_INDEX).sum(dim=1).tolist()
        for predicted, gold, length in zip(predicted_ids, targets.tolist(), lengths):
            gold_entities = set(get_entities([self.tags[i] for i in gold[:length]]))
            predicted_entities = set(get_entities([self.tags[i] for i in predicted[:length]]))
            self.correct += len(gold_entities & predicted_entities)
            self.predicted += len(predicted_entities)
            self.gold += len(gold_entities)

    def compute(self) -> Tensor:
        precision = self.correct / self.predicted.clamp(min=1)
        recall = self.correct / self.gold.clamp(min=1)
        if self.score == "precision":
            return precision.float()
        if self.score == "recall":
            return recall.float()
        total = precision + recall
        return torch.where(total > 0, 2 * precision * recall / total.clamp(min=1e-12), 0.0).float()


# --------------------------------------------------------------------------- time series


class NormalisedRMSE(Metric):
    """NRMSE = sqrt(mean (prediction - target)^2) / std(target), over every value it was given."""

    full_state_update = False
    higher_is_better = False

    def __init__(self) -> None:
        super().__init__()
        for name in ("squared_error", "target_sum", "target_square_sum", "count"):
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, predictions: Tensor, targets: Tensor) -> None:
        predictions, targets = predictions.double(), targets.double()
        self.squared_error += ((predictions - targets) ** 2).sum()
        self.target_sum += targets.sum()
        self.target_square_sum += (targets ** 2).sum()
        self.count += targets.numel()

    def compute(self) -> Tensor:
        count = self.count.clamp(min=1)
        mean = self.target_sum / count
        variance = (self.target_square_sum / count - mean ** 2).clamp(min=1e-24)
        return torch.sqrt(self.squared_error / count / variance)


# --------------------------------------------------------------------------- sequence to sequence


def _aligned(predictions: Tensor, targets: Tensor, row: int | None) -> tuple[Tensor, Tensor]:
    """(B, L) predicted and target ids padded with IGNORE_INDEX to one length; `row` picks one
    row of packed (B, R, L) predictions (`rnnbench.toolkit.seq2seq_head.Seq2SeqHead`)."""
    if row is not None:
        predictions = predictions[:, row]
    length = max(predictions.shape[1], targets.shape[1])
    return (F.pad(predictions, (0, length - predictions.shape[1]), value=IGNORE_INDEX),
            F.pad(targets, (0, length - targets.shape[1]), value=IGNORE_INDEX))


class ExactMatch(Metric):
    """Sequences whose every token, the end-of-sequence included and nothing after it, equals the
    target's / sequences (Lake & Baroni 2018: an answer counts only when all of it is right)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, row: int | None = None) -> None:
        super().__init__()
        self.row = row
        self.add_state("correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, predictions: Tensor, targets: Tensor) -> None:
        predicted, gold = _aligned(predictions, targets, self.row)
        self.correct += (predicted == gold).all(dim=1).sum()
        self.total += gold.shape[0]

    def compute(self) -> Tensor:
        return self.correct.float() / self.total.clamp(min=1)


class SequenceTokenAccuracy(Metric):
    """Target positions (end-of-sequence included) whose predicted token at the same position is
    right / target positions. A prediction that stops early is wrong on the rest."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, row: int | None = None) -> None:
        super().__init__()
        self.row = row
        self.add_state("correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, predictions: Tensor, targets: Tensor) -> None:
        predicted, gold = _aligned(predictions, targets, self.row)
        real = gold != IGNORE_INDEX
        self.correct += ((predicted == gold) & real).sum()
        self.total += real.sum()

    def compute(self) -> Tensor:
        return self.correct.float() / self.total.clamp(min=1)


# --------------------------------------------------------------------------- generated tasks
# Every metric here is updated by `rnnbench.toolkit.heads.AnswerClassifier` with the whole batch:
# `update(logits (B, S, C), targets (B, S), answer (B, S) bool, lengths (B,) or None)`.


class CurveMetric(Metric):
    """A metric that is also a curve: `curve()` gives the (x, y) points behind its value (the
    runner records a test split's curves in the store, `ResultStore.set_curve`)."""

    def curve(self) -> list[tuple[float, float]]:  # pragma: no cover
        raise NotImplementedError


class AnswerAccuracy(Metric):
    """Accuracy over every scored answer position (per-token, micro-averaged)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, targets: Tensor, answer: Tensor, lengths: Tensor | None) -> None:
        hits = (logits.argmax(-1) == targets) & answer
        self.correct += hits.sum()
        self.total += answer.sum()

    def compute(self) -> Tensor:
        return self.correct / self.total.clamp(min=1)


class FinalAnswerAccuracy(Metric):
    """Accuracy at each item's last scored position only: the final state of a state-tracking
    problem (Merrill et al. 2024), whatever the steps before it."""

    full_state_update = False
    higher_is_better = True

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, targets: Tensor, answer: Tensor, lengths: Tensor | None) -> None:
        steps = torch.arange(answer.shape[1], device=answer.device)
        last = torch.where(answer, steps, -1).amax(dim=1)        # (B,) last scored step
        rows = torch.nonzero(last >= 0).squeeze(1)
        self.correct += (logits[rows, last[rows]].argmax(-1) == targets[rows, last[rows]]).sum()
        self.total += len(rows)

    def compute(self) -> Tensor:
        return self.correct / self.total.clamp(min=1)


class AccuracyByLength(CurveMetric):
    """Length generalisation (Deletang et al. 2023, section 4): each item's score is the share of
    its answer tokens predicted right; the scores are averaged per length n, and the metric is
    the mean over the lengths seen (every length weighs the same). `curve()`: (n, accuracy at n).

    `max_length`: the longest n it may see (its per-length sums are tensors of that size)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, max_length: int) -> None:
        super().__init__()
        self.add_state("scores", default=torch.zeros(max_length + 1, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("items", default=torch.zeros(max_length + 1, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, targets: Tensor, answer: Tensor, lengths: Tensor | None) -> None:
        if lengths is None:
            raise ValueError("AccuracyByLength needs Batch.instance_length: generate the task's "
                             "batches with rnnbench.toolkit.generated.length_splits")
        hits = ((logits.argmax(-1) == targets) & answer).sum(1).double()
        per_item = hits / answer.sum(1).clamp(min=1).double()
        self.scores.index_add_(0, lengths, per_item)
        self.items.index_add_(0, lengths, torch.ones_like(per_item))

    def compute(self) -> Tensor:
        seen = self.items > 0
        return (self.scores[seen] / self.items[seen]).mean() if seen.any() else self.scores.new_tensor(float("nan"))

    def curve(self) -> list[tuple[float, float]]:
        seen = torch.nonzero(self.items > 0).squeeze(1)
        return [(float(n), float(self.scores[n] / self.items[n])) for n in seen.tolist()]
