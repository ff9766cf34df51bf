"""Pooling a sequence encoder's outputs into one vector per item, chosen by a task option."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from rnnbench.core.contracts import EncoderOutput, SequenceBatch
from rnnbench.core.errors import BenchmarkError

Pooling = Literal["last", "mean", "max"]


def pool(encoded: EncoderOutput, inputs: SequenceBatch, how: Pooling) -> Tensor:
    """(B, O) summary of each sequence.

    last: the final state of every direction, concatenated (for a bidirectional encoder that is
          the forward state after the last real step and the backward state after the first);
    mean / max: over the real (unpadded) steps of the per-step outputs.
    """
    if how == "last":
        return encoded.final.reshape(encoded.final.shape[0], -1)
    mask = inputs.mask().unsqueeze(-1)
    outputs = encoded.outputs
    if how == "mean":
        total = (outputs * mask).sum(dim=1)
        return total / inputs.lengths.to(outputs.device).clamp(min=1).unsqueeze(1).to(outputs.dtype)
    if how == "max":
        return outputs.masked_fill(~mask, torch.finfo(outputs.dtype).min).amax(dim=1)
    raise BenchmarkError(f"unknown pooling {how!r}: use one of last, mean, max, e.g. task.pooling=last")
