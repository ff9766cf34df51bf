"""Statistics across tasks (rnnbench.reports.aggregate), against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from rnnbench.reports import aggregate


def test_normalise_puts_the_baseline_at_0_and_the_best_at_1_in_either_direction():
    assert list(aggregate.normalise(np.array([0.5, 1.0, 0.125]), 0.125, 1.0, "max")) == \
        pytest.approx([0.375 / 0.875, 1.0, 0.0])
    # perplexity (lower is better): baseline 700, best 100; 400 is halfway
    assert list(aggregate.normalise(np.array([400.0, 100.0, 1000.0]), 700.0, 100.0, "min")) == \
        pytest.approx([0.5, 1.0, -0.5])
    assert np.isnan(aggregate.normalise(np.array([0.2]), 0.5, 0.4, "max")).all()   # nothing beats it


def test_iqm_is_the_mean_of_the_middle_half():
    # 8 values, sorted -50, 1, ..., 6, 100: a quarter (2) trimmed from each end leaves 2, 3, 4, 5
    assert aggregate.iqm(np.array([100.0, 1, 2, 3, 4, 5, 6, -50])) == pytest.approx(3.5)
    assert aggregate.iqm(np.array([1.0, 2, 3, 4])) == pytest.approx(2.5)


def test_probability_of_improvement_by_hand():
    """Task a: X = (1, 3), Y = (2, 2): pairs 1>2 no, 1>2 no, 3>2 yes, 3>2 yes: 2/4 = 0.5.
    Task b: X = (5,), Y = (5,): a tie, 0.5. Task c only in X: left out. Mean 0.5.
    And X = (3, 4) against Y = (1, 2): every pair, 1.0; the reverse 0.0."""
    x = {"a": [1.0, 3.0], "b": [5.0], "c": [9.0]}
    y = {"a": [2.0, 2.0], "b": [5.0]}
    assert aggregate.probability_of_improvement(x, y) == pytest.approx(0.5)
    assert aggregate.probability_of_improvement({"a": [3.0, 4.0]}, {"a": [1.0, 2.0]}) == 1.0
    assert aggregate.probability_of_improvement({"a": [1.0, 2.0]}, {"a": [3.0, 4.0]}) == 0.0


def test_the_stratified_bootstrap_resamples_within_each_task():
    """Task a's runs are all 0, task b's all 1: any resample within tasks keeps half the pooled
    runs at 0 and half at 1 (of 4 + 4), so the pooled mean is exactly 0.5 in every resample; a
    bootstrap that mixed tasks would not be."""
    scores = {"a": np.zeros(4), "b": np.ones(4)}
    pooled_mean = lambda drawn: float(np.mean(np.concatenate(list(drawn.values()))))  # noqa: E731
    assert aggregate.stratified_bootstrap(scores, pooled_mean, resamples=200) == (0.5, 0.5)
    low, high = aggregate.stratified_bootstrap({"a": np.array([0.0, 1.0, 2.0, 3.0])}, resamples=500)
    assert 0.0 <= low < 1.5 < high <= 3.0


def test_a_performance_profile_is_the_share_of_runs_above_each_tau():
    profile = aggregate.performance_profile({"a": [0.0, 0.5], "b": [1.0, 0.25]}, np.array([0.0, 0.3, 1.0]))
    assert list(profile) == [0.75, 0.5, 0.0]
