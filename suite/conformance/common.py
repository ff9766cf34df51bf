"""What every check of the conformance kit shares: its error, sizes and tolerances, building an
encoder, comparing outputs and states, and the gradient-draw rule."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rnnbench.core.contracts import Architecture, Encoder, EncoderOutput
from rnnbench.core.errors import BenchmarkError
from rnnbench.core.state import state_tensors

FEATURES, HIDDEN = 5, 6
TOLERANCE = 1e-5
GRADIENT_DRAWS = 8       # the gradient must reach the first step in at least one of these draws
PADDING = 1e3            # what padded steps hold in the checks (a correct encoder never reads it)


class ConformanceError(AssertionError):
    """An encoder does not do what its architecture declares."""


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], None]


def architecture_label(architecture: type[Architecture] | Architecture, options: Any = None) -> str:
    """The architecture's registered name (its class name, marked unregistered, if it has none),
    with the options that differ from the defaults: 'deep_rnn[cell=gru, dropout=0.3]'."""
    cls = architecture if isinstance(architecture, type) else type(architecture)
    name = vars(cls).get("name") or f"{cls.__qualname__} (unregistered)"
    if options is None or not dataclasses.is_dataclass(options):
        return name
    try:
        defaults = cls.Options()
    except Exception:  # Options with required fields: show them all
        defaults = None
    changed = [f"{field.name}={getattr(options, field.name)}" for field in dataclasses.fields(options)
               if defaults is None or getattr(defaults, field.name, object()) != getattr(options, field.name)]
    return f"{name}[{', '.join(changed)}]" if changed else name


def close(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ConformanceError(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    if not torch.allclose(a, b, atol=TOLERANCE, rtol=1e-4, equal_nan=False):
        difference = (a - b).abs().max().item() if a.numel() else 0.0
        raise ConformanceError(f"{what}: values differ by up to {difference:.3g} (tolerance {TOLERANCE:g} "
                               f"+ 1e-4 x |value|)")


def close_state(a: Any, b: Any, what: str) -> None:
    try:
        first, second = state_tensors(a), state_tensors(b)
    except BenchmarkError as error:
        raise ConformanceError(f"{what}: {error}") from None
    if len(first) != len(second):
        raise ConformanceError(f"{what}: the states hold {len(first)} and {len(second)} tensors")
    for index, (x, y) in enumerate(zip(first, second)):
        close(x, y, what if len(first) == 1 else f"{what} (tensor {index} of the state)")


def as_instance(architecture: type[Architecture] | Architecture) -> Architecture:
    return architecture() if isinstance(architecture, type) else architecture


def build_encoder(architecture: Architecture, options: Any, seed: int = 0, input_size: int = FEATURES) -> Encoder:
    """The architecture's encoder at the kit's sizes, its weights drawn under `seed`, in eval mode."""
    torch.manual_seed(seed)
    encoder = architecture.build(input_size, HIDDEN, options if options is not None else architecture.Options())
    return encoder.eval()


def seeded_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)



def expect_output_size(encoder: Any, declared: int) -> None:
    """The built encoder's `output_size` is the one its architecture declares."""
    size = getattr(encoder, "output_size", None)
    if size != declared:
        raise ConformanceError(f"encoder.output_size is {size}, the architecture declares {declared} "
                               f"(Architecture.output_size({HIDDEN}))")

def expect_shape(tensor: Any, expected: tuple[int, ...], what: str, hint: str = "") -> None:
    if not isinstance(tensor, Tensor):
        raise ConformanceError(f"{what} is a {type(tensor).__name__}, expected a tensor of shape {expected}")
    if tuple(tensor.shape) != expected:
        verb = "have" if what.endswith("s") else "has"
        raise ConformanceError(f"{what} {verb} shape {tuple(tensor.shape)}, expected {expected}{hint}")


def unpack(result: Any) -> EncoderOutput:
    if not isinstance(result, tuple) or len(result) != 3:
        raise ConformanceError(f"the encoder returned a {type(result).__name__}, expected "
                               f"EncoderOutput(outputs, final, state)")
    return EncoderOutput(*result)


def gradient_draws(measure: Callable[[int], tuple[Tensor, Tensor]], output: str, first: str, last: str,
                    sizes: str) -> None:
    """Passes when, in at least one of GRADIENT_DRAWS draws, `measure(draw)` -> (gradient of `output`
    at the `first` input, at the `last` input) is non-zero at the first input (stopping there);
    every gradient measured must be finite."""
    largest_first, largest_last = 0.0, 0.0
    for draw in range(GRADIENT_DRAWS):
        at_first, at_last = measure(draw)
        if not (torch.isfinite(at_first).all() and torch.isfinite(at_last).all()):
            raise ConformanceError(f"the gradient of {output} is not finite (draw {draw + 1} of {GRADIENT_DRAWS})")
        if at_first.abs().sum() > 0:
            return
        largest_first = max(largest_first, at_first.abs().max().item())
        largest_last = max(largest_last, at_last.abs().max().item())
    raise ConformanceError(f"the gradient of {output} reaches {first} in none of {GRADIENT_DRAWS} draws (fresh "
                           f"weights and inputs each, {sizes}, hidden size {HIDDEN}; it must be non-zero in "
                           f"at least one): largest |gradient| at {first} {largest_first:.3g}, at {last} "
                           f"{largest_last:.3g}")
