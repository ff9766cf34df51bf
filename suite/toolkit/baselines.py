"""Trivial predictors that tasks declare as their baselines (`Task.baselines`), fitted on the
training split and scored by the runner with the task's own metrics on the same test set as the
run. A leaderboard row that is not beyond the strongest of them did not learn the task.

Each returns a `Baseline(name, predict)`, `predict(batch)` giving predictions in a head's format:

- `constant_value`: one value for every item (predicting the mean target; `PooledRegressor`);
- `majority_class`: the most frequent training label, for every item (`PooledClassifier`), or at
  every position (`PerStepClassifier`);
- `fixed_distribution`: the same distribution at every position, as log-probabilities (a
  unigram or uniform language model; `PerStepClassifier` reads them as logits: softmax(log p) = p);
- `most_frequent_label_per_token`: each input token's most frequent training label, the overall
  most frequent one for a token never seen (the most-frequent-tag tagger);
- `fit_linear_on_lags` / `predict_on_lags`: ridge regression of each step's target on the last k
  inputs of a continuous series, handed out chunk by chunk with `in_order` (time series;
  `PerStepRegressor`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from rnnbench.core.contracts import IGNORE_INDEX, Baseline, Batch, SequenceBatch


def mean_target(batches: Iterable[Batch]) -> float:
    """The mean of every target in one pass over `batches`."""
    total, count = 0.0, 0
    for batch in batches:
        total += float(batch.targets.double().sum())
        count += batch.targets.numel()
    return total / max(count, 1)


def constant_value(name: str, value: float) -> Baseline:
    """Predict `value` for every item: (B,) predictions."""
    return Baseline(name, lambda batch: torch.full(batch.targets.shape, value, dtype=torch.float32))


def label_counts(batches: Iterable[Batch], num_classes: int) -> Tensor:
    """(num_classes,) counts of the labels of every supervised position (IGNORE_INDEX left out)."""
    counts = torch.zeros(num_classes, dtype=torch.long)
    for batch in batches:
        targets = batch.targets[batch.targets != IGNORE_INDEX]
        counts += torch.bincount(targets.reshape(-1), minlength=num_classes)
    return counts


def answer_counts(batches: Iterable[Batch], num_classes: int) -> Tensor:
    """(num_classes,) counts of the labels at the scored positions (`Batch.metric_mask`) only:
    the answers of a task that trains on more than it scores (next-token prediction everywhere,
    recall scored at the values)."""
    counts = torch.zeros(num_classes, dtype=torch.long)
    for batch in batches:
        counts += torch.bincount(batch.targets[batch.metric_mask].reshape(-1), minlength=num_classes)
    return counts


def _one_hot_logits(labels: Tensor, num_classes: int) -> Tensor:
    return torch.nn.functional.one_hot(labels, num_classes).float()


def majority_class(name: str, counts: Tensor) -> Baseline:
    """Predict the most frequent label (the lowest on a tie): logits shaped like the targets plus
    a class dimension, (B, C) for pooled heads or (B, T, C) per step."""
    label = int(torch.argmax(counts))
    num_classes = len(counts)

    def predict(batch: Batch) -> Tensor:
        labels = torch.full(batch.targets.shape, label, dtype=torch.long)
        return _one_hot_logits(labels, num_classes)
    return Baseline(name, predict)


def fixed_distribution(name: str, probabilities: Tensor) -> Baseline:
    """The same distribution over the vocabulary at every position: (B, T, V) log-probabilities."""
    log_probabilities = torch.log(probabilities / probabilities.sum())
    return Baseline(name, lambda batch: log_probabilities.expand(*batch.targets.shape, len(probabilities)))


def unigram(name: str, counts: Tensor) -> Baseline:
    """The training unigram distribution, add-one smoothed (a word never seen in training keeps a
    finite probability)."""
    return fixed_distribution(name, counts.double() + 1.0)


def uniform(name: str, size: int) -> Baseline:
    return fixed_distribution(name, torch.ones(size, dtype=torch.float64))


def most_frequent_label_per_token(name: str, batches: Iterable[Batch], vocab_size: int, num_classes: int) -> Baseline:
    """Each input token's most frequent training label; a token never seen in training gets the
    most frequent label overall. Predictions are (B, T, C) one-hot logits."""
    counts = torch.zeros(vocab_size, num_classes, dtype=torch.long)
    for batch in batches:
        tokens, targets = _tokens(batch), batch.targets
        supervised = targets != IGNORE_INDEX
        counts.index_put_((tokens[supervised], targets[supervised]), torch.tensor(1), accumulate=True)
    overall = int(torch.argmax(counts.sum(0)))
    table = torch.where(counts.sum(1) > 0, counts.argmax(1), torch.tensor(overall))

    def predict(batch: Batch) -> Tensor:
        return _one_hot_logits(table[_tokens(batch)], num_classes)
    return Baseline(name, predict)


def _tokens(batch: Batch) -> Tensor:
    if not isinstance(batch.inputs, SequenceBatch) or batch.inputs.values.dtype != torch.long:
        raise TypeError("a per-token baseline needs token-id sequences (SequenceBatch of longs)")
    return batch.inputs.values


def lagged(series: Tensor, lags: int) -> Tensor:
    """(N, F) series -> (N, lags * F + 1): at each step the last `lags` inputs, that step's
    included (zeros before the start), and a constant 1."""
    steps, features = series.shape
    padded = torch.cat([series.new_zeros(lags - 1, features), series], dim=0)
    windows = padded.unfold(0, lags, 1).reshape(steps, features * lags)   # (N, F, lags) flattened
    return torch.cat([windows, windows.new_ones(steps, 1)], dim=-1)


def fit_linear_on_lags(inputs: Tensor, targets: Tensor, lags: int, ridge: float = 1e-6) -> Tensor:
    """Ridge regression weights ((lags * F + 1), F_out) of each step's target on the last `lags`
    inputs of one continuous (N, F) series: (X^T X + ridge I)^-1 X^T Y, in float64."""
    features = lagged(inputs.double(), lags)
    gram = features.T @ features
    return torch.linalg.solve(gram + ridge * torch.eye(len(gram), dtype=gram.dtype), features.T @ targets.double())


def predict_on_lags(inputs: Tensor, weights: Tensor, lags: int) -> Tensor:
    """(N, F_out) predictions of `fit_linear_on_lags`'s weights on a continuous (N, F) series."""
    return (lagged(inputs.double(), lags) @ weights).float()


def in_order(name: str, predictions: Iterable[Tensor]) -> Baseline:
    """A baseline whose predictions are computed up front, one per batch of the test split, and
    handed out in the split's order (a time series read in chunks: the lags of a chunk's first
    steps reach into the chunk before it, as the models' carried state does)."""
    chunks = list(predictions)
    position = [0]

    def predict(batch: Batch) -> Tensor:
        chunk = chunks[position[0] % len(chunks)]
        position[0] += 1
        return chunk
    return Baseline(name, predict)
