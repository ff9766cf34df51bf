"""The conformance checks of sequence encoders (see `rnnbench.conformance.kit` for what each checks)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rnnbench.conformance.common import (FEATURES, HIDDEN, PADDING, Check, build_encoder, close, close_state,
                                         expect_output_size, expect_shape, gradient_draws, seeded_generator, unpack)
from rnnbench.core.contracts import Architecture, Capabilities, Encoder, EncoderOutput, SequenceBatch

def sequences(lengths: list[int], steps: int | None = None, seed: int = 1, padding: float = 0.0) -> SequenceBatch:
    steps = steps or max(lengths)
    values = torch.randn(len(lengths), steps, FEATURES, generator=seeded_generator(seed))
    lengths_tensor = torch.tensor(lengths)
    pad = torch.arange(steps).unsqueeze(0) >= lengths_tensor.unsqueeze(1)
    values[pad] = padding
    return SequenceBatch(values, lengths_tensor)


def item_alone(batch: SequenceBatch, item: int, steps: int | None = None) -> SequenceBatch:
    """Item `item` of a batch, alone, keeping its first `steps` steps (default: all, padding too)."""
    length = int(batch.lengths[item])
    return SequenceBatch(batch.values[item:item + 1, :steps], torch.tensor([length]))


@dataclass(frozen=True)
class SequenceSubject:
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

    @property
    def directions(self) -> int:
        return self.capabilities.directions

    @property
    def per_direction(self) -> int:
        return self.declared // self.directions

    def build(self, offset: int = 0) -> Encoder:
        return build_encoder(self.architecture, self.options, self.seed + offset)

    def inputs(self, lengths: list[int], steps: int | None = None, offset: int = 1,
               padding: float = PADDING) -> SequenceBatch:
        return sequences(lengths, steps, self.seed + offset, padding)

    def run(self, encoder: Encoder, batch: SequenceBatch, state: Any = None) -> EncoderOutput:
        """The encoder's output, its shapes checked against the declaration."""
        out = unpack(encoder(batch, state) if state is not None else encoder(batch))
        items, steps = batch.values.shape[:2]
        expect_shape(out.outputs, (items, steps, self.declared), "outputs",
                     f" (batch, steps, output_size {self.declared} as the architecture declares)")
        expect_shape(out.final, (items, self.directions, self.per_direction), "final",
                     f" (batch, directions, output_size / directions) for a "
                     f"{self.capabilities.state_layout} state")
        return out


def shapes(subject: SequenceSubject) -> None:
    encoder = subject.build()
    expect_output_size(encoder, subject.declared)
    with torch.no_grad():
        subject.run(encoder, subject.inputs([7, 4, 1]))


def batch_invariance(subject: SequenceSubject) -> None:
    encoder = subject.build()
    batch = subject.inputs([7, 4, 2, 5], steps=8)
    with torch.no_grad():
        together = subject.run(encoder, batch)
        for item, length in enumerate(batch.lengths.tolist()):
            alone = subject.run(encoder, item_alone(batch, item))
            close(together.outputs[item, :length], alone.outputs[0, :length],
                   f"the outputs of an item (length {length}) depend on the other items of its batch")
            close(together.final[item], alone.final[0],
                   f"the final state of an item (length {length}) depends on the other items of its batch")


def padding_invariance(subject: SequenceSubject) -> None:
    encoder = subject.build()
    batch = subject.inputs([7, 4, 2], steps=9)
    with torch.no_grad():
        for item, length in enumerate(batch.lengths.tolist()):
            padded = subject.run(encoder, item_alone(batch, item))
            unpadded = subject.run(encoder, item_alone(batch, item, steps=length))
            where = f"an item of length {length} padded to {batch.values.shape[1]} steps"
            close(padded.outputs[0, :length], unpadded.outputs[0],
                   f"padding leaks into the outputs of {where}")
            close(padded.final, unpadded.final, f"padding leaks into the final state of {where}")
            if subject.capabilities.carries_state:
                close_state(padded.state, unpadded.state, f"padding leaks into the returned state of {where}")


def final_is_last_step(subject: SequenceSubject) -> None:
    encoder = subject.build()
    batch = subject.inputs([7, 4, 2, 5], steps=8)
    with torch.no_grad():
        out = subject.run(encoder, batch)
    for item, length in enumerate(batch.lengths.tolist()):
        close(out.final[item, 0], out.outputs[item, length - 1, :subject.per_direction],
               f"final (the forward direction) is not the output at the last real step of an item of "
               f"length {length} (`pooling=last` reads final)")
        if subject.directions == 2:
            close(out.final[item, 1], out.outputs[item, 0, subject.per_direction:],
                   f"final[:, 1] (the backward direction) is not the backward half of the output at the "
                   f"first step of an item of length {length} (outputs are [forward; backward])")


def causality(subject: SequenceSubject) -> None:
    encoder = subject.build()
    base = subject.inputs([8, 8])
    with torch.no_grad():
        reference = subject.run(encoder, base).outputs
        for step in range(8):
            changed = base.values.clone()
            changed[:, step] += torch.randn(changed[:, step].shape, generator=seeded_generator(subject.seed + step))
            outputs = subject.run(encoder, SequenceBatch(changed, base.lengths)).outputs
            close(outputs[:, :step], reference[:, :step],
                   f"subject.declared causal, but changing step {step} changes outputs before it")


def carried_state(subject: SequenceSubject) -> None:
    encoder = subject.build()
    whole = subject.inputs([8, 8])
    with torch.no_grad():
        full = subject.run(encoder, whole)
        first = subject.run(encoder, SequenceBatch(whole.values[:, :5], torch.tensor([5, 5])))
        second = subject.run(encoder, SequenceBatch(whole.values[:, 5:], torch.tensor([3, 3])), first.state)
    close(torch.cat([first.outputs, second.outputs], dim=1), full.outputs,
           "subject.declared to carry state, but two halves with the state carried differ from the whole")
    close(second.final, full.final, "carried state: the final state of the halves differs from the whole")
    # items of mixed lengths: each chunk padded, the state carried from each item's last real step
    lengths, cut = [9, 7, 5], [5, 3, 2]
    values = torch.randn(3, 9, FEATURES, generator=seeded_generator(subject.seed + 3))
    chunks = []
    for part in range(2):
        parts = [values[i, :cut[i]] if part == 0 else values[i, cut[i]:lengths[i]] for i in range(3)]
        steps = max(len(p) for p in parts)
        chunk = torch.full((3, steps, FEATURES), PADDING)
        for i, p in enumerate(parts):
            chunk[i, :len(p)] = p
        chunks.append(SequenceBatch(chunk, torch.tensor([len(p) for p in parts])))
    with torch.no_grad():
        first = subject.run(encoder, chunks[0])
        second = subject.run(encoder, chunks[1], first.state)
        for i, (length, k) in enumerate(zip(lengths, cut)):
            alone = subject.run(encoder, SequenceBatch(values[i:i + 1, :length], torch.tensor([length])))
            what = (f"with padded chunks, an item of length {length} run as {k} + {length - k} steps "
                    f"with the state carried")
            close(first.outputs[i, :k], alone.outputs[0, :k], f"{what}: the first chunk's outputs differ")
            close(second.outputs[i, :length - k], alone.outputs[0, k:],
                   f"{what}: the second chunk's outputs differ from the whole (the state returned after "
                   f"a padded chunk is not the state at the item's last real step)")
            close(second.final[i], alone.final[0], f"{what}: the final state differs from the whole")


def gradient_reaches_first_step(subject: SequenceSubject) -> None:
    def measure(draw: int) -> tuple[Tensor, Tensor]:
        encoder = subject.build(1000 + draw).train()
        batch = subject.inputs([12] * 16, offset=2000 + draw)
        batch.values.requires_grad_(True)
        subject.run(encoder, batch).outputs[:, -1].sum().backward()
        grad = batch.values.grad if batch.values.grad is not None else torch.zeros_like(batch.values)
        return grad[:, 0], grad[:, -1]
    gradient_draws(measure, "the last step's output", "the first step's input", "the last step's input",
                    "16 items x 12 steps")


def determinism(subject: SequenceSubject) -> None:
    batch = subject.inputs([6, 3])
    with torch.no_grad():
        first = subject.run(subject.build(7), batch).outputs
        second = subject.run(subject.build(7), batch).outputs
    close(first, second, "two encoders built under the same seed give different outputs")


def parallel_equals_recurrent(subject: SequenceSubject) -> None:
    """The parallel path (`forward`) equals the step-by-step loop (`forward_recurrent`) on a
    padded batch of mixed lengths, and equals itself run one step at a time and in chunks of 3
    with the state carried between them."""
    encoder = subject.build()
    batch = subject.inputs([9, 6, 3], steps=9)
    with torch.no_grad():
        parallel = subject.run(encoder, batch)
        recurrent = unpack(encoder.forward_recurrent(batch))
        for item, length in enumerate(batch.lengths.tolist()):
            close(parallel.outputs[item, :length], recurrent.outputs[item, :length],
                  f"the parallel and step-by-step outputs of an item of length {length} differ")
        close(parallel.final, recurrent.final, "the parallel and step-by-step final states differ")
        close_state(parallel.state, recurrent.state, "the parallel and step-by-step returned states differ")
        whole = subject.inputs([8, 8], offset=4)
        full = subject.run(encoder, whole)
        for size in (1, 3):
            state, outputs = None, []
            for start in range(0, 8, size):
                part = whole.values[:, start:start + size]
                out = subject.run(encoder, SequenceBatch(part, torch.full((2,), part.shape[1])), state)
                state = out.state
                outputs.append(out.outputs)
            close(torch.cat(outputs, dim=1), full.outputs,
                  f"run in chunks of {size} step(s) with the state carried, the outputs differ from "
                  f"the whole sequence's (a chunk boundary loses or repeats part of the state)")
            close_state(state, full.state, f"run in chunks of {size} step(s), the final returned state "
                                           f"differs from the whole sequence's")


def sequence_checks(architecture: Architecture, options: Any = None, seed: int = 0) -> list[Check]:
    """The checks that apply to a sequence encoder, in the order the kit runs them."""
    subject = SequenceSubject(architecture, options, seed)
    caps = architecture.capabilities
    chosen = [shapes, batch_invariance, padding_invariance, final_is_last_step,
              *([causality] if caps.causal else []), *([carried_state] if caps.carries_state else []),
              *([parallel_equals_recurrent] if caps.parallel_form else []),
              gradient_reaches_first_step, determinism]
    return [Check(check.__name__, functools.partial(check, subject)) for check in chosen]
