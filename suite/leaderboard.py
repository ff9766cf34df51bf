"""Leaderboards from the results store: one table per task and comparable setting, best first.

A row is one (architecture, configuration), where configuration is every setting but the seed;
it shows the mean and standard deviation over its completed seeds of the task's primary test
metric, the seeds a sweep planned for it (`planned`, from the plan recorded in the store), and the
outcome of every other seed (diverged, failed, interrupted, running): none is dropped silently.
Ranking rule: a configuration with any seed that did not complete, or with fewer completed seeds
than planned, ranks below every configuration whose planned seeds all completed. A tuning sweep's
trials are not ranked: only each pair's best configuration, re-run with every seed. Only comparable configurations are ranked together:
one table per value of the task's own settings that vary (e.g. `task.length`) and per budget.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from rnnbench.store import ResultStore

BUDGET_KEYS = ("trainer.max_steps", "trainer.max_epochs", "trainer.max_time_s")


def leaderboard_frames(store: ResultStore, task: str | None = None) -> dict[str, pd.DataFrame]:
    """{title: table}, one table per task and comparable group: "copy", or "copy (task.length=20,
    steps=6, batch=16)" when a task's runs differ in task settings or budget."""
    runs = store.runs_frame()
    planned = store.sweep_frame()
    # a tuning trial ranks only as its pair's best configuration (chosen on validation), never alone
    trials_only = set(planned.run_id[planned.role == "trial"]) - set(planned.run_id[planned.role != "trial"])
    runs = runs[~runs.run_id.isin(trials_only)]
    planned_seeds = planned[planned.role != "trial"].groupby("config_id").seed.nunique()
    runs = runs.assign(planned=runs.config_id.map(planned_seeds).fillna(0).astype(int))
    if task is not None:
        runs = runs[runs.task == task]
    frames = {}
    for name, task_runs in runs.groupby("task", sort=True):
        if not (task_runs.status == "completed").any():
            continue
        keys = [key for key in _varying_settings(task_runs) if key.startswith("task.")]
        task_runs = task_runs.assign(group=task_runs.config.map(
            lambda config: ", ".join([f"{key}={config.get(key)}" for key in keys] + [_budget(config)])))
        groups = list(task_runs.groupby("group", sort=True))
        for group, members in groups:
            if not (members.status == "completed").any():
                continue
            title = name if len(groups) == 1 else f"{name} ({group})"
            frames[title] = _table(members)
            frames[title].attrs["task"] = name
    return frames


def _outcomes(statuses: pd.Series) -> str:
    """'1 diverged, 1 failed' for the seeds that did not complete; '-' if none."""
    counts = statuses[statuses != "completed"].value_counts()
    return ", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "-"


def _table(runs: pd.DataFrame) -> pd.DataFrame:
    info = runs.task_info.iloc[-1]
    primary, direction = info["primary_metric"], info["direction"]
    unit = info.get("item_unit", "items")
    column = f"test/{primary}"
    runs = runs.assign(score=runs.metrics.map(lambda metrics: metrics.get(column)))
    varying = [key for key in _varying_settings(runs) if not key.startswith("task.")]
    rows = []
    for (architecture, _config_id), group in runs.groupby(["architecture", "config_id"], sort=False):
        completed = group[group.status == "completed"]
        config = group.config.iloc[0]
        rows.append({
            "architecture": architecture,
            "settings": " ".join(f"{key}={config[key]}" for key in varying if key in config) or "-",
            f"{primary} (mean)": completed.score.mean(),
            "std": completed.score.std(ddof=1) if len(completed) > 1 else float("nan"),
            "seeds": len(completed),
            "planned": max(int(group.planned.max()), len(group)),   # by a sweep, or run so far
            "not completed": _outcomes(group.status),
            "params": int(group.parameters.dropna().mean()) if group.parameters.notna().any() else None,
            f"{unit}/s": completed.items_per_second.mean(),
            "budget": _budget(config),
        })
    table = pd.DataFrame(rows)
    table["_incomplete"] = (table["not completed"] != "-") | (table["seeds"] < table["planned"])
    table = table.sort_values(["_incomplete", f"{primary} (mean)"],
                              ascending=[True, direction == "min"], na_position="last")
    return table.drop(columns="_incomplete").reset_index(drop=True)


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
        return pd.concat([frame.assign(table=title) for title, frame in frames.items()]).to_csv(index=False)
    sections = []
    last_table = {frame.attrs["task"]: title for title, frame in frames.items()}
    for title, frame in frames.items():
        name = frame.attrs["task"]
        text = f"## {title}\n\n" + frame.to_markdown(index=False, floatfmt=".4g") + "\n"
        if title != last_table[name]:
            sections.append(text)
            continue
        text += _curve_section(store, name)  # the curve and references once, after the last table
        refs = references(store, name)
        if refs:
            text += "\nPublished / baseline:\n" + "".join(
                f"- {ref['model']}: {ref['value']:.4g} ({ref['source']}){' - ' + ref['note'] if ref.get('note') else ''}\n"
                for ref in refs)
        sections.append(text)
    return "\n".join(sections)

