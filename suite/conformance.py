"""Conformance kit: does an encoder honour its architecture's declaration?

For plugin authors' own tests as much as ours:

    from rnnbench.conformance import check_architecture
    def test_my_architecture():
        check_architecture(MyArchitecture)

or one pytest case per check with `conformance_checks(MyArchitecture)`. Each check raises
`ConformanceError` naming the architecture (by its registered name, with its options when they are
not the defaults), the check, and what it measured; an encoder that raises, or that returns
tensors of the wrong shape, fails the check with that message too (no traceback from deep inside a
matmul). Checks by declared structure, in the order `check_architecture` runs them:

sequence:
    shapes: `encoder.output_size` and the shapes of `outputs` (B, T, O) and `final` (B, D, O / D)
        match the declaration (every other check validates the shapes it gets as well).
    batch_invariance: an item's outputs and `final` do not depend on the other items of its batch
        (an item in a batch of mixed lengths equals the item run alone, padded the same).
    padding_invariance: an item's real steps, `final` and (if it carries state) returned state
        equal the item run alone without padding, whatever the padding holds.
    final_is_last_step: `final` is the output at each item's last real step (what `pooling=last`
        reads); for a bidirectional layout, whose outputs are [forward; backward], `final[:, 0]` is
        the forward half at the last real step and `final[:, 1]` the backward half at the first.
    causality, if declared: changing step t changes no output before t.
    carried_state, if declared: chunks run with the state carried equal the whole, for full-length
        items and for items of mixed lengths whose chunks are padded (the returned state must be
        the state at each item's last real step, not after the padding).
    gradient_reaches_first_step: the gradient of the last step's output reaches the first step's
        input in at least one of `GRADIENT_DRAWS` draws (encoder and inputs drawn afresh each time:
        dead ReLU units can block it in one draw; a detached or truncated path blocks it in all),
        and is finite in every draw.
    determinism: two encoders built under the same seed give the same outputs.
grid: shapes; raster_causality if declared (changing pixel (i, j) changes no output at (i, j) or
    before it in raster order); gradient_reaches_first_pixel (draws as above); determinism.
tree: shapes; batching_invariance (a tree's outputs do not depend on its batch-mates); final_is_root
    (`final` is the output at each root); gradient_reaches_leaves (draws as above); determinism.

Tolerance: values compare equal within `atol=TOLERANCE`, `rtol=1e-4`. `seed` (default 0) shifts
every seed the kit uses (weights and inputs), to run it over other draws.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rnnbench.contracts import Architecture, Encoder, EncoderOutput, GridBatch, SequenceBatch, TreeBatch

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


def _close(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ConformanceError(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    if not torch.allclose(a, b, atol=TOLERANCE, rtol=1e-4, equal_nan=False):
        difference = (a - b).abs().max().item() if a.numel() else 0.0
        raise ConformanceError(f"{what}: values differ by up to {difference:.3g} (tolerance {TOLERANCE:g} "
                               f"+ 1e-4 x |value|)")


def _state_tensors(state: Any) -> list[Tensor]:
    """The tensors of a carried state, whatever its nesting (tensor, tuples, lists, dicts)."""
    if state is None:
        return []
    if isinstance(state, Tensor):
        return [state]
    if isinstance(state, (tuple, list)):
        return [tensor for part in state for tensor in _state_tensors(part)]
    if isinstance(state, dict):
        return [tensor for key in sorted(state) for tensor in _state_tensors(state[key])]
    raise ConformanceError(f"the returned state is a {type(state).__name__}: the kit compares states "
                           f"made of tensors, tuples, lists and dicts")


def _close_state(a: Any, b: Any, what: str) -> None:
    first, second = _state_tensors(a), _state_tensors(b)
    if len(first) != len(second):
        raise ConformanceError(f"{what}: the states hold {len(first)} and {len(second)} tensors")
    for index, (x, y) in enumerate(zip(first, second)):
        _close(x, y, what if len(first) == 1 else f"{what} (tensor {index} of the state)")


def _architecture(architecture: type[Architecture] | Architecture) -> Architecture:
    return architecture() if isinstance(architecture, type) else architecture


def _encoder(architecture: Architecture, options: Any, seed: int = 0, input_size: int = FEATURES) -> Encoder:
    torch.manual_seed(seed)
    encoder = architecture.build(input_size, HIDDEN, options if options is not None else architecture.Options())
    return encoder.eval()


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)



def _expect_output_size(encoder: Any, declared: int) -> None:
    """The built encoder's `output_size` is the one its architecture declares."""
    size = getattr(encoder, "output_size", None)
    if size != declared:
        raise ConformanceError(f"encoder.output_size is {size}, the architecture declares {declared} "
                               f"(Architecture.output_size({HIDDEN}))")

def _expect_shape(tensor: Any, expected: tuple[int, ...], what: str, hint: str = "") -> None:
    if not isinstance(tensor, Tensor):
        raise ConformanceError(f"{what} is a {type(tensor).__name__}, expected a tensor of shape {expected}")
    if tuple(tensor.shape) != expected:
        verb = "have" if what.endswith("s") else "has"
        raise ConformanceError(f"{what} {verb} shape {tuple(tensor.shape)}, expected {expected}{hint}")


def _unpack(result: Any) -> EncoderOutput:
    if not isinstance(result, tuple) or len(result) != 3:
        raise ConformanceError(f"the encoder returned a {type(result).__name__}, expected "
                               f"EncoderOutput(outputs, final, state)")
    return EncoderOutput(*result)


# --------------------------------------------------------------------------- sequences


def _sequences(lengths: list[int], steps: int | None = None, seed: int = 1, padding: float = 0.0) -> SequenceBatch:
    steps = steps or max(lengths)
    values = torch.randn(len(lengths), steps, FEATURES, generator=_generator(seed))
    lengths_tensor = torch.tensor(lengths)
    pad = torch.arange(steps).unsqueeze(0) >= lengths_tensor.unsqueeze(1)
    values[pad] = padding
    return SequenceBatch(values, lengths_tensor)


def _item(batch: SequenceBatch, item: int, steps: int | None = None) -> SequenceBatch:
    """Item `item` of a batch, alone, keeping its first `steps` steps (default: all, padding too)."""
    length = int(batch.lengths[item])
    return SequenceBatch(batch.values[item:item + 1, :steps], torch.tensor([length]))


def sequence_checks(architecture: Architecture, options: Any = None, seed: int = 0) -> list[Check]:
    caps = architecture.capabilities
    declared = architecture.output_size(HIDDEN)
    directions = caps.directions
    per_direction = declared // directions

    def run(encoder: Encoder, batch: SequenceBatch, state: Any = None) -> EncoderOutput:
        """The encoder's output, its shapes checked against the declaration."""
        out = _unpack(encoder(batch, state) if state is not None else encoder(batch))
        items, steps = batch.values.shape[:2]
        _expect_shape(out.outputs, (items, steps, declared), "outputs",
                      f" (batch, steps, output_size {declared} as the architecture declares)")
        _expect_shape(out.final, (items, directions, per_direction), "final",
                      f" (batch, directions, output_size / directions) for a {caps.state_layout} state")
        return out

    def build(offset: int = 0) -> Encoder:
        return _encoder(architecture, options, seed + offset)

    def inputs(lengths: list[int], steps: int | None = None, offset: int = 1, padding: float = PADDING) -> SequenceBatch:
        return _sequences(lengths, steps, seed + offset, padding)

    def shapes() -> None:
        encoder = build()
        _expect_output_size(encoder, declared)
        with torch.no_grad():
            run(encoder, inputs([7, 4, 1]))

    def batch_invariance() -> None:
        encoder = build()
        batch = inputs([7, 4, 2, 5], steps=8)
        with torch.no_grad():
            together = run(encoder, batch)
            for item, length in enumerate(batch.lengths.tolist()):
                alone = run(encoder, _item(batch, item))
                _close(together.outputs[item, :length], alone.outputs[0, :length],
                       f"the outputs of an item (length {length}) depend on the other items of its batch")
                _close(together.final[item], alone.final[0],
                       f"the final state of an item (length {length}) depends on the other items of its batch")

    def padding_invariance() -> None:
        encoder = build()
        batch = inputs([7, 4, 2], steps=9)
        with torch.no_grad():
            for item, length in enumerate(batch.lengths.tolist()):
                padded = run(encoder, _item(batch, item))
                unpadded = run(encoder, _item(batch, item, steps=length))
                where = f"an item of length {length} padded to {batch.values.shape[1]} steps"
                _close(padded.outputs[0, :length], unpadded.outputs[0],
                       f"padding leaks into the outputs of {where}")
                _close(padded.final, unpadded.final, f"padding leaks into the final state of {where}")
                if caps.carries_state:
                    _close_state(padded.state, unpadded.state, f"padding leaks into the returned state of {where}")

    def final_is_last_step() -> None:
        encoder = build()
        batch = inputs([7, 4, 2, 5], steps=8)
        with torch.no_grad():
            out = run(encoder, batch)
        for item, length in enumerate(batch.lengths.tolist()):
            _close(out.final[item, 0], out.outputs[item, length - 1, :per_direction],
                   f"final (the forward direction) is not the output at the last real step of an item of "
                   f"length {length} (`pooling=last` reads final)")
            if directions == 2:
                _close(out.final[item, 1], out.outputs[item, 0, per_direction:],
                       f"final[:, 1] (the backward direction) is not the backward half of the output at the "
                       f"first step of an item of length {length} (outputs are [forward; backward])")

    def causality() -> None:
        encoder = build()
        base = inputs([8, 8])
        with torch.no_grad():
            reference = run(encoder, base).outputs
            for step in range(8):
                changed = base.values.clone()
                changed[:, step] += torch.randn(changed[:, step].shape, generator=_generator(seed + step))
                outputs = run(encoder, SequenceBatch(changed, base.lengths)).outputs
                _close(outputs[:, :step], reference[:, :step],
                       f"declared causal, but changing step {step} changes outputs before it")

    def carried_state() -> None:
        encoder = build()
        whole = inputs([8, 8])
        with torch.no_grad():
            full = run(encoder, whole)
            first = run(encoder, SequenceBatch(whole.values[:, :5], torch.tensor([5, 5])))
            second = run(encoder, SequenceBatch(whole.values[:, 5:], torch.tensor([3, 3])), first.state)
        _close(torch.cat([first.outputs, second.outputs], dim=1), full.outputs,
               "declared to carry state, but two halves with the state carried differ from the whole")
        _close(second.final, full.final, "carried state: the final state of the halves differs from the whole")
        # items of mixed lengths: each chunk padded, the state carried from each item's last real step
        lengths, cut = [9, 7, 5], [5, 3, 2]
        values = torch.randn(3, 9, FEATURES, generator=_generator(seed + 3))
        chunks = []
        for part in range(2):
            parts = [values[i, :cut[i]] if part == 0 else values[i, cut[i]:lengths[i]] for i in range(3)]
            steps = max(len(p) for p in parts)
            chunk = torch.full((3, steps, FEATURES), PADDING)
            for i, p in enumerate(parts):
                chunk[i, :len(p)] = p
            chunks.append(SequenceBatch(chunk, torch.tensor([len(p) for p in parts])))
        with torch.no_grad():
            first = run(encoder, chunks[0])
            second = run(encoder, chunks[1], first.state)
            for i, (length, k) in enumerate(zip(lengths, cut)):
                alone = run(encoder, SequenceBatch(values[i:i + 1, :length], torch.tensor([length])))
                what = (f"with padded chunks, an item of length {length} run as {k} + {length - k} steps "
                        f"with the state carried")
                _close(first.outputs[i, :k], alone.outputs[0, :k], f"{what}: the first chunk's outputs differ")
                _close(second.outputs[i, :length - k], alone.outputs[0, k:],
                       f"{what}: the second chunk's outputs differ from the whole (the state returned after "
                       f"a padded chunk is not the state at the item's last real step)")
                _close(second.final[i], alone.final[0], f"{what}: the final state differs from the whole")

    def gradient_reaches_first_step() -> None:
        def measure(draw: int) -> tuple[Tensor, Tensor]:
            encoder = build(1000 + draw).train()
            batch = inputs([12] * 16, offset=2000 + draw)
            batch.values.requires_grad_(True)
            run(encoder, batch).outputs[:, -1].sum().backward()
            grad = batch.values.grad if batch.values.grad is not None else torch.zeros_like(batch.values)
            return grad[:, 0], grad[:, -1]
        _gradient_draws(measure, "the last step's output", "the first step's input", "the last step's input",
                        "16 items x 12 steps")

    def determinism() -> None:
        batch = inputs([6, 3])
        with torch.no_grad():
            first = run(build(7), batch).outputs
            second = run(build(7), batch).outputs
        _close(first, second, "two encoders built under the same seed give different outputs")

    checks = [Check("shapes", shapes), Check("batch_invariance", batch_invariance),
              Check("padding_invariance", padding_invariance), Check("final_is_last_step", final_is_last_step)]
    if caps.causal:
        checks.append(Check("causality", causality))
    if caps.carries_state:
        checks.append(Check("carried_state", carried_state))
    checks += [Check("gradient_reaches_first_step", gradient_reaches_first_step),
               Check("determinism", determinism)]
    return checks


def _gradient_draws(measure: Callable[[int], tuple[Tensor, Tensor]], output: str, first: str, last: str,
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


# --------------------------------------------------------------------------- grids

CHANNELS, HEIGHT, WIDTH = 1, 5, 4


def _grid(seed: int = 1) -> GridBatch:
    return GridBatch(torch.rand(2, CHANNELS, HEIGHT, WIDTH, generator=_generator(seed)))


def grid_checks(architecture: Architecture, options: Any = None, seed: int = 0) -> list[Check]:
    caps = architecture.capabilities
    declared = architecture.output_size(HIDDEN)

    def build(offset: int = 0) -> Encoder:
        return _encoder(architecture, options, seed + offset, input_size=CHANNELS)

    def grid(offset: int = 1) -> GridBatch:
        return _grid(seed + offset)

    def run(encoder: Encoder, batch: GridBatch) -> EncoderOutput:
        out = _unpack(encoder(batch))
        items = batch.values.shape[0]
        _expect_shape(out.outputs, (items, declared, HEIGHT, WIDTH), "outputs",
                      f" (batch, output_size {declared} as the architecture declares, height, width)")
        _expect_shape(out.final, (items, caps.directions, declared // caps.directions), "final",
                      " (batch, directions, output_size / directions)")
        return out

    def shapes() -> None:
        encoder = build()
        _expect_output_size(encoder, declared)
        with torch.no_grad():
            run(encoder, grid())

    def raster_causality() -> None:
        encoder = build()
        base = grid()
        with torch.no_grad():
            reference = run(encoder, base).outputs.flatten(2)
            for position in range(HEIGHT * WIDTH):
                row, column = divmod(position, WIDTH)
                changed = base.values.clone()
                changed[:, :, row, column] = 1.0 - changed[:, :, row, column] + 0.5
                outputs = run(encoder, GridBatch(changed)).outputs.flatten(2)
                _close(outputs[:, :, :position + 1], reference[:, :, :position + 1],
                       f"declared causal, but changing pixel ({row}, {column}) changes the output at "
                       f"that pixel or before it in raster order")

    def gradient() -> None:
        def measure(draw: int) -> tuple[Tensor, Tensor]:
            encoder = build(1000 + draw).train()
            batch = grid(2000 + draw)
            batch.values.requires_grad_(True)
            run(encoder, batch).outputs[..., -1, -1].sum().backward()
            grad = batch.values.grad if batch.values.grad is not None else torch.zeros_like(batch.values)
            return grad[..., 0, 0], grad[..., -1, -1]
        _gradient_draws(measure, "the last pixel's output", "the first pixel", "the last pixel",
                        f"2 images of {HEIGHT} x {WIDTH}")

    def determinism() -> None:
        with torch.no_grad():
            _close(run(build(7), grid()).outputs, run(build(7), grid()).outputs,
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


def tree_checks(architecture: Architecture, options: Any = None, seed: int = 0) -> list[Check]:
    declared = architecture.output_size(HIDDEN)

    def build(offset: int = 0) -> Encoder:
        return _encoder(architecture, options, seed + offset)

    def run(encoder: Encoder, batch: TreeBatch) -> EncoderOutput:
        out = _unpack(encoder(batch))
        _expect_shape(out.outputs, (batch.values.shape[0], declared), "outputs",
                      f" (nodes, output_size {declared} as the architecture declares), one row per node")
        _expect_shape(out.final, (batch.batch_size, 1, declared), "final", " (trees, 1, output_size)")
        return out

    def shapes() -> None:
        encoder = build()
        _expect_output_size(encoder, declared)
        with torch.no_grad():
            run(encoder, balanced_trees([5, 3, 1], seed=seed + 1))

    def batching_invariance() -> None:
        encoder = build()
        with torch.no_grad():
            together = run(encoder, balanced_trees([5, 3], seed=seed + 2)).final
            alone = run(encoder, balanced_trees([5], seed=seed + 2)).final
        _close(together[0], alone[0], "a tree's root state depends on the other trees of its batch")

    def final_is_root() -> None:
        batch = random_trees([6, 3, 1, 4], seed=seed + 3)
        with torch.no_grad():
            out = run(build(), batch)
        _close(out.final[:, 0], out.outputs[batch.roots], "final is not the output at each tree's root")

    def gradient() -> None:
        def measure(draw: int) -> tuple[Tensor, Tensor]:
            encoder = build(1000 + draw).train()
            batch = balanced_trees([6], seed=seed + 2000 + draw)
            batch.values.requires_grad_(True)
            run(encoder, batch).final.sum().backward()
            grad = batch.values.grad if batch.values.grad is not None else torch.zeros_like(batch.values)
            leaves = batch.left < 0
            # the leaf the gradient reaches least: every leaf must be reached
            weakest = grad[leaves].abs().sum(dim=1).min()
            return weakest, grad[batch.roots]
        _gradient_draws(measure, "the root", "every leaf", "the root's own input", "one tree of 6 leaves")

    def determinism() -> None:
        with torch.no_grad():
            _close(run(build(7), balanced_trees([4], seed=seed + 1)).final,
                   run(build(7), balanced_trees([4], seed=seed + 1)).final,
                   "two encoders built under the same seed give different outputs")

    return [Check("shapes", shapes), Check("batching_invariance", batching_invariance),
            Check("final_is_root", final_is_root), Check("gradient_reaches_leaves", gradient),
            Check("determinism", determinism)]


# --------------------------------------------------------------------------- entry points

_BY_STRUCTURE = {"sequence": sequence_checks, "grid": grid_checks, "tree": tree_checks}


def _guarded(label: str, name: str, run: Callable[[], None]) -> Callable[[], None]:
    """`run`, its failures (a ConformanceError, or anything the encoder raised) as one
    ConformanceError naming the architecture and the check."""
    def guarded() -> None:
        try:
            run()
        except ConformanceError as error:
            raise ConformanceError(f"{label} fails {name}: {error}") from None
        except Exception as error:  # a broken encoder: its error, not the kit's traceback
            raise ConformanceError(f"{label} fails {name}: the encoder raised "
                                   f"{type(error).__name__}: {error}") from error
    return guarded


def conformance_checks(architecture: type[Architecture] | Architecture, options: Any = None,
                       seed: int = 0) -> list[Check]:
    """Every check that applies to the architecture's declared structures and capabilities; each
    raises ConformanceError('<name> fails <structure>:<check>: <what it measured>')."""
    instance = _architecture(architecture)
    label = architecture_label(architecture, options)
    checks = []
    for structure in instance.capabilities.structures:
        for check in _BY_STRUCTURE[structure](instance, options, seed):
            name = f"{structure}:{check.name}"
            checks.append(Check(name, _guarded(label, name, check.run)))
    return checks


def check_architecture(architecture: type[Architecture] | Architecture, options: Any = None,
                       seed: int = 0) -> None:
    """Run every applicable check; raise ConformanceError naming the first that fails."""
    for check in conformance_checks(architecture, options, seed):
        check.run()
