"""The plots of a published leaderboard, drawn from tables of runs (never from a model):

- the primary metric against trained parameters, one point per configuration with its 95% interval;
- the primary metric against a task's curve setting (e.g. sequence length), mean and band per
  architecture;
- learning curves: the validation metric against the training step, mean and band over seeds;
- training throughput by architecture.

Bands and bars are Student-t 95% intervals of the mean over seeds (none for a single seed). A
ratio-scale metric (perplexity, mean squared error, NRMSE) is drawn on a log axis, its mean and
interval computed on the log scale (a geometric mean: the interval can never reach below 0); a
bounded one (accuracy, F1, exact match) has its interval clipped to [0, 1]. Legends sit beside the
axes, never over the data. A plot that would show a single point or bar is not drawn (the table
says it all), nor a parameters plot whose configurations all have about the same size (a
parameter-matched sweep). Figures are written as palette PNGs (`rnnbench.reports.figures`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from rnnbench.reports.figures import pyplot, save_png
from rnnbench.reports.leaderboard import RATIO_SCALE, confidence_interval


LOG_SCALE = RATIO_SCALE   # ratio-scale metrics: compared as ratios
BOUNDED = frozenset({"accuracy", "f1", "exact_match"})     # in [0, 1]
MATCHED_SIZES = 1.25   # configurations within this factor of each other's size: one size, no plot


def mean_and_half_width(values: pd.Series) -> tuple[float, float]:
    """(mean, half width of the leaderboard's 95% interval of the mean); the width is 0 for one value."""
    values = values.dropna().astype(float)
    if len(values) < 2:
        return (float(values.iloc[0]) if len(values) else math.nan), 0.0
    low, high = confidence_interval(values.to_numpy())
    return float(values.mean()), (high - low) / 2


def center_and_interval(values: pd.Series, metric: str) -> tuple[float, float, float]:
    """(center, low, high) of `values` for plotting `metric`: on a log scale the geometric mean and
    the exponentiated interval of the log values; else the mean and its interval, clipped to the
    metric's range (0 to 1 for a bounded metric, from 0 for one never below it)."""
    values = values.dropna().astype(float)
    if metric in LOG_SCALE and len(values) and (values > 0).all():
        center, half = mean_and_half_width(np.log(values))
        return math.exp(center), math.exp(center - half), math.exp(center + half)
    center, half = mean_and_half_width(values)
    low, high = center - half, center + half
    if len(values) and (values >= 0).all():
        low = max(low, 0.0)
    if metric in BOUNDED:
        high = min(high, 1.0)
    return center, low, high


def _scale_axis(axis, metric: str) -> None:
    if metric in LOG_SCALE:
        axis.set_yscale("log")


def _legend_beside(axis) -> None:
    """The legend to the right of the axes: it never covers a point."""
    axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _save(figure, output: str | Path) -> Path:
    figure.tight_layout()
    return save_png(figure, output, dpi=110)


def parameters_plot_adds_something(points: pd.DataFrame) -> bool:
    """More than one configuration, of sizes that differ (a parameter-matched sweep stacks every
    point at one size)."""
    sizes = points.groupby("config_id").parameters.mean().dropna()
    return len(sizes) > 1 and sizes.min() > 0 and sizes.max() / sizes.min() > MATCHED_SIZES


def plot_metric_against_parameters(points: pd.DataFrame, metric: str, title: str, output: str | Path) -> Path:
    """`points`: one row per run with columns architecture, config_id, parameters, score. One point
    per configuration at its mean, with a 95% interval; log-scaled parameters."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7.6, 4.2))
    for architecture, runs in points.groupby("architecture", sort=True):
        rows = [(group.parameters.mean(), *center_and_interval(group.score, metric))
                for _, group in runs.groupby("config_id")]
        x, y, low, high = (np.array(column, dtype=float) for column in zip(*rows))
        axis.errorbar(x, y, yerr=[y - low, high - y], fmt="o", capsize=3, label=architecture)
    axis.set_xscale("log")
    _scale_axis(axis, metric)
    axis.set_xlabel("trained parameters")
    axis.set_ylabel(f"test {metric}")
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    _legend_beside(axis)
    return _save(figure, output)


def plot_metric_against_setting(points: pd.DataFrame, setting: str, metric: str, title: str,
                                output: str | Path) -> Path:
    """`points`: one row per run with columns architecture, value (of `setting`), score. Mean and
    95% band per architecture."""
    return _bands(points, "value", "score", setting, metric, f"test {metric}", title, output, marker="o")


def plot_metric_against_length(points: pd.DataFrame, metric: str, title: str, output: str | Path) -> Path:
    """`points`: one row per (run, tested length) with columns architecture, x (the length n) and
    y (the metric at n). Mean and 95% band over the runs of each architecture."""
    return _bands(points, "x", "y", "length n (tested)", metric, f"test {metric}", title, output)


def state_plot_adds_something(points: pd.DataFrame) -> bool:
    """Whether a plot against the recurrent state size shows a trend: some architecture was run
    at two state sizes or more (`points`: one row per run with architecture and state_floats)."""
    sized = points.dropna(subset=["state_floats"])
    return bool(len(sized)) and bool((sized.groupby("architecture").state_floats.nunique() > 1).any())


def plot_metric_against_state(points: pd.DataFrame, metric: str, title: str, output: str | Path) -> Path:
    """`points`: one row per run with columns architecture, state_floats (floats per sequence in
    its recurrent state) and score. Mean and 95% band over seeds at each size (Zoology's
    accuracy against state size, Arora et al. 2023, figure 2)."""
    return _bands(points, "state_floats", "score", "recurrent state (floats per sequence)", metric,
                  f"test {metric}", title, output, marker="o")


def plot_learning_curves(history: pd.DataFrame, metric: str, title: str, output: str | Path) -> Path:
    """`history`: one row per (run, evaluation round) with columns architecture, run_id, step, value
    (the validation metric). Mean and 95% band over the runs of each architecture, per step."""
    return _bands(history, "step", "value", "training step", metric, f"validation {metric}", title, output)


def _bands(points: pd.DataFrame, x_column: str, y_column: str, x_label: str, metric: str, y_label: str,
           title: str, output: str | Path, marker: str | None = None) -> Path:
    """One line per architecture: the center of `y_column` at each value of `x_column`, with its
    95% band (`center_and_interval`)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7.6, 4.2))
    for architecture, members in points.groupby("architecture", sort=True):
        rows = sorted((x, *center_and_interval(group[y_column], metric)) for x, group in members.groupby(x_column))
        x, y, low, high = (np.array(column, dtype=float) for column in zip(*rows))
        line, = axis.plot(x, y, marker=marker, label=architecture)
        axis.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
    _scale_axis(axis, metric)
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    _legend_beside(axis)
    return _save(figure, output)


def plot_throughput(points: pd.DataFrame, unit: str, title: str, output: str | Path) -> Path:
    """`points`: one row per run with columns architecture, items_per_second. One bar per
    architecture at the mean over its runs, with a 95% interval."""
    plt = pyplot()
    rows = sorted(((architecture, *mean_and_half_width(group.items_per_second))
                   for architecture, group in points.groupby("architecture")), key=lambda row: -row[1])
    names, means, half = zip(*rows)
    figure, axis = plt.subplots(figsize=(6.4, 0.45 * len(names) + 1.5))
    axis.barh(names, means, xerr=half, capsize=3, color="#4c72b0")
    axis.invert_yaxis()
    axis.set_xlabel(f"{unit} per second (training)")
    axis.set_title(title)
    axis.grid(True, axis="x", alpha=0.3)
    return _save(figure, output)
