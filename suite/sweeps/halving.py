"""Successive halving (Jamieson & Talwalkar 2016; one bracket of Li et al. 2018's Hyperband):
tuning that spends most of its budget on the promising trials.

Every trial first trains at the smallest budget; the best 1 / eta of each rung (by the task's
primary validation metric) train again, as new runs, at eta times the steps, up to the sweep's
full step budget at the last rung. With 27 trials, 3 rungs and eta 3: 27 runs at 1/9 of the
steps, 9 at 1/3, 3 at the full budget, 9 full budgets' worth in all instead of 27. The best
configuration is the best of the last rung. Rungs are synchronous (a rung is chosen when the
one below has finished), so the choice is the same however many workers run it, and after a
restart it is made again from the store to the same runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from rnnbench.sweeps.spec import Halving


def rung_sizes(trials: int, halving: Halving) -> list[int]:
    """How many trials train at each rung: `trials`, then 1 / eta of the rung below (at least 1)."""
    sizes = [trials]
    for _ in range(halving.rungs - 1):
        sizes.append(max(1, sizes[-1] // halving.eta))
    return sizes


def rung_steps(full_steps: int, halving: Halving) -> list[int]:
    """The training steps of each rung: the full budget at the last, divided by eta per rung
    below it (at least 1 step)."""
    return [max(1, round(full_steps / halving.eta ** (halving.rungs - 1 - rung))) for rung in range(halving.rungs)]


def survivors(scores: Mapping[int, float | None], keep: int, direction: str) -> list[int]:
    """The `keep` best trial numbers of a rung by their validation score (`direction` "min" or
    "max"); a trial that failed, diverged or scored nothing (None) ranks last, ties go to the
    earlier trial."""
    def rank(number: int) -> tuple[bool, float, int]:
        score = scores[number]
        if score is None:
            return (True, 0.0, number)
        return (False, score if direction == "min" else -score, number)
    return sorted(scores, key=rank)[:keep]
