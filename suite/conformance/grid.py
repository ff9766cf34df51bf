"""The conformance checks of grid (image) encoders (see `rnnbench.conformance.kit`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rnnbench.conformance.common import (HIDDEN, Check, build_encoder, close, expect_output_size, expect_shape,
                                         seeded_generator, gradient_draws, unpack)
from rnnbench.core.contracts import Architecture, Capabilities, Encoder, EncoderOutput, GridBatch

CHANNELS, HEIGHT, WIDTH = 1, 5, 4


def random_grid(seed: int = 1) -> GridBatch:
    return GridBatch(torch.rand(2, CHANNELS, HEIGHT, WIDTH, generator=seeded_generator(seed)))


@dataclass(frozen=True)
class GridSubject:
    """The architecture under test, with what its checks build, feed and compare."""

    architecture: Architecture
    options: Any
    seed: int

    @property
    def capabilities(self) -> Capabilities:
        return self.architecture.capabilities

    @property
    def declared(self) -> int:
        return self.architecture.output_size(HIDDEN)

    def build(self, offset: int = 0) -> Encoder:
        return build_encoder(self.architecture, self.options, self.seed + offset, input_size=CHANNELS)

    def grid(self, offset: int = 1) -> GridBatch:
        return random_grid(self.seed + offset)

    def run(self, encoder: Encoder, batch: GridBatch) -> EncoderOutput:
        out = unpack(encoder(batch))
        items, caps = batch.values.shape[0], self.capabilities
        expect_shape(out.outputs, (items, self.declared, HEIGHT, WIDTH), "outputs",
                     f" (batch, output_size {self.declared} as the architecture declares, height, width)")
        expect_shape(out.final, (items, caps.directions, self.declared // caps.directions), "final",
                     " (batch, directions, output_size / directions)")
        return out


def shapes(subject: GridSubject) -> None:
    encoder = subject.build()
    expect_output_size(encoder, subject.declared)
    with torch.no_grad():
        subject.run(encoder, subject.grid())


def raster_causality(subject: GridSubject) -> None:
    encoder = subject.build()
    base = subject.grid()
    with torch.no_grad():
        reference = subject.run(encoder, base).outputs.flatten(2)
        for position in range(HEIGHT * WIDTH):
            row, column = divmod(position, WIDTH)
            changed = base.values.clone()
            changed[:, :, row, column] = 1.0 - changed[:, :, row, column] + 0.5
            outputs = subject.run(encoder, GridBatch(changed)).outputs.flatten(2)
            close(outputs[:, :, :position + 1], reference[:, :, :position + 1],
                   f"subject.declared causal, but changing pixel ({row}, {column}) changes the output at "
                   f"that pixel or before it in raster order")


def gradient_reaches_first_pixel(subject: GridSubject) -> None:
    def measure(draw: int) -> tuple[Tensor, Tensor]:
        encoder = subject.build(1000 + draw).train()
        batch = subject.grid(2000 + draw)
        batch.values.requires_grad_(True)
        subject.run(encoder, batch).outputs[..., -1, -1].sum().backward()
        grad = batch.values.grad if batch.values.grad is not None else torch.zeros_like(batch.values)
        return grad[..., 0, 0], grad[..., -1, -1]
    gradient_draws(measure, "the last pixel's output", "the first pixel", "the last pixel",
                    f"2 images of {HEIGHT} x {WIDTH}")


def determinism(subject: GridSubject) -> None:
    with torch.no_grad():
        close(subject.run(subject.build(7), subject.grid()).outputs, subject.run(subject.build(7), subject.grid()).outputs,
              "two encoders built under the same seed give different outputs")


def grid_checks(architecture: Architecture, options: Any = None, seed: int = 0) -> list[Check]:
    """The checks that apply to a grid encoder, in the order the kit runs them."""
    subject = GridSubject(architecture, options, seed)
    chosen = [shapes, *([raster_causality] if architecture.capabilities.causal else []),
              gradient_reaches_first_pixel, determinism]
    return [Check(check.__name__, functools.partial(check, subject)) for check in chosen]
