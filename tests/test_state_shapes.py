"""One walker over carried state (`rnnbench.core.state`): a state held as a tensor, a tuple, a
list, a dict or a NamedTuple passes the conformance kit, trains through truncated BPTT (the runner
cuts it from the graph between batches) and is reordered by beam search's row selection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest
import torch
from torch import Tensor, nn

from rnnbench import (Architecture, Capabilities, Encoder, EncoderOutput, SequenceBatch,
                      check_architecture, register_architecture)
from rnnbench.core.state import detach_state, map_state, state_tensors
from rnnbench.toolkit.decoding import batch_dimensions, select_state
from rnnbench.training.runner import run

SHAPES = ("tensor", "tuple", "list", "dict", "namedtuple")


class HiddenAndSum(NamedTuple):
    hidden: Tensor
    total: Tensor


def _pack(shape: str, hidden: Tensor, total: Tensor) -> Any:
    if shape == "tensor":
        return torch.stack([hidden, total])
    if shape == "tuple":
        return (hidden, total)
    if shape == "list":
        return [hidden, [total]]
    if shape == "dict":
        return {"total": total, "hidden": hidden}
    return HiddenAndSum(hidden, total)


def _unpack(shape: str, state: Any) -> tuple[Tensor, Tensor]:
    if shape == "tensor":
        return state[0], state[1]
    if shape == "list":
        return state[0], state[1][0]
    if shape == "dict":
        return state["hidden"], state["total"]
    return state[0], state[1]


class ShapedStateEncoder(Encoder):
    """An Elman recurrence h_t = tanh(W x_t + U h_{t-1}) with a running sum of h beside it, its
    carried state packed in one of SHAPES."""

    def __init__(self, input_size: int, hidden_size: int, shape: str) -> None:
        super().__init__()
        self.cell, self.shape, self.output_size = nn.RNNCell(input_size, hidden_size), shape, hidden_size

    def forward(self, inputs: SequenceBatch, state: Any = None) -> EncoderOutput:
        items, steps, _ = inputs.values.shape
        if state is None:
            hidden = total = inputs.values.new_zeros(items, self.output_size)
        else:
            hidden, total = _unpack(self.shape, state)
        mask = inputs.mask()
        outputs = []
        for step in range(steps):
            real = mask[:, step].unsqueeze(1)
            hidden = torch.where(real, self.cell(inputs.values[:, step], hidden), hidden)
            total = torch.where(real, total + hidden, total)
            outputs.append(hidden)
        last = (inputs.lengths - 1).clamp(min=0)
        stacked = torch.stack(outputs, dim=1)
        final = stacked[torch.arange(items), last].unsqueeze(1)
        return EncoderOutput(stacked, final, _pack(self.shape, hidden, total))


@register_architecture("test-state-shapes")
class ShapedState(Architecture):
    capabilities = Capabilities(causal=True, carries_state=True, structures=("sequence",))

    @dataclass
    class Options:
        shape: str = "tensor"

    def build(self, input_size: int, hidden_size: int, options: Options) -> Encoder:
        return ShapedStateEncoder(input_size, hidden_size, options.shape)


@pytest.mark.parametrize("shape", SHAPES)
def test_every_state_shape_passes_the_kit_and_trains_through_truncated_bptt(shape, tmp_path):
    check_architecture(ShapedState, ShapedState.Options(shape=shape))
    settings = {"arch.shape": shape, "task.train_steps": "300", "task.val_steps": "100",
                "task.test_steps": "100", "task.washout": "5", "task.bptt": "20",
                "trainer.batch_size": "2", "trainer.max_steps": "6", "trainer.val_every_steps": "6",
                "arch.hidden_size": "4"}
    result = run("test-state-shapes", "narma10", settings, store=tmp_path / "r.sqlite",
                 progress=False, check=False)
    assert result.status == "completed"


@pytest.mark.parametrize("shape", SHAPES)
def test_the_walker_keeps_the_structure_and_reorders_rows(shape):
    hidden = torch.arange(6.0).reshape(3, 2).requires_grad_(True)
    state = _pack(shape, hidden * 1, hidden * 10)
    detached = detach_state(state)
    assert type(detached) is type(state)
    assert all(not tensor.requires_grad for tensor in state_tensors(detached))
    assert [t.tolist() for t in state_tensors(map_state(lambda t: t + 1, state))] == \
        [(t + 1).tolist() for t in state_tensors(state)]
    larger = _pack(shape, torch.zeros(5, 2), torch.zeros(5, 2))
    dims = batch_dimensions(state, larger)
    picked = select_state(detached, dims, torch.tensor([2, 0]))
    assert type(picked) is type(state)
    picked_hidden, _ = _unpack(shape, picked)
    assert picked_hidden.tolist() == [[4.0, 5.0], [0.0, 1.0]]
