"""Task heads: they turn encoder outputs into a loss and predictions.

A head returns the loss *summed* over its supervised items together with their count, so the
runner can apply the configured reduction (mean over items, or sum over steps and mean over the
batch as Zaremba et al. 2014 do) in one place.
"""

from __future__ import annotations

from typing import NamedTuple, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnbench.core.contracts import IGNORE_INDEX, Batch, EncoderOutput, SequenceBatch
from rnnbench.core.errors import BenchmarkError
from rnnbench.toolkit.pooling import Pooling, pool


class HeadOutput(NamedTuple):
    loss_sum: Tensor
    count: Tensor
    predictions: Tensor


class Head(nn.Module):
    """What a task puts on top of the encoder. Subclass and implement `forward`; the rest is
    declared here with defaults, and the runner and tasks use nothing else of a head:

    - `forward(encoded, batch) -> HeadOutput`: loss summed over the batch's supervised items,
      their count, and the predictions the metrics read;
    - `update_metrics(metrics, predictions, batch)`: feeds a torchmetrics MetricCollection
      (default: `metrics.update(predictions, batch.targets)`);
    - `readout`: the final `nn.Linear` from encoder features to the head's outputs, or None
      (default). `optim.optimizer=ridge` fits this layer in closed form
      (`Encoder.fit_readout`), so a head for a regression task declares it to allow that;
    - `predict(outputs)`: predictions from the encoder's outputs alone, with no batch or targets,
      for code that runs the model step by step (free-running prediction, sampling). Default:
      not offered (BenchmarkError).
    """

    @property
    def readout(self) -> nn.Linear | None:
        """The final linear layer mapping encoder features to the head's outputs, or None if the
        head has none (default). What a closed-form readout (`optim.optimizer=ridge`) fits."""
        return None

    def predict(self, outputs: Tensor) -> Tensor:
        """The head's predictions (logits, or values for regression) from the encoder's
        `EncoderOutput.outputs` alone: per step (B, T, O) -> (B, T, out) for sequences, per
        pixel (B, O, H, W) -> (B, C, H, W) for grids. Used where the model runs step by step
        (time-series free running, image sampling). Default: not offered."""
        raise BenchmarkError(f"{type(self).__name__} does not predict from encoder outputs alone "
                             f"(no `predict`): use a per-step or per-pixel head")

    def update_metrics(self, metrics, predictions: Tensor, batch: Batch) -> None:
        metrics.update(predictions, batch.targets)


class PerStepClassifier(Head):
    """Logits at every step: next-token generation (targets already shifted) or tagging.

    With `tied_embedding`, the output weights are the input embedding's (Press & Wolf 2017).
    Metrics see the logits and targets of the positions in `batch.metric_mask` (default: all
    non-padding positions), flattened to (N, classes) and (N,).
    """

    def __init__(self, output_size: int, num_classes: int,
                 tied_embedding: nn.Embedding | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(output_size, num_classes)
        if tied_embedding is not None:
            if tied_embedding.embedding_dim != output_size:
                raise BenchmarkError(
                    f"weight tying needs the encoder output size ({output_size}) to equal the "
                    f"embedding size ({tied_embedding.embedding_dim}): set "
                    f"arch.embedding_size={output_size} or turn tying off")
            self.linear.weight = tied_embedding.weight

    @property
    def readout(self) -> nn.Linear:
        return self.linear

    def predict(self, outputs: Tensor) -> Tensor:
        """(B, T, O) per-step encoder outputs -> (B, T, classes) logits."""
        return self.linear(outputs)

    def forward(self, encoded: EncoderOutput, batch: Batch) -> HeadOutput:
        logits = self.predict(encoded.outputs)
        targets = batch.targets
        loss_sum = F.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                   ignore_index=IGNORE_INDEX, reduction="sum")
        count = (targets != IGNORE_INDEX).sum()
        return HeadOutput(loss_sum, count, logits)

    def update_metrics(self, metrics, predictions: Tensor, batch: Batch) -> None:
        mask = batch.metric_mask if batch.metric_mask is not None else batch.targets != IGNORE_INDEX
        metrics.update(predictions[mask], batch.targets[mask])


class AnswerClassifier(PerStepClassifier):
    """A per-step classifier for generated tasks that ask for answers at some steps
    (`batch.metric_mask`, required: the answer positions): trained on the targets there, and its
    metrics (`rnnbench.toolkit.metrics`' generated-task metrics) see the whole batch,
    `update(logits, targets, answer, instance_lengths)`, to score per item and per length.

    Logits are computed only at the supervised steps (targets not IGNORE_INDEX): a task that
    asks for a few answers over a large vocabulary (MQAR's 8,192 tokens) pays for those alone.
    The predictions are (B, T, C) logits, zero at the other steps, in evaluation, where metrics
    read them; in training, where nothing reads them, the supervised steps' (N, C) logits."""

    def forward(self, encoded: EncoderOutput, batch: Batch) -> HeadOutput:
        supervised = batch.targets != IGNORE_INDEX
        logits = self.linear(encoded.outputs[supervised])
        loss_sum = F.cross_entropy(logits, batch.targets[supervised], reduction="sum")
        if self.training:
            return HeadOutput(loss_sum, supervised.sum(), logits)
        full = logits.new_zeros(*batch.targets.shape, logits.shape[-1])
        full[supervised] = logits
        return HeadOutput(loss_sum, supervised.sum(), full)

    def update_metrics(self, metrics, predictions: Tensor, batch: Batch) -> None:
        if batch.metric_mask is None:
            raise BenchmarkError("AnswerClassifier needs the answer positions in Batch.metric_mask")
        metrics.update(predictions, batch.targets, batch.metric_mask, batch.instance_length)


class PooledClassifier(Head):
    """One label per item from the pooled encoder state (`rnnbench.toolkit.pooling`)."""

    def __init__(self, output_size: int, num_classes: int, pooling: Pooling = "last") -> None:
        super().__init__()
        self.pooling = _check_pooling(pooling)
        self.linear = nn.Linear(output_size, num_classes)

    @property
    def readout(self) -> nn.Linear:
        return self.linear

    def forward(self, encoded: EncoderOutput, batch: Batch) -> HeadOutput:
        logits = self.linear(_summary(encoded, batch, self.pooling))
        loss_sum = F.cross_entropy(logits, batch.targets, reduction="sum")
        return HeadOutput(loss_sum, _count(batch), logits)


class PooledRegressor(Head):
    """A real-valued prediction per item from the pooled state, trained with squared error."""

    def __init__(self, output_size: int, out_features: int = 1, pooling: Pooling = "last") -> None:
        super().__init__()
        self.pooling = _check_pooling(pooling)
        self.linear = nn.Linear(output_size, out_features)

    @property
    def readout(self) -> nn.Linear:
        return self.linear

    def forward(self, encoded: EncoderOutput, batch: Batch) -> HeadOutput:
        prediction = self.linear(_summary(encoded, batch, self.pooling)).squeeze(-1)
        loss_sum = F.mse_loss(prediction, batch.targets, reduction="sum")
        return HeadOutput(loss_sum, _count(batch), prediction)


class PerStepRegressor(Head):
    """A real-valued vector at every step, `predict(outputs)` = W h_t + b, trained with squared
    error: time-series prediction (targets (B, T, F) already shifted to the next step).

    loss_sum sums the squared error over real steps and features and count is their number, so
    the mean loss is the MSE. Metrics see the (N, F) predictions and targets of the positions in
    `batch.metric_mask` (default: all real steps). `readout` (its `linear`) is what an
    architecture with a closed-form readout fits in place of gradient training.
    """

    def __init__(self, output_size: int, out_features: int = 1) -> None:
        super().__init__()
        self.linear = nn.Linear(output_size, out_features)

    @property
    def readout(self) -> nn.Linear:
        return self.linear

    def predict(self, outputs: Tensor) -> Tensor:
        """(B, T, O) per-step encoder outputs -> (B, T, F) predictions."""
        return self.linear(outputs)

    def forward(self, encoded: EncoderOutput, batch: Batch) -> HeadOutput:
        prediction = self.predict(encoded.outputs)
        real = _real_steps(batch)
        loss_sum = (((prediction - batch.targets) ** 2) * real.unsqueeze(-1).to(prediction.dtype)).sum()
        return HeadOutput(loss_sum, real.sum() * prediction.shape[-1], prediction)

    def update_metrics(self, metrics, predictions: Tensor, batch: Batch) -> None:
        mask = batch.metric_mask if batch.metric_mask is not None else _real_steps(batch)
        metrics.update(predictions[mask], batch.targets[mask])


class PerPixelBernoulli(Head):
    """Density of binary images: p(x) = prod_ij Bernoulli(x_ij | sigmoid(l_ij)), with the logit
    l_ij a 1x1 convolution of the encoder's output at (i, j), which a causal grid encoder computes
    from the pixels strictly before (i, j) in raster order (van den Oord, Kalchbrenner &
    Kavukcuoglu 2016, "Pixel Recurrent Neural Networks", eq. 1).

    loss_sum is the negative log-likelihood in nats summed over the batch and count is the number
    of images, so the mean loss is nats per image. Predictions are the (B, C, H, W) logits.
    """

    def __init__(self, output_size: int, channels: int = 1) -> None:
        super().__init__()
        self.logits = nn.Conv2d(output_size, channels, kernel_size=1)

    def predict(self, outputs: Tensor) -> Tensor:
        """(B, O, H, W) per-pixel encoder outputs -> (B, C, H, W) Bernoulli logits."""
        if outputs.dim() != 4:
            raise BenchmarkError(f"PerPixelBernoulli needs per-pixel outputs (B, O, H, W), got "
                                 f"shape {tuple(outputs.shape)}: use a grid encoder")
        return self.logits(outputs)

    def forward(self, encoded: EncoderOutput, batch: Batch) -> HeadOutput:
        logits = self.predict(encoded.outputs)
        loss_sum = F.binary_cross_entropy_with_logits(logits, batch.targets, reduction="sum")
        return HeadOutput(loss_sum, _count(batch), logits)


def _check_pooling(how: str) -> Pooling:
    if how not in get_args(Pooling):
        raise BenchmarkError(f"unknown pooling {how!r}: use one of {', '.join(get_args(Pooling))}, "
                             f"e.g. task.pooling=last")
    return how


def _real_steps(batch: Batch) -> Tensor:
    """(B, T) bool: the non-padding steps of a sequence batch."""
    if not isinstance(batch.inputs, SequenceBatch):
        raise BenchmarkError("a per-step head needs sequence inputs")
    return batch.inputs.mask()


def _summary(encoded: EncoderOutput, batch: Batch, how: Pooling) -> Tensor:
    if how != "last" and not isinstance(batch.inputs, SequenceBatch):
        raise BenchmarkError(f"pooling '{how}' needs sequence inputs; use task.pooling=last")
    return pool(encoded, batch.inputs, how)


def _count(batch: Batch) -> Tensor:
    return torch.tensor(batch.batch_size, device=batch.targets.device)
