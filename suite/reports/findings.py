"""What a leaderboard's README opens with: its findings, the protocol it ran under and its cost.

Findings are written by hand in leaderboards/NAME/findings.md, but never a number: every number
is a reference to a published table, filled in at publish time from the same results.csv as the
tables, so a finding cannot go stale and each one says which table it comes from:

    The LSTM solves parity at unseen lengths ({parity_check | lstm | mean} on every seed) ...

A reference is `{TABLE | ROW | COLUMN}`: TABLE a table's title (its README heading), ROW an
architecture, or the architecture and its settings as the table shows them (`mamba params=10k`)
where it has several rows, COLUMN a column as the table shows it (mean, ±95%, seeds, baseline,
params, ...). A reference that names no table, row or column is refused with what it could be.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from rnnbench.core.errors import BenchmarkError, did_you_mean
from rnnbench.reports.leaderboard import display_table

FINDINGS_FILE = "findings.md"
REFERENCE = re.compile(r"\{([^{}|]+)\|([^{}|]+)\|([^{}|]+)\}")


def fill_findings(text: str, tables: Mapping[str, pd.DataFrame], source: str = FINDINGS_FILE) -> str:
    """`text` with every `{TABLE | ROW | COLUMN}` replaced by that cell, as the table prints it."""
    shown = {title: display_table(frame) for title, frame in tables.items()}

    def cell(match: re.Match) -> str:
        title, row, column = (part.strip() for part in match.groups())
        where = f"{source}: {{{title} | {row} | {column}}}"
        if title not in shown:
            raise BenchmarkError(f"{where} names no table.{did_you_mean(title, list(shown))} The tables: "
                                 f"{', '.join(shown)}")
        table = shown[title]
        labels = _row_labels(table)
        matches = [index for index, names in labels.items() if row in names]
        if len(matches) != 1:
            choices = sorted({names[-1] for names in labels.values()})
            problem = "names no row" if not matches else "names several rows: add the settings"
            raise BenchmarkError(f"{where} {problem}.{did_you_mean(row, choices)} The rows: {', '.join(choices)}")
        if column not in table.columns:
            raise BenchmarkError(f"{where} names no column.{did_you_mean(column, list(map(str, table.columns)))} "
                                 f"The columns: {', '.join(map(str, table.columns))}")
        return _format(table.at[matches[0], column])

    return REFERENCE.sub(cell, text)


def _row_labels(table: pd.DataFrame) -> dict[Any, tuple[str, ...]]:
    """{row index: the names a reference may give it}: its architecture, and with its settings."""
    settings = table["settings"] if "settings" in table.columns else pd.Series("-", index=table.index)
    return {index: (str(architecture),) + ((f"{architecture} {settings[index]}",) if settings[index] != "-" else ())
            for index, architecture in table["architecture"].items()}


def _format(value: Any) -> str:
    """A cell as the Markdown table prints it: numbers to 4 significant digits."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e6):
        return str(int(value))
    if isinstance(value, float):
        return "-" if pd.isna(value) else format(value, ".4g")
    return str(value)


def protocol_line(spec: Any) -> str:
    """How the sweep chose each row's configuration, in one sentence (from its sweep file)."""
    seeds = f"{len(spec.seeds)} seed(s) per configuration"
    budget = {key: value for key, value in spec.settings.items()
              if key.startswith("trainer.max_") and str(value).lower() != "none"}
    budget_text = ", ".join(f"{key.removeprefix('trainer.max_')}={value}" for key, value in budget.items())
    budget_text = f"; budget per run: {budget_text}" if budget_text else "; each task's own budget"
    if spec.tune is None:
        return (f"Protocol: untuned, one shared configuration per architecture (the sweep has no `tune:`), "
                f"{seeds}{budget_text}.")
    space = ", ".join(f"{key} ({item.kind.replace('_', '-')} {', '.join(map(str, item.values))})"
                      for key, item in spec.tune.space.items())
    halving = ""
    if spec.tune.halving is not None and "trainer.max_steps" in spec.settings:
        from rnnbench.sweeps.halving import rung_sizes, rung_steps

        steps = rung_steps(int(float(spec.settings["trainer.max_steps"])), spec.tune.halving)
        halving = (" by successive halving (" + ", then ".join(
            f"{size} at {step:,} steps" for size, step in zip(rung_sizes(spec.tune.trials, spec.tune.halving), steps))
            + ")")
    untuned = (f"; not tuned: {', '.join(spec.untuned)} (`tune: false`, one configuration)"
               if spec.untuned else "")
    return (f"Protocol: every architecture tuned on the same budget, {spec.tune.trials} {spec.tune.sampler.upper()} "
            f"trials over {space}{halving}, scored on the validation set; its best configuration then run "
            f"with {seeds}, scored on the test set{budget_text}{untuned}.")


def cost_line(runs: pd.DataFrame) -> str:
    """What the runs cost: device-hours (each run's wall time times its threads on a CPU, its
    wall time on a GPU), in all and by task; worker start-up between runs is not counted."""
    threads = runs.environment.map(lambda environment: (environment or {}).get("threads") or 1)
    gpu = runs.environment.map(lambda environment: (environment or {}).get("accelerator") not in (None, "cpu"))
    hours = pd.to_numeric(runs.wall_time_s, errors="coerce").fillna(0) * threads.where(~gpu, 1) / 3600
    parts = []
    for on_gpu, unit in ((False, "CPU-hours"), (True, "GPU-hours")):
        mine = hours[gpu == on_gpu]
        if mine.empty:
            continue
        by_task = mine.groupby(runs.task[gpu == on_gpu]).sum()
        parts.append(f"{mine.sum():.2f} {unit} (" + ", ".join(f"{task} {value:.2f}" for task, value in by_task.items())
                     + ")")
    return (f"Cost: {len(runs)} runs, {' and '.join(parts)}: each run's training, validation and test "
            f"time times its threads, worker start-up aside.")


def edge_line(spec: Any, runs: pd.DataFrame) -> str | None:
    """Which tuned pairs' best configurations lie at the edge of the search space (within 5% of
    its range, on the log scale for log-uniform settings), where the best may lie beyond it; None
    if none does."""
    if spec.tune is None or "tuned" not in runs:
        return None
    import math

    best = runs[runs.tuned.fillna(False).astype(bool) & (runs.status == "completed")]
    found: dict[str, set[str]] = {}
    for row in best.itertuples():
        for key, item in spec.tune.space.items():
            value = (row.config or {}).get(key)
            if item.kind not in ("uniform", "log_uniform", "int") or not isinstance(value, (int, float)):
                continue
            scale = math.log if item.kind == "log_uniform" else float
            low, high = (scale(float(bound)) for bound in item.values)
            position = (scale(float(value)) - low) / (high - low) if high > low else 0.5
            if position <= 0.05 or position >= 0.95:
                found.setdefault(row.task, set()).add(f"{row.architecture} {key.split('.')[-1]}={value:.3g}")
    if not found:
        return None
    return ("Tuned at the edge of the search space, so the best setting may lie beyond it: "
            + "; ".join(f"{task}: {', '.join(sorted(names))}" for task, names in sorted(found.items())) + ".")
