"""The plots of a published leaderboard, drawn from tables of runs (never from a model):

- the primary metric against trained parameters, one point per configuration with its 95% interval;
- the primary metric against a task's curve setting (e.g. sequence length), mean and band per
  architecture;
- learning curves: the validation metric against the training step, mean and band over seeds;
- training throughput by architecture.

Bands and bars are Student-t 95% intervals of the mean over seeds (none for a single seed).
Figures are written as palette PNGs (`rnnbench.reports.figures`).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from rnnbench.reports.figures import pyplot, save_png
from rnnbench.reports.leaderboard import confidence_interval


def mean_and_half_width(values: pd.Series) -> tuple[float, float]:
    """(mean, half width of the leaderboard's 95% interval of the mean); the width is 0 for one value."""
    values = values.dropna().astype(float)
    if len(values) < 2:
        return (float(values.iloc[0]) if len(values) else math.nan), 0.0
    low, high = confidence_interval(values.to_numpy())
    return float(values.mean()), (high - low) / 2


def _save(figure, output: str | Path) -> Path:
    figure.tight_layout()
    return save_png(figure, output, dpi=110)


def plot_metric_against_parameters(points: pd.DataFrame, metric: str, title: str, output: str | Path) -> Path:
    """`points`: one row per run with columns architecture, config_id, parameters, score. One point
    per configuration at its mean, with a 95% interval; log-scaled parameters."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for architecture, runs in points.groupby("architecture", sort=True):
        rows = [(group.parameters.mean(), *mean_and_half_width(group.score))
                for _, group in runs.groupby("config_id")]
        x, y, err = zip(*rows)
        axis.errorbar(x, y, yerr=err, fmt="o", capsize=3, label=architecture)
    axis.set_xscale("log")
    axis.set_xlabel("trained parameters")
    axis.set_ylabel(f"test {metric}")
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize="small")
    return _save(figure, output)


def plot_metric_against_setting(points: pd.DataFrame, setting: str, metric: str, title: str,
                                output: str | Path) -> Path:
    """`points`: one row per run with columns architecture, value (of `setting`), score. Mean and
    95% band per architecture."""
    return _bands(points, "value", "score", setting, f"test {metric}", title, output, marker="o")


def plot_learning_curves(history: pd.DataFrame, metric: str, title: str, output: str | Path) -> Path:
    """`history`: one row per (run, evaluation round) with columns architecture, run_id, step, value
    (the validation metric). Mean and 95% band over the runs of each architecture, per step."""
    return _bands(history, "step", "value", "training step", f"validation {metric}", title, output)


def _bands(points: pd.DataFrame, x_column: str, y_column: str, x_label: str, y_label: str, title: str,
           output: str | Path, marker: str | None = None) -> Path:
    """One line per architecture: the mean of `y_column` at each value of `x_column`, with its
    95% band."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for architecture, members in points.groupby("architecture", sort=True):
        rows = sorted((x, *mean_and_half_width(group[y_column])) for x, group in members.groupby(x_column))
        x, y, half = (pd.Series(column, dtype=float) for column in zip(*rows))
        line, = axis.plot(x, y, marker=marker, label=architecture)
        axis.fill_between(x, y - half, y + half, color=line.get_color(), alpha=0.2)
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize="small")
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
