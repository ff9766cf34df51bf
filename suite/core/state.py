"""The one walker over an encoder's carried state.

A carried state (`EncoderOutput.carry`) is None, a tensor, or tensors nested in tuples (NamedTuples
included), lists and dicts. The runner cuts it from the graph between batches (truncated BPTT),
the conformance kit compares two of them, and beam search reorders one by batch row: all three
walk it here, so a state that one accepts the others accept too.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import Tensor

from rnnbench.core.errors import BenchmarkError

STATE_SHAPES = "None, a tensor, or tensors nested in tuples (NamedTuples too), lists and dicts"


def state_tensors(state: Any) -> list[Tensor]:
    """The tensors of `state` in a fixed order (dicts by sorted key)."""
    if state is None:
        return []
    if isinstance(state, Tensor):
        return [state]
    if isinstance(state, (tuple, list)):
        return [tensor for part in state for tensor in state_tensors(part)]
    if isinstance(state, dict):
        return [tensor for key in sorted(state) for tensor in state_tensors(state[key])]
    raise BenchmarkError(f"a carried state of type {type(state).__name__} cannot be walked: the "
                         f"encoder's state must be {STATE_SHAPES}")


def rebuild_state(state: Any, tensors: list[Tensor]) -> Any:
    """`state` with its tensors replaced by `tensors`, given in `state_tensors` order."""
    remaining = list(tensors)
    rebuilt = _rebuild(state, remaining)
    if remaining:
        raise ValueError(f"{len(remaining)} tensors left over rebuilding a state")
    return rebuilt


def map_state(function: Callable[[Tensor], Tensor], state: Any) -> Any:
    """`state` with `function` applied to each of its tensors, its structure kept."""
    return rebuild_state(state, [function(tensor) for tensor in state_tensors(state)])


def detach_state(state: Any) -> Any:
    """The carried state cut from the graph (truncated BPTT)."""
    return map_state(Tensor.detach, state)


def _rebuild(state: Any, remaining: list[Tensor]) -> Any:
    if state is None:
        return None
    if isinstance(state, Tensor):
        return remaining.pop(0)
    if isinstance(state, dict):
        rebuilt = {key: _rebuild(state[key], remaining) for key in sorted(state)}
        return type(state)((key, rebuilt[key]) for key in state)
    parts = [_rebuild(part, remaining) for part in state]
    return type(state)(*parts) if hasattr(state, "_fields") else type(state)(parts)
