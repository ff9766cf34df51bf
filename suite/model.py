"""The composed model: input embedding/projection + an architecture's encoder + a task's head,
and the choice of hidden size that matches a parameter budget."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from suite.config import RunConfig
from suite.contracts import Architecture, Batch, EncoderOutput, GridBatch, Inputs, Task
from suite.errors import BenchmarkError
from suite.heads import HeadOutput


class BenchmarkModel(nn.Module):
    """embedding (token inputs only) -> encoder -> head."""

    def __init__(self, embedding: nn.Embedding | None, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.embedding, self.encoder, self.head = embedding, encoder, head

    def embed(self, inputs: Inputs) -> Inputs:
        if self.embedding is None or isinstance(inputs, GridBatch):
            return inputs
        return dataclasses.replace(inputs, values=self.embedding(inputs.values))

    def forward(self, batch: Batch, state: Any = None) -> tuple[HeadOutput, EncoderOutput]:
        encoded = self.encoder(self.embed(batch.inputs), state)
        return self.head(encoded, batch), encoded


def build_model(architecture: Architecture, task: Task, config: RunConfig, hidden_size: int) -> BenchmarkModel:
    spec = task.input_spec()
    embedding = None
    if spec.vocab_size is not None:
        embedding_size = config.model.embedding_size or hidden_size
        embedding = nn.Embedding(spec.vocab_size, embedding_size)
        input_size = embedding_size
    elif spec.features is not None:
        input_size = spec.features
    else:
        raise BenchmarkError(f"task '{task.name}' declares neither a vocabulary nor input features")
    encoder = architecture.build(input_size, hidden_size, config.arch_options)
    declared = architecture.output_size(hidden_size)
    if encoder.output_size != declared:
        raise BenchmarkError(f"architecture '{architecture.name}' declares output size {declared} "
                             f"but its encoder has {encoder.output_size}: fix the plugin")
    head = task.build_head(encoder.output_size, embedding)
    return BenchmarkModel(embedding, encoder, head)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters; a tied weight counts once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


def hidden_size_for_budget(architecture: Architecture, task: Task, config: RunConfig, budget: int,
                           tolerance: float = 0.05) -> int:
    """The hidden size whose model has closest to `budget` parameters (built on the meta device,
    so nothing is allocated); raise if no size comes within `tolerance`."""
    def size(hidden: int) -> int:
        with torch.device("meta"):
            return count_parameters(build_model(architecture, task, config, hidden))

    low, high = 1, 1
    while size(high) < budget:
        low, high = high, high * 2
        if high > 1 << 16:
            raise BenchmarkError(f"no hidden size reaches {budget} parameters: lower --params")
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if size(middle) < budget else (low, middle)
    best = min((low, high), key=lambda hidden: abs(size(hidden) - budget))
    achieved = size(best)
    if abs(achieved - budget) > tolerance * budget:
        raise BenchmarkError(f"'{architecture.name}' on '{task.name}' cannot match {budget} "
                             f"parameters within {tolerance:.0%} (closest: {achieved} at hidden size "
                             f"{best}); choose a larger --params or set arch.hidden_size instead")
    return best
