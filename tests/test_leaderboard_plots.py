"""The published plots fit their data (rnnbench.reports.leaderboard_plots): ratio-scale metrics on
a log axis with intervals that cannot cross 0, bounded metrics clipped to their range, legends
beside the axes, and no plot of a single point or of parameter-matched sizes."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from rnnbench.reports import leaderboard_plots as plots


def test_a_ratio_scale_metric_is_summarised_on_the_log_scale():
    """Perplexities 100 and 1e6 (a diverging seed): the mean-based interval reaches far below 0;
    the geometric one is exp(mean(log x) -+ t * s / sqrt(n)), by hand below."""
    center, low, high = plots.center_and_interval(pd.Series([100.0, 1e6]), "perplexity")
    logs = [math.log(100.0), math.log(1e6)]
    mean, std = sum(logs) / 2, abs(logs[0] - logs[1]) / math.sqrt(2)
    half = 12.706204736174704 * std / math.sqrt(2)   # t(0.975, 1)
    assert center == pytest.approx(1e4) and low == pytest.approx(math.exp(mean - half)) and low > 0
    assert high == pytest.approx(math.exp(mean + half))
    mean_only, half_width = plots.mean_and_half_width(pd.Series([100.0, 1e6]))
    assert mean_only - half_width < 0   # what the plots drew before


def test_bounded_and_non_negative_metrics_keep_their_interval_in_range():
    _, low, high = plots.center_and_interval(pd.Series([0.95, 1.0, 0.99]), "accuracy")
    assert high == 1.0 and 0 < low < 0.95
    _, low, _ = plots.center_and_interval(pd.Series([0.001, 0.3]), "bpc")
    assert low == 0.0


def test_a_parameters_plot_is_drawn_only_when_the_sizes_differ():
    def points(sizes):
        return pd.DataFrame({"config_id": [f"c{i}" for i in range(len(sizes))], "parameters": sizes})

    assert not plots.parameters_plot_adds_something(points([50_000]))                # one point
    assert not plots.parameters_plot_adds_something(points([50_000, 50_900, 49_800]))  # matched budget
    assert plots.parameters_plot_adds_something(points([10_000, 50_000]))


def test_a_log_scale_plot_with_its_legend_beside_the_axes(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, "_save", lambda figure, output: drawn.append(figure) or output)
    history = pd.DataFrame({"architecture": ["rnn"] * 4 + ["lstm"] * 4, "run_id": list("aabbccdd"),
                            "step": [1, 2] * 4, "value": [4e11, 1e5, 3e11, 2e5, 300, 150, 310, 140]})
    plots.plot_learning_curves(history, "perplexity", "ptb", tmp_path / "curves.png")
    plots.plot_learning_curves(history.assign(value=history.value / 1e12), "accuracy", "copy", tmp_path / "a.png")
    (log_figure, linear_figure) = drawn
    for figure, scale in ((log_figure, "log"), (linear_figure, "linear")):
        axis, = figure.axes
        assert axis.get_yscale() == scale
        figure.canvas.draw()
        legend, frame = axis.get_legend().get_window_extent(), axis.get_window_extent()
        assert legend.x0 >= frame.x1   # beside the data, not over it
