"""What a setting's value means, declared with its type: `Annotated[int, Positive]`.

The configuration layer (`rnnbench.training.config`) checks every value against its declaration when a run is
resolved, so every option of every plugin gets the same checks and the same one-line errors:

    depth: Annotated[int, AtLeast(1)] = 2
    dropout: Annotated[float, Probability] = 0.0
    scale: Annotated[float, Positive] | None = None      # None passes; a number must be > 0
    slope: Annotated[float, AllowNonFinite] = 1.0         # opts out of the finiteness check

Every float must be finite (no nan, inf, or overflow such as 1e400) unless it is declared
`AllowNonFinite`. Ints are counts (`10k` reads as 10000). Plugins import these names from
`rnnbench.core.contracts`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rnnbench.core.errors import BenchmarkError


class Constraint:
    """A condition on a value; `violation` says what is wrong, or None when the value is fine."""

    def violation(self, value: Any) -> str | None:  # pragma: no cover
        raise NotImplementedError

    def accepts(self, value: Any) -> bool:
        return self.violation(value) is None


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Range(Constraint):
    """low <= value <= high (either end optional; `low_open` / `high_open` make it strict)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    wording: str | None = None

    def describe(self) -> str:
        if self.wording:
            return self.wording
        if self.low is not None and self.high is not None:
            if not (self.low_open or self.high_open):
                return f"between {_number(self.low)} and {_number(self.high)}"
            low = f"greater than {_number(self.low)}" if self.low_open else f"at least {_number(self.low)}"
            high = f"less than {_number(self.high)}" if self.high_open else f"at most {_number(self.high)}"
            interval = f"{'(' if self.low_open else '['}{_number(self.low)}, {_number(self.high)}{')' if self.high_open else ']'}"
            return f"in {interval}: {low}, {high}"
        if self.low is not None:
            return f"greater than {_number(self.low)}" if self.low_open else f"at least {_number(self.low)}"
        if self.high is not None:
            return f"less than {_number(self.high)}" if self.high_open else f"at most {_number(self.high)}"
        return "any number"

    def violation(self, value: Any) -> str | None:
        if isinstance(value, float) and math.isnan(value):
            return f"must be {self.describe()}"
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return f"must be {self.describe()}"
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return f"must be {self.describe()}"
        return None


def AtLeast(low: float) -> Range:  # noqa: N802 (reads as a type annotation)
    return Range(low=low)


def AtMost(high: float) -> Range:  # noqa: N802
    return Range(high=high)


def Between(low: float, high: float) -> Range:  # noqa: N802
    """low <= value <= high."""
    return Range(low=low, high=high)


Positive = Range(low=0, low_open=True, wording="positive (greater than 0)")
NonNegative = Range(low=0, wording="non-negative (0 or more)")
Probability = Range(low=0, high=1, wording="a probability, between 0 and 1")
# a fraction that cannot be 0: a leak rate, a density
UnitInterval = Range(low=0, high=1, low_open=True, wording="in (0, 1]: greater than 0, at most 1")
SEED_RANGE = Between(0, 2**32 - 1)   # numpy's bound, through Lightning's seed_everything


@dataclass(frozen=True)
class _Odd(Constraint):
    def violation(self, value: Any) -> str | None:
        return None if value % 2 == 1 else "must be odd"


@dataclass(frozen=True)
class _NonEmpty(Constraint):
    def violation(self, value: Any) -> str | None:
        return None if str(value).strip() else "must not be empty"


Odd = _Odd()
NonEmpty = _NonEmpty()


class _AllowNonFinite(Constraint):
    """Marker: this float may be nan or infinite (every other float must be finite)."""

    def violation(self, value: Any) -> str | None:
        return None

    def __repr__(self) -> str:
        return "AllowNonFinite"


AllowNonFinite = _AllowNonFinite()


def check(name: str, value: Any, *constraints: Constraint, finite: bool | None = None,
          hint: str = "") -> Any:
    """Return `value` if it meets every constraint, else raise a BenchmarkError naming `name`,
    the rule, the value and (`hint`) the fix. Floats must be finite unless `finite` is False or
    `AllowNonFinite` is among the constraints."""
    if finite is None:
        finite = AllowNonFinite not in constraints
    if finite and isinstance(value, float) and not math.isfinite(value):
        raise BenchmarkError(f"{name} must be a finite number, got {value}{hint}")
    for constraint in constraints:
        problem = constraint.violation(value)
        if problem:
            raise BenchmarkError(f"{name} {problem}, got {_shown(value)}{hint}")
    return value


def _shown(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value)


def check_seed(seed: Any, name: str = "--seed") -> int:
    """A seed numpy (through Lightning's seed_everything) accepts: 0 .. 2**32 - 1."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise BenchmarkError(f"{name} expects an integer, got '{seed}': e.g. {name} 0")
    return check(name, seed, SEED_RANGE, hint=f": e.g. {name} 0")
