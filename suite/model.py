"""The composed model: input embedding/projection + an architecture's encoder + a task's head,
and the choice of hidden size that matches a parameter budget."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
from torch import nn

from rnnbench.config import RunConfig
from rnnbench.contracts import Architecture, Batch, EncoderOutput, GridBatch, Inputs, Task
from rnnbench.errors import BenchmarkError
from rnnbench.heads import HeadOutput


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


def _input_size(task: Task, config: RunConfig, hidden_size: int) -> tuple[int, int | None]:
    """(encoder input size, vocabulary size or None for feature inputs)."""
    spec = task.input_spec()
    if spec.vocab_size is not None:
        return config.model.embedding_size or hidden_size, spec.vocab_size
    if spec.features is not None:
        return spec.features, None
    raise BenchmarkError(f"task '{task.name}' declares neither a vocabulary nor input features")


def build_model(architecture: Architecture, task: Task, config: RunConfig, hidden_size: int) -> BenchmarkModel:
    input_size, vocab_size = _input_size(task, config, hidden_size)
    embedding = nn.Embedding(vocab_size, input_size) if vocab_size is not None else None
    encoder = architecture.build(input_size, hidden_size, config.arch_options)
    declared = architecture.output_size(hidden_size)
    if encoder.output_size != declared:
        raise BenchmarkError(f"architecture '{architecture.name}' declares output size {declared} "
                             f"but its encoder has {encoder.output_size}: fix the plugin")
    head = task.build_head(encoder.output_size, embedding)
    return BenchmarkModel(embedding, encoder, head)


BYTES_PER_PARAMETER = 16  # float32 weight, its gradient, and Adam's two moments


def memory_bytes() -> tuple[int, str]:
    """(bytes, what) of the memory a run on this machine can use: the GPU's, else the RAM."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory, "GPU memory"
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "RAM"


def check_model_fits(architecture: Architecture, task: Task, config: RunConfig, hidden_size: int) -> int:
    """Estimate the model's size without building it (`Architecture.estimate_parameters`), and
    refuse, with the estimate, a model whose weights, gradients and optimiser state would not fit
    in memory. Returns the estimated number of parameters and buffers."""
    input_size, vocab_size = _input_size(task, config, hidden_size)
    encoder = architecture.estimate_parameters(input_size, hidden_size, config.arch_options)
    with torch.device("meta"):
        embedding = nn.Embedding(vocab_size, input_size) if vocab_size is not None else None
        head = task.build_head(architecture.output_size(hidden_size), embedding)
        total = encoder + sum(p.numel() for p in {id(p): p for module in (embedding, head)
                                                  if module is not None
                                                  for p in module.parameters()}.values())
    needed = total * BYTES_PER_PARAMETER
    available, what = memory_bytes()
    if needed > available:
        raise BenchmarkError(
            f"the model would have about {total:.3g} parameters, about {needed / 2**30:,.1f} GiB "
            f"with gradients and optimiser state, more than the {available / 2**30:,.0f} GiB of "
            f"{what} here: lower arch.hidden_size, arch.num_layers or arch.params")
    return total


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
