"""Conformance kit: does an encoder honour its architecture's declaration?

For plugin authors' own tests as much as ours:

    from rnnbench.conformance import check_architecture
    def test_my_architecture():
        check_architecture(MyArchitecture)

or one pytest case per check with `conformance_checks(MyArchitecture)`. Each check raises
`ConformanceError` saying what broke. Checks by declared structure:

sequence: output shapes and declared output size; padding invariance (a padded item's real steps
    equal the item run alone, whatever the padding holds); causality if declared (changing step t
    changes no output before t); carried state if declared (two halves with the state carried
    equal the whole); the gradient of the last step reaches the first; determinism under a seed.
grid: output shapes; causality in raster order if declared (changing pixel (i, j) changes no output
    at (i, j) or before it); gradient; determinism.
tree: output shapes; batching invariance (a tree's outputs do not depend on its batch-mates);
    gradient reaches the leaves; determinism.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rnnbench.contracts import Architecture, Encoder, GridBatch, SequenceBatch, TreeBatch

FEATURES, HIDDEN = 5, 6
TOLERANCE = 1e-5


class ConformanceError(AssertionError):
    """An encoder does not do what its architecture declares."""


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], None]


def _close(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ConformanceError(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    if not torch.allclose(a, b, atol=TOLERANCE, rtol=1e-4):
        raise ConformanceError(f"{what}: values differ by up to {(a - b).abs().max().item():.3g}")


def _architecture(architecture: type[Architecture] | Architecture) -> Architecture:
    return architecture() if isinstance(architecture, type) else architecture


def _encoder(architecture: Architecture, options: Any, seed: int = 0, input_size: int = FEATURES) -> Encoder:
    torch.manual_seed(seed)
    encoder = architecture.build(input_size, HIDDEN, options if options is not None else architecture.Options())
    return encoder.eval()


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- sequences


def _sequences(lengths: list[int], steps: int | None = None, seed: int = 1, padding: float = 0.0) -> SequenceBatch:
    steps = steps or max(lengths)
    values = torch.randn(len(lengths), steps, FEATURES, generator=_generator(seed))
    lengths_tensor = torch.tensor(lengths)
    pad = torch.arange(steps).unsqueeze(0) >= lengths_tensor.unsqueeze(1)
    values[pad] = padding
    return SequenceBatch(values, lengths_tensor)


def sequence_checks(architecture: Architecture, options: Any = None) -> list[Check]:
    caps = architecture.capabilities
    declared = architecture.output_size(HIDDEN)

    def shapes() -> None:
        encoder = _encoder(architecture, options)
        if encoder.output_size != declared:
            raise ConformanceError(f"encoder.output_size is {encoder.output_size}, the architecture "
                                   f"declares {declared}")
        out = encoder(_sequences([7, 4, 1]))
        if tuple(out.outputs.shape) != (3, 7, declared):
            raise ConformanceError(f"outputs have shape {tuple(out.outputs.shape)}, expected (3, 7, {declared})")
        expected_final = (3, caps.directions, declared // caps.directions)
        if tuple(out.final.shape) != expected_final:
            raise ConformanceError(f"final has shape {tuple(out.final.shape)}, expected {expected_final} "
                                   f"(batch, directions, hidden) for a {caps.state_layout} state")

    def padding_invariance() -> None:
        encoder = _encoder(architecture, options)
        lengths = [7, 4, 2]
        with torch.no_grad():
            padded = encoder(_sequences(lengths, padding=1e3))
            for item, length in enumerate(lengths):
                alone_batch = _sequences(lengths)
                alone = SequenceBatch(alone_batch.values[item:item + 1, :length], torch.tensor([length]))
                single = encoder(alone)
                _close(padded.outputs[item, :length], single.outputs[0],
                       f"padding leaks into the outputs of an item of length {length}")
                _close(padded.final[item], single.final[0],
                       f"padding leaks into the final state of an item of length {length}")

    def causality() -> None:
        encoder = _encoder(architecture, options)
        base = _sequences([8, 8])
        with torch.no_grad():
            reference = encoder(base).outputs
            for step in range(8):
                changed = base.values.clone()
                changed[:, step] += torch.randn(changed[:, step].shape, generator=_generator(step))
                outputs = encoder(SequenceBatch(changed, base.lengths)).outputs
                _close(outputs[:, :step], reference[:, :step],
                       f"declared causal, but changing step {step} changes outputs before it")

    def carried_state() -> None:
        encoder = _encoder(architecture, options)
        whole = _sequences([8, 8])
        with torch.no_grad():
            full = encoder(whole)
            first = encoder(SequenceBatch(whole.values[:, :5], torch.tensor([5, 5])))
            second = encoder(SequenceBatch(whole.values[:, 5:], torch.tensor([3, 3])), first.state)
        _close(torch.cat([first.outputs, second.outputs], dim=1), full.outputs,
               "declared to carry state, but two halves with the state carried differ from the whole")
        _close(second.final, full.final, "carried state: final state of the halves differs from the whole")

    def gradient_reaches_first_step() -> None:
        encoder = _encoder(architecture, options).train()
        batch = _sequences([12, 12])
        batch.values.requires_grad_(True)
        encoder(batch).outputs[:, -1].sum().backward()
        grad = batch.values.grad
        if grad is None or not torch.isfinite(grad).all() or grad[:, 0].abs().sum() == 0:
            raise ConformanceError("the gradient of the last step's output does not reach the first step")

    def determinism() -> None:
        batch = _sequences([6, 3])
        with torch.no_grad():
            first = _encoder(architecture, options, seed=7)(batch).outputs
            second = _encoder(architecture, options, seed=7)(batch).outputs
        _close(first, second, "two encoders built under the same seed give different outputs")

    checks = [Check("shapes", shapes), Check("padding_invariance", padding_invariance)]
    if caps.causal:
        checks.append(Check("causality", causality))
    if caps.carries_state:
        checks.append(Check("carried_state", carried_state))
    checks += [Check("gradient_reaches_first_step", gradient_reaches_first_step),
               Check("determinism", determinism)]
    return checks


# --------------------------------------------------------------------------- grids

CHANNELS, HEIGHT, WIDTH = 1, 5, 4


def _grid(seed: int = 1) -> GridBatch:
    return GridBatch(torch.rand(2, CHANNELS, HEIGHT, WIDTH, generator=_generator(seed)))


def grid_checks(architecture: Architecture, options: Any = None) -> list[Check]:
    caps = architecture.capabilities
    declared = architecture.output_size(HIDDEN)

    def build() -> Encoder:
        return _encoder(architecture, options, input_size=CHANNELS)

    def shapes() -> None:
        out = build()(_grid())
        if tuple(out.outputs.shape) != (2, declared, HEIGHT, WIDTH):
            raise ConformanceError(f"outputs have shape {tuple(out.outputs.shape)}, expected "
                                   f"(2, {declared}, {HEIGHT}, {WIDTH})")

    def raster_causality() -> None:
        encoder = build()
        base = _grid()
        with torch.no_grad():
            reference = encoder(base).outputs.flatten(2)
            for position in range(HEIGHT * WIDTH):
                row, column = divmod(position, WIDTH)
                changed = base.values.clone()
                changed[:, :, row, column] = 1.0 - changed[:, :, row, column] + 0.5
                outputs = encoder(GridBatch(changed)).outputs.flatten(2)
                _close(outputs[:, :, :position + 1], reference[:, :, :position + 1],
                       f"declared causal, but changing pixel ({row}, {column}) changes the output at "
                       f"that pixel or before it in raster order")

    def gradient() -> None:
        encoder = build().train()
        batch = _grid()
        batch.values.requires_grad_(True)
        encoder(batch).outputs[..., -1, -1].sum().backward()
        if batch.values.grad is None or batch.values.grad[..., 0, 0].abs().sum() == 0:
            raise ConformanceError("the gradient of the last pixel's output does not reach the first pixel")

    def determinism() -> None:
        with torch.no_grad():
            _close(_encoder(architecture, options, 7, CHANNELS)(_grid()).outputs,
                   _encoder(architecture, options, 7, CHANNELS)(_grid()).outputs,
                   "two encoders built under the same seed give different outputs")

    checks = [Check("shapes", shapes)]
    if caps.causal:
        checks.append(Check("raster_causality", raster_causality))
    return checks + [Check("gradient_reaches_first_pixel", gradient), Check("determinism", determinism)]


# --------------------------------------------------------------------------- trees


def balanced_trees(leaf_counts: list[int], seed: int = 1) -> TreeBatch:
    """A forest of balanced binary trees over random leaf features, in the TreeBatch order."""
    values, left, right, height, roots, tree_index = [], [], [], [], [], []
    generator = _generator(seed)
    for tree, count in enumerate(leaf_counts):
        level = []
        for _ in range(count):
            level.append(len(left))
            values.append(torch.randn(FEATURES, generator=generator))
            left.append(-1), right.append(-1), height.append(0), tree_index.append(tree)
        while len(level) > 1:
            merged = []
            for index in range(0, len(level) - 1, 2):
                a, b = level[index], level[index + 1]
                merged.append(len(left))
                values.append(torch.zeros(FEATURES))
                left.append(a), right.append(b), height.append(1 + max(height[a], height[b]))
                tree_index.append(tree)
            if len(level) % 2:
                merged.append(level[-1])
            level = merged
        roots.append(level[0])
    order = sorted(range(len(left)), key=lambda node: height[node])
    position = {node: rank for rank, node in enumerate(order)}

    def remap(index: int) -> int:
        return -1 if index < 0 else position[index]

    return TreeBatch(values=torch.stack([values[n] for n in order]),
                     left=torch.tensor([remap(left[n]) for n in order]),
                     right=torch.tensor([remap(right[n]) for n in order]),
                     height=torch.tensor([height[n] for n in order]),
                     roots=torch.tensor([position[r] for r in roots]),
                     tree_index=torch.tensor([tree_index[n] for n in order]))


def random_trees(leaf_counts: list[int], seed: int = 1, features: int = FEATURES) -> TreeBatch:
    """A forest of random binary trees (every span split at a uniformly drawn point, so shapes
    range from balanced to chains, like parse trees) over random leaf features, in TreeBatch order."""
    generator = _generator(seed)
    left: list[int] = []
    right: list[int] = []
    height: list[int] = []
    tree_index: list[int] = []

    def build(leaves: int, tree: int) -> int:
        if leaves == 1:
            children = (-1, -1)
        else:
            split = int(torch.randint(1, leaves, (1,), generator=generator))
            children = (build(split, tree), build(leaves - split, tree))
        left.append(children[0]), right.append(children[1]), tree_index.append(tree)
        height.append(0 if leaves == 1 else 1 + max(height[children[0]], height[children[1]]))
        return len(left) - 1

    roots = [build(count, tree) for tree, count in enumerate(leaf_counts)]
    order = sorted(range(len(left)), key=lambda node: height[node])
    position = {node: rank for rank, node in enumerate(order)}
    values = torch.randn(len(left), features, generator=generator)
    values[torch.tensor([height[node] > 0 for node in order])] = 0.0
    return TreeBatch(values=values,
                     left=torch.tensor([position[left[n]] if left[n] >= 0 else -1 for n in order]),
                     right=torch.tensor([position[right[n]] if right[n] >= 0 else -1 for n in order]),
                     height=torch.tensor([height[n] for n in order]),
                     roots=torch.tensor([position[r] for r in roots]),
                     tree_index=torch.tensor([tree_index[n] for n in order]))


def tree_checks(architecture: Architecture, options: Any = None) -> list[Check]:
    declared = architecture.output_size(HIDDEN)

    def shapes() -> None:
        batch = balanced_trees([5, 3, 1])
        out = _encoder(architecture, options)(batch)
        if tuple(out.outputs.shape) != (batch.values.shape[0], declared):
            raise ConformanceError(f"outputs have shape {tuple(out.outputs.shape)}, expected "
                                   f"({batch.values.shape[0]}, {declared}), one row per node")
        if tuple(out.final.shape) != (3, 1, declared):
            raise ConformanceError(f"final has shape {tuple(out.final.shape)}, expected (3, 1, {declared})")

    def batching_invariance() -> None:
        encoder = _encoder(architecture, options)
        with torch.no_grad():
            together = encoder(balanced_trees([5, 3], seed=2)).final
            alone = encoder(balanced_trees([5], seed=2)).final
        _close(together[0], alone[0], "a tree's root state depends on the other trees of its batch")

    def gradient() -> None:
        encoder = _encoder(architecture, options).train()
        batch = balanced_trees([6])
        batch.values.requires_grad_(True)
        encoder(batch).final.sum().backward()
        leaves = batch.left < 0
        if batch.values.grad is None or (batch.values.grad[leaves].abs().sum(dim=1) == 0).any():
            raise ConformanceError("the root's gradient does not reach every leaf")

    def determinism() -> None:
        with torch.no_grad():
            _close(_encoder(architecture, options, 7)(balanced_trees([4])).final,
                   _encoder(architecture, options, 7)(balanced_trees([4])).final,
                   "two encoders built under the same seed give different outputs")

    return [Check("shapes", shapes), Check("batching_invariance", batching_invariance),
            Check("gradient_reaches_leaves", gradient), Check("determinism", determinism)]


# --------------------------------------------------------------------------- entry points

_BY_STRUCTURE = {"sequence": sequence_checks, "grid": grid_checks, "tree": tree_checks}


def conformance_checks(architecture: type[Architecture] | Architecture, options: Any = None) -> list[Check]:
    """Every check that applies to the architecture's declared structures and capabilities."""
    instance = _architecture(architecture)
    checks = []
    for structure in instance.capabilities.structures:
        checks += [Check(f"{structure}:{check.name}", check.run)
                   for check in _BY_STRUCTURE[structure](instance, options)]
    return checks


def check_architecture(architecture: type[Architecture] | Architecture, options: Any = None) -> None:
    """Run every applicable check; raise ConformanceError naming the first that fails."""
    name = getattr(architecture, "name", type(architecture).__name__)
    for check in conformance_checks(architecture, options):
        try:
            check.run()
        except ConformanceError as error:
            raise ConformanceError(f"{name} fails {check.name}: {error}") from None
