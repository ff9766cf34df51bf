"""Conformance kit: does an encoder honour its architecture's declaration?

For plugin authors' own tests as much as ours:

    from rnnbench import check_architecture
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
    parallel_equals_recurrent, if declared (`Capabilities.parallel_form`): `forward` equals the
        step-by-step `forward_recurrent` (outputs at real steps, final, returned state) on a padded
        batch of mixed lengths, and equals itself run one step at a time and in chunks of 3 with
        the state carried.
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

from collections.abc import Callable
from typing import Any

from rnnbench.conformance.common import (FEATURES, GRADIENT_DRAWS, HIDDEN, PADDING, TOLERANCE,  # noqa: F401
                                         Check, ConformanceError, architecture_label, as_instance)
from rnnbench.conformance.grid import grid_checks
from rnnbench.conformance.sequence import sequence_checks
from rnnbench.conformance.tree import balanced_trees, random_trees, tree_checks  # noqa: F401
from rnnbench.core.contracts import Architecture

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
    instance = as_instance(architecture)
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
