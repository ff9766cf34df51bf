"""Leaderboards from the results store: one table per task, best first.

A row is one (architecture, configuration), where configuration is every setting but the seed;
it shows the mean and standard deviation over seeds of the task's primary test metric.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from suite.store import ResultStore

BUDGET_KEYS = ("trainer.max_steps", "trainer.max_epochs", "trainer.max_time_s")


def leaderboard_frames(store: ResultStore, task: str | None = None) -> dict[str, pd.DataFrame]:
    """{task: table} over the completed runs of the store."""
    runs = store.runs_frame()
    runs = runs[runs.status == "completed"]
    if task is not None:
        runs = runs[runs.task == task]
    return {name: _table(group) for name, group in runs.groupby("task", sort=True)}


def _table(runs: pd.DataFrame) -> pd.DataFrame:
    info = runs.task_info.iloc[-1]
    primary, direction = info["primary_metric"], info["direction"]
    column = f"test/{primary}"
    runs = runs.assign(score=runs.metrics.map(lambda metrics: metrics.get(column)))
    varying = _varying_settings(runs)
    rows = []
    for (architecture, _config_id), group in runs.groupby(["architecture", "config_id"], sort=False):
        config = group.config.iloc[0]
        rows.append({
            "architecture": architecture,
            "settings": " ".join(f"{key}={config[key]}" for key in varying if key in config) or "-",
            f"{primary} (mean)": group.score.mean(),
            "std": group.score.std(ddof=1) if len(group) > 1 else float("nan"),
            "seeds": len(group),
            "params": int(group.parameters.mean()),
            "items/s": group.items_per_second.mean(),
            "budget": _budget(config),
        })
    table = pd.DataFrame(rows)
    return table.sort_values(f"{primary} (mean)", ascending=direction == "min").reset_index(drop=True)


def curve_frame(runs: pd.DataFrame, setting: str) -> pd.DataFrame:
    """The primary test metric (mean over seeds) with one column per value of `setting`, one row
    per architecture and combination of the other varying settings: e.g. copy accuracy as a
    function of the sequence length."""
    info = runs.task_info.iloc[-1]
    column = f"test/{info['primary_metric']}"
    shown_in_budget = (*BUDGET_KEYS, "trainer.batch_size")
    others = [key for key in _varying_settings(runs) if key != setting and key not in shown_in_budget]
    label = setting.split(".", 1)[-1]
    runs = runs.assign(
        score=runs.metrics.map(lambda metrics: metrics.get(column)),
        value=runs.config.map(lambda config: config.get(setting)),
        settings=runs.config.map(lambda config: " ".join(
            f"{key}={config.get(key)}" for key in others) or "-"),
        budget=runs.config.map(_budget))
    table = runs.pivot_table(index=["architecture", "settings", "budget"], columns="value",
                             values="score", aggfunc="mean")
    table.columns = [f"{label}={value}" for value in table.columns]
    return table.reset_index()[["architecture", "settings", *table.columns, "budget"]]


def _varying_settings(runs: pd.DataFrame) -> list[str]:
    """Setting keys whose value differs between the task's configurations. Model settings
    (`arch.`) count only where they differ between runs of one architecture: that architectures
    have different options and sizes is what the architecture and params columns already say."""
    keys = sorted({key for config in runs.config for key in config})
    varying = []
    for key in keys:
        groups = ([configs for _, configs in runs.groupby("architecture").config]
                  if key.startswith("arch.") else [runs.config])
        if any(len({repr(config.get(key)) for config in configs}) > 1 for configs in groups):
            varying.append(key)
    return varying


def _budget(config: dict) -> str:
    if config.get("optim.optimizer") == "ridge":   # no steps: one pass, then a closed-form fit
        return "one pass (closed-form readout)"
    parts = [f"{key.split('.')[1].removeprefix('max_')}={config[key]}" for key in BUDGET_KEYS
             if config.get(key) is not None]
    if config.get("trainer.batch_size") is not None:
        parts.append(f"batch={config['trainer.batch_size']}")
    return ", ".join(parts)


def references(store: ResultStore, task: str) -> list[dict]:
    """Published reference numbers and baselines recorded with the task's completed runs, each
    once (a baseline that depends on a task option, like copy's, appears once per value)."""
    runs = store.runs_frame()
    runs = runs[(runs.task == task) & (runs.status == "completed")]
    unique = {}
    for info in runs.task_info:
        for reference in info.get("references", []):
            unique.setdefault((reference["model"], reference["value"]), reference)
    return list(unique.values())


def _curve_section(store: ResultStore, task: str) -> str:
    runs = store.runs_frame()
    runs = runs[(runs.status == "completed") & (runs.task == task)]
    info = runs.task_info.iloc[-1]
    setting = info.get("curve_setting")
    if not setting:
        return ""
    return (f"\nTest {info['primary_metric']} by {setting} (mean over seeds):\n\n"
            + curve_frame(runs, setting).to_markdown(index=False, floatfmt=".4g") + "\n")


def render(store: ResultStore, task: str | None = None, fmt: Literal["md", "csv"] = "md") -> str:
    """The leaderboard as Markdown (tables with their references) or CSV (one table)."""
    frames = leaderboard_frames(store, task)
    if not frames:
        where = f" for task '{task}'" if task else ""
        return f"No completed runs{where} in {store.path}: run `rnnbench sweep` or `rnnbench run` first.\n"
    if fmt == "csv":
        return pd.concat([frame.assign(task=name) for name, frame in frames.items()]).to_csv(index=False)
    sections = []
    for name, frame in frames.items():
        text = f"## {name}\n\n" + frame.to_markdown(index=False, floatfmt=".4g") + "\n"
        text += _curve_section(store, name)
        refs = references(store, name)
        if refs:
            text += "\nPublished / baseline:\n" + "".join(
                f"- {ref['model']}: {ref['value']:.4g} ({ref['source']}){' - ' + ref['note'] if ref.get('note') else ''}\n"
                for ref in refs)
        sections.append(text)
    return "\n".join(sections)
