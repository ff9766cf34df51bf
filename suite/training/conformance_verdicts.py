"""Conformance verdicts as runs use them: plugins are checked before their results count.

The verdict of an architecture with its resolved options is the conformance kit's
(`rnnbench.conformance.kit`, well under a second), computed once and kept in the results store's
`conformance` table, keyed by

    architecture (registered name), version, options_hash (the resolved `arch.` options),
    source_hash (the source of the plugin's modules: those of the architecture class and its bases,
    and of every module class its encoder is built from, outside torch and rnnbench's own
    framework), kit_hash (the kit's own source and the torch version),

so an edited plugin, a bumped version, other options or a new kit are checked again. A plugin whose
source cannot be read (no .py file) is checked on every run and its verdict is not kept.

`rnnbench run` and `rnnbench sweep` refuse an architecture that fails (`require`), with the kit's
message; `--no-check` runs it anyway and the run's environment records `conformance: skipped
(--no-check)` (otherwise `passed`). `rnnbench check ARCH [--set arch.x=...]` runs the kit alone.

Kept out of `rnnbench.conformance.kit`, which plugins import: this module reads the configuration and
the registry, which plugins must not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch

from rnnbench.conformance import common, grid, kit, sequence, tree
from rnnbench.training.config import check_value, declared_types, parse_value
from rnnbench.conformance.kit import ConformanceError, architecture_label, check_architecture, conformance_checks
from rnnbench.core.contracts import Architecture
from rnnbench.core.errors import BenchmarkError, did_you_mean

SKIPPED = "skipped (--no-check)"
# modules whose source is the framework's, not the plugin's (the kit's source is in kit_hash)
_FRAMEWORK = ("torch", "builtins", "abc", "typing", "rnnbench.")
_PLUGIN_PACKAGES = ("rnnbench.plugins.",)


@dataclass(frozen=True)
class Verdict:
    """The kit's verdict on `architecture` (registered name) at `version` with the options hashed
    as `options_hash`; `message` is 'passed' or the kit's message; `cached`: read from the store."""

    architecture: str
    version: int
    options_hash: str
    source_hash: str | None
    kit_hash: str
    passed: bool
    message: str
    checked_at: float
    cached: bool = False


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def options_hash(options: Any) -> str:
    """A short hash of the resolved options (a dataclass), e.g. of `RunConfig.arch_options`."""
    values = dataclasses.asdict(options) if dataclasses.is_dataclass(options) else {"options": repr(options)}
    return _digest(json.dumps(values, sort_keys=True, default=repr))


def kit_hash() -> str:
    """The conformance kit's source (every module of rnnbench.conformance) and the torch version:
    a new kit checks everything again."""
    return _digest(*(inspect.getsource(module) for module in (common, sequence, grid, tree, kit)),
                   torch.__version__)


def source_hash(architecture: type[Architecture], options: Any = None) -> str | None:
    """A short hash of the source of the plugin's modules (see the module docstring), or None when
    one of them has no readable source."""
    names = {klass.__module__ for klass in architecture.__mro__}
    try:
        with torch.random.fork_rng(devices=[]):
            encoder = architecture().build(common.FEATURES, common.HIDDEN,
                                           options if options is not None else architecture.Options())
        names |= {klass.__module__ for module in encoder.modules() for klass in type(module).__mro__}
    except Exception:  # an encoder that cannot be built: the kit says so; the classes still count
        pass
    names = {name for name in names if name.startswith(_PLUGIN_PACKAGES) or not name.startswith(_FRAMEWORK)}
    sources = []
    for name in sorted(names):
        try:
            sources.append(f"{name}\n{inspect.getsource(sys.modules[name])}")
        except (KeyError, OSError, TypeError):
            return None
    return _digest(*sources)


MAX_KIT_PARAMETERS = 10_000_000  # the kit's encoders have 6 hidden units: more is an option gone wild


def _refuse_too_large(architecture: type[Architecture], options: Any) -> None:
    """Estimate the kit's encoder before building it (`Architecture.estimate_parameters`), so that
    an option like `arch.num_layers=1e9` is refused at once instead of hanging the check."""
    size = architecture().estimate_parameters(common.FEATURES, common.HIDDEN, options)
    if size > MAX_KIT_PARAMETERS:
        raise BenchmarkError(f"'{architecture_label(architecture, options)}' would have about "
                             f"{size:.3g} parameters even at the kit's {common.HIDDEN} hidden "
                             f"units: lower its options (e.g. arch.num_layers)")


def verdict(architecture: type[Architecture], options: Any = None, store: Any = None) -> Verdict:
    """The kit's verdict on `architecture` with `options` (None: the defaults): from `store` (a
    `rnnbench.store.ResultStore`) if it holds one for the same key, else computed (seconds at
    most) and recorded there. Leaves torch's random state as it was."""
    options = options if options is not None else architecture.Options()
    _refuse_too_large(architecture, options)
    key = (architecture_label(architecture), architecture.version, options_hash(options),
           source_hash(architecture, options), kit_hash())
    keep = store is not None and key[3] is not None
    if keep:
        found = store.conformance_verdict(*key)
        if found is not None:
            passed, message, checked_at = found
            return Verdict(*key, passed, message, checked_at, cached=True)
    with torch.random.fork_rng(devices=[]):
        try:
            check_architecture(architecture, options)
            passed, message = True, "passed"
        except ConformanceError as error:
            passed, message = False, str(error)
    checked_at = time.time()
    if keep:
        store.record_conformance(*key, passed=passed, message=message, checked_at=checked_at)
    return Verdict(*key, passed, message, checked_at)


def require(architecture: type[Architecture], options: Any = None, store: Any = None) -> Verdict:
    """`verdict`, raising a BenchmarkError with the kit's message when the architecture fails."""
    result = verdict(architecture, options, store)
    if not result.passed:
        raise BenchmarkError(f"the conformance kit refuses it: {result.message}. Fix the plugin (and bump "
                             f"its version if its outputs change), check it with `rnnbench check "
                             f"{result.architecture}`, or pass --no-check to run it anyway (recorded "
                             f"with the run)")
    return result


def architecture_options(architecture: type[Architecture], overrides: dict[str, str] | None = None) -> Any:
    """The architecture's Options with `arch.NAME=VALUE` overrides parsed and checked as a run's."""
    options = architecture.Options()
    hints = declared_types(type(options))
    for key, value in (overrides or {}).items():
        namespace, _, field = key.partition(".")
        if namespace != "arch" or field not in hints:
            known = [f"arch.{name}" for name in hints]
            raise BenchmarkError(f"'{key}' is not an option of '{architecture.name}'.{did_you_mean(key, known)} "
                                 f"`rnnbench check` takes the architecture's own options: "
                                 f"{', '.join(known) or 'it has none'}")
        setattr(options, field, parse_value(key, value, hints[field]))
    for field, annotation in hints.items():
        check_value(f"arch.{field}", getattr(options, field), annotation)
    return options


def check_report(architecture: type[Architecture], options: Any = None) -> tuple[str, bool]:
    """Every check of the kit run on its own (`rnnbench check`): a report of one line per check,
    and whether all passed. Leaves torch's random state as it was."""
    _refuse_too_large(architecture, options if options is not None else architecture.Options())
    label = architecture_label(architecture, options)
    lines, passed = [], True
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        checks = conformance_checks(architecture, options)
        for check in checks:
            try:
                check.run()
                lines.append(f"  ok    {check.name}")
            except ConformanceError as error:
                passed = False
                lines.append(f"  FAIL  {check.name}: {str(error).split(': ', 1)[-1]}")
    outcome = "passes" if passed else "fails"
    head = (f"{label} (version {architecture.version}) {outcome} the conformance kit: "
            f"{sum(line.startswith('  ok') for line in lines)} of {len(checks)} checks passed "
            f"in {time.perf_counter() - started:.2f} s")
    return "\n".join([head, *lines]), passed
