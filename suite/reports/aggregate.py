"""Statistics across tasks, after Agarwal et al. 2021 ("Deep reinforcement learning at the edge of
the statistical precipice", the `rliable` estimators), written with numpy and scipy:

- normalised score: per task, 0 at the task's strongest trivial baseline and 1 at the best
  row's mean, whatever the metric's direction (`normalise`);
- interquartile mean (IQM): the mean of the middle 50% of all runs' normalised scores, pooled
  over tasks (`scipy.stats.trim_mean(x, 0.25)`): robust to a few outlying runs, and less noisy
  than the median with a handful of runs per task;
- stratified bootstrap interval: resample the runs of each task with replacement, separately per
  task (the strata), recompute the statistic; the 2.5 and 97.5 percentiles of 2,000 resamples;
- probability of improvement P(X > Y): per task the probability that a run of X scores above a
  run of Y (the Mann-Whitney U statistic over n x m pairs, a tie counting 1/2), averaged over
  the tasks both ran;
- performance profile: the share of runs, over all tasks, whose normalised score exceeds tau,
  for tau on a grid.

Scores here are always "higher is better" (normalised); a task's direction is handled by
`normalise`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from scipy import stats

RESAMPLES = 2_000
SEED = 0
CONFIDENCE = 0.95

TaskScores = Mapping[str, np.ndarray]   # task -> one score per run (seed)


def normalise(scores: np.ndarray, baseline: float, best: float, direction: str) -> np.ndarray:
    """Scores mapped so that the baseline is 0 and the best is 1 (higher is better either way):
    (x - baseline) / (best - baseline), which flips a "min" metric's sign by itself. NaN where
    the best is no better than the baseline (the task separates nothing)."""
    scores = np.asarray(scores, dtype=float)
    span = best - baseline
    better = span > 0 if direction == "max" else span < 0
    if not better:
        return np.full_like(scores, np.nan)
    return (scores - baseline) / span


def iqm(values: np.ndarray) -> float:
    """The interquartile mean: the mean of the values between the 25th and 75th percentiles
    (a quarter trimmed from each end)."""
    values = np.asarray(values, dtype=float).ravel()
    values = values[~np.isnan(values)]
    return float(stats.trim_mean(values, 0.25)) if len(values) else float("nan")


def pooled_iqm(scores: TaskScores) -> float:
    """The IQM of every run of every task, pooled."""
    return iqm(np.concatenate([np.asarray(values, dtype=float) for values in scores.values()]))


def stratified_bootstrap(scores: TaskScores, statistic: Callable[[TaskScores], float] = pooled_iqm,
                         resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float]:
    """The 95% percentile interval of `statistic` over resamples that draw, within each task, as
    many runs as it has, with replacement."""
    rng = np.random.default_rng(seed)
    arrays = {task: np.asarray(values, dtype=float) for task, values in scores.items() if len(values)}
    values = []
    for _ in range(resamples):
        drawn = {task: runs[rng.integers(0, len(runs), len(runs))] for task, runs in arrays.items()}
        values.append(statistic(drawn))
    low, high = np.nanpercentile(values, [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)])
    return float(low), float(high)


def probability_of_improvement(x: TaskScores, y: TaskScores) -> float:
    """P(X > Y): the mean over the tasks both have of P(a run of X > a run of Y), ties 1/2."""
    shared = [task for task in x if task in y and len(x[task]) and len(y[task])]
    if not shared:
        return float("nan")
    per_task = []
    for task in shared:
        a, b = np.asarray(x[task], dtype=float), np.asarray(y[task], dtype=float)
        greater = (a[:, None] > b[None, :]).sum() + 0.5 * (a[:, None] == b[None, :]).sum()
        per_task.append(greater / (len(a) * len(b)))
    return float(np.mean(per_task))


def performance_profile(scores: TaskScores, taus: np.ndarray) -> np.ndarray:
    """The share of all runs (pooled over tasks) whose score exceeds each tau."""
    pooled = np.concatenate([np.asarray(values, dtype=float) for values in scores.values()])
    pooled = pooled[~np.isnan(pooled)]
    if not len(pooled):
        return np.full(len(taus), np.nan)
    return np.array([(pooled > tau).mean() for tau in taus])
