"""Leaderboards from the results store: one table per task and comparable setting, best first.

A row is one (architecture, configuration), where configuration is every setting but the seed;
it shows, over its completed seeds, the mean and standard deviation of the task's primary test
metric and the 95% confidence interval of that mean, the seeds a sweep planned for it (`planned`,
from the plan recorded in the store), and the outcome of every other seed (diverged, failed,
interrupted, running): none is dropped silently.

Ranking rule: a configuration with any seed that did not complete, or with fewer completed seeds
than planned, ranks below every configuration whose planned seeds all completed; within each of
the two parts, rows are ordered by their mean (in the task's direction). A tuning sweep's trials
are not ranked: only each pair's best configuration, re-run with every seed. Reference runs (a
published leaderboard's reference.yaml, e.g. a full reproduction of a paper's configuration) are
shown in tables of their own and never ranked. Only comparable
configurations are ranked together: one table per value of the task's own settings that vary
(e.g. `task.length`) and per budget, except the settings a task ranks together (`ranked_together`
in its recorded task_info: they change how a model is built or trained, not what it is tested on,
e.g. `task.batching`), which are shown per row like the model's settings.

Statistics, over the n completed seeds of a row (scores x_1..x_n, mean m, sample std s):
- the 95% interval of the mean, Student t: m ± t_{0.975, n-1} * s / sqrt(n), or with
  `interval="bootstrap"` the 2.5 and 97.5 percentiles of the means of 10,000 resamples with
  replacement (numpy, seed 0); NaN for n < 2.
- "≈best": Welch's t-test (unequal variances) of the row's seed scores against those of the best
  (first-ranked) row: p >= 0.05 is "yes", not distinguishable from the best at the 5% level;
  for a ratio-scale metric (perplexity, MSE, NRMSE) the test is on the log of the scores (a
  perplexity of 6e5 is not "near" one of 130 because its seeds scatter). A row with fewer than
  2 completed seeds cannot be tested ("n<2"), nor can any row when the first has fewer; a table
  of one row claims nothing ("only row").
- "did not learn": a row not beyond the strongest of the task's baselines (`strongest_baseline`),
  shown last and never ranked.
- A table says whether its rows were tuned ("Untuned: one shared configuration") and whether
  its leading rows were still improving when the budget ended.

The tables are a pure function of a runs table (`leaderboard_tables`), the shape
`ResultStore.runs_frame()` returns, which `results_frame` / `read_results` write to and read from
a CSV file for publishing; `compare` sets two such runs tables side by side.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from rnnbench.core.errors import BenchmarkError
from rnnbench.reports.escaping import csv_frame, latex_escape, markdown_frame, markdown_text
from rnnbench.store import ResultStore, to_json

BUDGET_KEYS = ("trainer.max_steps", "trainer.max_epochs", "trainer.max_time_s")
MIN_SEEDS = 3   # the protocol's seeds per ranked row
# metrics compared as ratios: tested on the log scale, drawn on a log axis
RATIO_SCALE = frozenset({"perplexity", "mse", "nrmse"})
CONFIDENCE = 0.95
ALPHA = 0.05               # Welch's test level: p >= ALPHA is "not distinguishable"
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
JSON_COLUMNS = ("config", "metrics", "task_info", "environment")
RESULT_COLUMNS = ("run_id", "architecture", "task", "seed", "status", "error", "config_id", "preset",
                  "architecture_version", "task_version", *JSON_COLUMNS, "parameters", "hidden_size",
                  "items_per_second", "wall_time_s", "peak_memory_mb", "started_at", "finished_at")
Interval = Literal["t", "bootstrap"]
Format = Literal["md", "csv", "json", "latex"]


# --------------------------------------------------------------------------- tables


def leaderboard_frames(store: ResultStore, task: str | None = None) -> dict[str, pd.DataFrame]:
    """{title: table}, one table per task and comparable group: "copy", or "copy (task.length=20,
    steps=6, batch=16)" when a task's runs differ in task settings or budget."""
    runs = store.runs_frame()
    if task is not None:
        runs = runs[runs.task == task]
    return leaderboard_tables(runs, store.sweep_frame(), store.tuning_frame())


def leaderboard_tables(runs: pd.DataFrame, planned: pd.DataFrame | None = None,
                       tuning: pd.DataFrame | None = None, interval: Interval = "t") -> dict[str, pd.DataFrame]:
    """{title: table} from a runs table (`ResultStore.runs_frame()`'s shape, or `read_results`'s);
    `planned`: `sweep_frame()`'s shape (seeds planned, tuning trials), else the runs' own
    `planned_seeds` / `tuning_trial` columns where they have them; `tuning`: `tuning_frame()`'s
    shape (trial counts and importances, listed under their pair's table). Each table carries
    attrs task, primary_metric, direction, interval, shared_settings and tuning."""
    if interval not in ("t", "bootstrap"):
        raise ValueError("interval must be 't' or 'bootstrap'")
    runs = _annotated(runs, planned)
    trials = runs[runs.tried.fillna(False).astype(bool)]   # every trial, the one rerun as the best's seed included
    runs = runs[~runs.tuning_trial]   # a trial ranks only as its pair's best configuration
    runs = merge_idle_clipping(runs)
    frames = {}
    for name, title, members in _groups(runs):
        frame = _table(members, interval)
        reference = bool(members.reference.all())
        if reference:   # shown beside the ranking, never in it
            frame["≈best"] = "not ranked"
        frame.attrs.update(task=name, shared_settings=_shared_settings(members), reference=reference,
                           tuned=bool(members.tuned.any()),
                           untuned=sorted(set(members.architecture[~members.tuned.astype(bool)]))
                           if members.tuned.any() else [],
                           tuning=_tuning_notes(members, tuning), config_ids=sorted(set(members.config_id)),
                           robustness=_robustness_notes(members, trials),
                           threads=_thread_counts(members), code_versions=_code_versions(members))
        frames[title] = frame
    return frames


def _annotated(runs: pd.DataFrame, planned: pd.DataFrame | None) -> pd.DataFrame:
    """The runs with `planned_seeds` (seeds a sweep planned for the run's configuration, tuning
    trials aside; 0 if none), `tuning_trial` (planned only as a tuning trial) and `reference`
    (planned only as a reference run, role "reference") columns."""
    if planned is not None:
        def only(role: str) -> set[str]:
            return set(planned.run_id[planned.role == role]) - set(planned.run_id[planned.role != role])

        seeds = planned[planned.role != "trial"].groupby("config_id").seed.nunique()
        runs = runs.assign(planned_seeds=runs.config_id.map(seeds).fillna(0).astype(int),
                           tuning_trial=runs.run_id.isin(only("trial")),
                           reference=runs.run_id.isin(only("reference")),
                           tuned=runs.run_id.isin(set(planned.run_id[planned.role == "best"])),
                           tuning_pair=runs.run_id.map(_tuning_pairs(planned)),
                           tried=runs.run_id.isin(set(planned.run_id[planned.role == "trial"])))
    for column, default in (("planned_seeds", 0), ("tuning_trial", False), ("reference", False), ("tuned", False),
                            ("tuning_pair", None), ("tried", False)):
        if column not in runs:
            runs = runs.assign(**{column: default})
    return runs.assign(planned_seeds=runs.planned_seeds.fillna(0).astype(int),
                       tuning_trial=runs.tuning_trial.fillna(False).astype(bool),
                       reference=runs.reference.fillna(False).astype(bool),
                       tuned=runs.tuned.fillna(False).astype(bool))


def _tuning_pairs(planned: pd.DataFrame) -> dict[str, str]:
    """{run id: its tuned pair's key} for the trials and best runs of tuning sweeps."""
    params = planned.params if "params" in planned else pd.Series([{}] * len(planned), index=planned.index)
    return {run_id: params_["pair"] for run_id, params_ in zip(planned.run_id, params)
            if isinstance(params_, dict) and params_.get("pair")}


def _groups(runs: pd.DataFrame) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """(task, title, runs) per task and comparable group (the task's varying settings and the
    budget), for groups with at least one completed run."""
    for name, task_runs in runs.groupby("task", sort=True):
        if not (task_runs.status == "completed").any():
            continue
        task_runs = task_runs.assign(group=_group_labels(task_runs))
        groups = list(task_runs.groupby("group", sort=True))
        for group, members in groups:
            if (members.status == "completed").any():
                yield name, (name if len(groups) == 1 else f"{name} ({group})"), members


def _group_labels(task_runs: pd.DataFrame) -> pd.Series:
    """'task.length=20, steps=6, batch=16': the task settings that vary between the task's runs,
    and the budget; reference runs' labels start with 'reference: ', so they never share a table
    with ranked runs."""
    info = _task_info(task_runs)
    keys = [key for key in _varying_settings(task_runs) if _splits_tables(key, info)]
    settings = task_runs.config.map(lambda config: ", ".join(f"{key}={config.get(key)}" for key in keys))
    budgets = task_runs.config.map(_budget)
    closed_form = task_runs.config.map(lambda config: config.get("optim.optimizer") == "ridge")
    # a closed-form readout ranks beside the gradient-trained runs of the same task settings (one
    # table per task and metric, whatever the training method); its cost shows in its row
    for setting in set(settings[closed_form]):
        trained = set(budgets[~closed_form & (settings == setting)])
        if len(trained) == 1:
            budgets[closed_form & (settings == setting)] = trained.pop()
    labels = pd.Series([", ".join(part for part in parts if part) for parts in zip(settings, budgets)],
                       index=task_runs.index)
    reference = task_runs.reference if "reference" in task_runs else False
    return labels.where(~reference, "reference: " + labels)


def _splits_tables(key: str, task_info: dict) -> bool:
    """Whether runs that differ in setting `key` go to separate tables: the task's settings do
    (they change what is tested), except those the task ranks together (`Task.ranked_together`:
    they change only how the model is built or trained)."""
    return key.startswith("task.") and key not in task_info.get("ranked_together", ())


def _task_info(runs: pd.DataFrame) -> dict:
    """The task's declaration recorded with its latest run that has one (a failure recorded
    before the run started has none)."""
    infos = [info for info in runs.task_info if info]
    return infos[-1] if infos else {}


def _scores(runs: pd.DataFrame, primary: str) -> pd.Series:
    return runs.metrics.map(lambda metrics: metrics.get(f"test/{primary}")).astype(float)


def _outcomes(statuses: pd.Series) -> str:
    """'1 diverged, 1 failed' for the seeds that did not complete; '-' if none."""
    counts = statuses[statuses != "completed"].value_counts()
    return ", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "-"


CLIPPING = ("optim.clip_norm", "optim.clip_value")


def short_names(keys: list[str]) -> dict[str, str]:
    """{setting: the last part of its name} where that part is unique among `keys` (`lr` for
    `optim.lr`), else the whole name: short labels, with a legend under the table."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: part if last.count(part) == 1 else key for key, part in zip(keys, last)}


def _settings_label(config: dict, varying: list[str], idle: set[str] = frozenset()) -> str:
    """'clip_norm=5 (never acted) lr=0.01': the varying settings by their short names
    (`short_names`), none as 'none', those that did nothing in any of the row's runs (`idle`)
    marked."""
    names = short_names(varying)
    return " ".join(f"{names[key]}={'none' if config[key] is None else config[key]}"
                    + (" (never acted)" if key in idle else "")
                    for key in varying if key in config) or "-"


def _as_trained(config: dict, group: pd.DataFrame) -> dict:
    """The configuration as its runs trained: the hidden size a parameter budget chose (not the
    setting it replaced), and no optimiser settings beside a closed-form (ridge) readout."""
    config = dict(config)
    sizes = pd.to_numeric(group["hidden_size"], errors="coerce").dropna() if "hidden_size" in group else []
    if len(sizes) and "arch.hidden_size" in config:
        config["arch.hidden_size"] = int(sizes.iloc[0])
    if config.get("optim.optimizer") == "ridge":
        config = {key: value for key, value in config.items()
                  if not key.startswith("optim.") or key == "optim.optimizer"}
    return config


def _idle_settings(completed: pd.DataFrame) -> set[str]:
    """Clipping settings that never changed a gradient in any of these runs (each recorded how
    many of its steps clipping acted on; runs from before that record say nothing)."""
    records = [(environment or {}).get("clipping") if isinstance(environment, dict) else None
               for environment in completed.environment]
    if not records or any(record is None for record in records) or any(record["clipped"] for record in records):
        return set()
    return set(CLIPPING)


def _table(runs: pd.DataFrame, interval: Interval) -> pd.DataFrame:
    """One row per (architecture, configuration), ranked (see the module docstring)."""
    info = _task_info(runs[runs.status == "completed"])
    primary, direction = info["primary_metric"], info["direction"]
    unit = info.get("item_unit", "items")
    runs = runs.assign(score=_scores(runs, primary))
    varying = [key for key in _varying_settings(runs) if not _splits_tables(key, info)]
    environments = runs.environment if "environment" in runs else pd.Series([{}] * len(runs), index=runs.index)
    fixed = environments.map(lambda environment: (environment or {}).get("fixed_parameters"))
    runs = runs.assign(fixed_parameters=pd.to_numeric(fixed, errors="coerce"))
    with_baselines = bool(runs.metrics.map(
        lambda metrics: any(key.startswith(BASELINE) for key in metrics or {})).any())
    rows = []
    runs = runs.assign(identity=_identities(runs))
    for (architecture, _identity), group in runs.groupby(["architecture", "identity"], sort=False):
        completed = group[group.status == "completed"]
        scores = completed.score.dropna().to_numpy()
        low, high = confidence_interval(scores, interval)
        config = group.config.iloc[0]
        baseline_name, baseline_scores, learned = strongest_baseline(completed, direction)
        improving = [((environment or {}).get("convergence") or {}).get("improving_at_end")
                     for environment in environments[completed.index]]
        stands_for = sorted({text for text in group.also_as.dropna()}) if "also_as" in group else []
        rows.append({
            "architecture": architecture,
            "settings": _settings_label(_as_trained(config, group), varying,
                                        _idle_settings(completed) if "environment" in completed else set())
            + (f" (also {', '.join(stands_for)}: never acted, the same runs)" if stands_for else ""),
            f"{primary} (mean)": completed.score.mean(),
            "95% CI low": low,
            "95% CI high": high,
            "std": completed.score.std(ddof=1) if len(completed) > 1 else float("nan"),
            "seeds": len(completed),
            "planned": max(int(group.planned_seeds.max()), len(group)),   # by a sweep, or run so far
            "not completed": _outcomes(group.status),
            "params": _mean_int(group.parameters),
            "fixed params": _mean_int(group.fixed_parameters),
            f"{unit}/s": completed.items_per_second.mean(),
            "wall time (s)": completed.wall_time_s.mean(),
            "budget": _budget(config),
            "baseline": float(np.mean(baseline_scores)) if len(baseline_scores) else float("nan"),
            "_baseline_name": baseline_name,
            "_learned": learned,
            "_improving": any(flag is True for flag in improving),
            "_judged": any(flag is not None for flag in improving),
            "_scores": scores,
        })
    table = pd.DataFrame(rows)
    table["_incomplete"] = (table["not completed"] != "-") | (table["seeds"] < table["planned"])
    # rows that did not learn go last, unranked; the others as the module docstring says
    table = table.sort_values(["_learned", "_incomplete", f"{primary} (mean)"],
                              ascending=[False, True, direction == "min"], na_position="last", kind="stable")
    table = table.reset_index(drop=True)
    learned = int(table._learned.sum())
    marks = (_best_marks(list(table._scores[:learned]), ratio_scale=primary in RATIO_SCALE,
                         unranked=len(table) - learned)
             + ["did not learn"] * (len(table) - learned))
    table.insert(table.columns.get_loc("not completed") + 1, "≈best", marks)
    if table["fixed params"].isna().all():
        table = table.drop(columns="fixed params")
    baselines = sorted({name for name in table._baseline_name if name})
    leading = table["≈best"].isin(["best", "yes", "only row"]) | (table.index == 0)
    cut = list(table.architecture[leading & table._improving]) if table._judged.any() else None
    if not with_baselines:   # a table of runs from before baselines were recorded: as it was
        table = table.drop(columns="baseline")
    table = table.drop(columns=["_incomplete", "_scores", "_learned", "_baseline_name", "_improving", "_judged"])
    legend = {short: key for key, short in short_names(varying).items() if short != key}
    table.attrs.update(primary_metric=primary, direction=direction, interval=interval, settings_legend=legend,
                       baselines=baselines if with_baselines else None, none_learned=with_baselines and not learned,
                       cut_by_budget=cut)
    return table


BASELINE = "baseline/"   # a run's baselines are recorded among its metrics as baseline/NAME


def strongest_baseline(completed: pd.DataFrame, direction: str) -> tuple[str | None, np.ndarray, bool]:
    """(name, per-seed scores, learned) of a row: the strongest of the baselines its runs
    recorded (best mean over the row's seeds), and whether the row is beyond it. Beyond: the
    paired per-seed differences (score - baseline, signed so that positive is better) have a
    95% t interval above 0; with one seed, a better score. A row without baselines counts as
    learned (nothing to compare with)."""
    sign = 1.0 if direction == "max" else -1.0
    names = sorted({key for metrics in completed.metrics for key in (metrics or {}) if key.startswith(BASELINE)})
    per_name = {name: completed.metrics.map(lambda metrics, name=name: (metrics or {}).get(name)).astype(float)
                for name in names}
    per_name = {name: values for name, values in per_name.items() if values.notna().all()}
    if not per_name or completed.empty:
        return None, np.array([]), True
    name = max(per_name, key=lambda key: sign * per_name[key].mean())
    differences = (sign * (completed.score.astype(float) - per_name[name])).dropna().to_numpy()
    if len(differences) == 0:
        return name.removeprefix(BASELINE), per_name[name].to_numpy(), False
    if len(differences) == 1 or np.all(differences == differences[0]):
        learned = bool(differences.mean() > 0)
    else:
        learned = bool(confidence_interval(differences)[0] > 0)
    return name.removeprefix(BASELINE), per_name[name].to_numpy(), learned


def _mean_int(values: pd.Series) -> int | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return int(values.mean()) if len(values) else None


def confidence_interval(scores: np.ndarray, interval: Interval = "t") -> tuple[float, float]:
    """The 95% interval of the mean of `scores`: Student t, m ± t_{0.975, n-1} s / sqrt(n), or
    the percentile bootstrap (10,000 resamples, seed 0); (NaN, NaN) for n < 2."""
    scores = np.asarray(scores, dtype=float)
    n = len(scores)
    if n < 2:
        return float("nan"), float("nan")
    mean = float(scores.mean())
    if interval == "t":
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * scores.std(ddof=1) / math.sqrt(n)
        return mean - float(half), mean + float(half)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = scores[rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))].mean(axis=1)
    low, high = np.percentile(means, [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)])
    return float(low), float(high)


def welch_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances) that `a` and `b` have the same
    mean; NaN if either has fewer than 2 values. Two samples without spread: 1 if their
    means are equal, else 0 (scipy gives NaN there)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    if a.std() == 0 and b.std() == 0:
        return 1.0 if a.mean() == b.mean() else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def _best_marks(samples: list[np.ndarray], ratio_scale: bool = False, unranked: int = 0) -> list[str]:
    """'best' for the first-ranked row; for the others 'yes' where Welch's p >= 0.05 against
    it, '' where p < 0.05. No claim without a comparison: a table of one row says 'only row',
    and every row says 'n<2' while it, or the first row, has fewer than 2 completed seeds. A
    ratio-scale metric (perplexity, MSE, NRMSE) is tested on the log of the scores. `unranked`:
    the table's other rows (they did not learn), beside which a single row is the best."""
    if not samples:
        return []
    if len(samples) == 1 and not unranked:
        return ["only row"]
    if ratio_scale and all(len(scores) == 0 or (scores > 0).all() for scores in samples):
        samples = [np.log(scores) for scores in samples]
    best = samples[0]
    marks = ["best" if len(best) >= 2 else "n<2"]
    for scores in samples[1:]:
        if len(scores) < 2 or len(best) < 2:
            marks.append("n<2")
        else:
            marks.append("yes" if welch_p(scores, best) >= ALPHA else "")
    return marks


def _shared_settings(runs: pd.DataFrame) -> dict:
    """What every row of a table shares, stated once: the budget and the task's settings."""
    configs = list(runs.config)
    budgets = sorted({_budget(config) for config in configs})
    shared = {"budget": budgets[0] if len(budgets) == 1 else "per row (training column)"}
    for key in sorted({key for config in configs for key in config if key.startswith("task.")}):
        values = {repr(config.get(key)) for config in configs}
        if len(values) == 1 and configs[0].get(key) is not None:
            shared[key] = configs[0][key]
    return shared


def _thread_counts(runs: pd.DataFrame) -> list[int]:
    """The CPU thread counts the completed runs trained with (recorded in their environment)."""
    completed = runs[runs.status == "completed"]
    return sorted({int(environment["threads"]) for environment in completed.environment
                   if isinstance(environment, dict) and environment.get("threads") is not None})


def _code_versions(runs: pd.DataFrame) -> dict[str, list[str]]:
    """{git commit: the architectures whose completed runs it produced}, from the runs' recorded
    environments (a commit that was not recorded is left out)."""
    versions: dict[str, set[str]] = {}
    for run in runs[runs.status == "completed"].itertuples():
        environment = run.environment if isinstance(run.environment, dict) else {}
        if environment.get("git_commit"):
            versions.setdefault(str(environment["git_commit"]), set()).add(run.architecture)
    return {commit: sorted(names) for commit, names in sorted(versions.items())}


def _tuning_notes(runs: pd.DataFrame, tuning: pd.DataFrame | None) -> list[dict]:
    """[{architecture, trials, importances}] of the tuned pairs whose best configuration is in
    this table."""
    if tuning is None or tuning.empty:
        return []
    mine = tuning[tuning.best_run_id.isin(set(runs.run_id))]
    return [{"architecture": row.architecture, "trials": int(row.trials),
             "importances": dict(sorted(row.importances.items(), key=lambda item: -item[1]))}
            for row in mine.itertuples()]


ROBUST_MARGIN = 0.05   # a trial within 5% of the best validation score is in the window
TUNED_RATE = "optim.lr"


def _robustness_notes(runs: pd.DataFrame, trials: pd.DataFrame) -> list[dict]:
    """Per tuned pair whose best configuration is in this table: its trials, the share that
    diverged, and the learning-rate window (`robustness`)."""
    notes = []
    for pair in sorted(set(runs.tuning_pair.dropna())):
        mine = trials[trials.tuning_pair == pair]
        if len(mine):
            notes.append({"architecture": runs.architecture[runs.tuning_pair == pair].iloc[0],
                          **robustness(mine, _task_info(runs)["primary_metric"], _task_info(runs)["direction"])})
    return notes


def robustness(trials: pd.DataFrame, primary: str, direction: str) -> dict:
    """{trials, diverged, within, lr_low, lr_high} of one pair's tuning trials: how many diverged,
    and the lowest and highest learning rate among the completed trials whose validation score is
    within 5% of the best one's (relative: value <= best * 1.05 for a "min" metric, >= best *
    0.95 for a "max" one); an architecture that wins only in a narrow window shows it here.

    Tuned by successive halving (trials at several step budgets), the window is that of the first
    rung, where every trial trained the same steps, and `rungs` lists [steps, trial runs] per
    rung; `trials` counts the trials drawn, not their runs at later rungs."""
    steps = trials.config.map(lambda config: (config or {}).get("trainer.max_steps"))
    rungs = sorted(steps.value_counts().items(), key=lambda item: float(item[0])) if steps.nunique() > 1 else []
    if rungs:
        trials = trials[steps == rungs[0][0]]
    completed = trials[trials.status == "completed"]
    scores = completed.metrics.map(lambda metrics: (metrics or {}).get(f"val/{primary}")).astype(float)
    rates = completed.config.map(lambda config: (config or {}).get(TUNED_RATE))
    note = {"trials": len(trials), "diverged": int((trials.status == "diverged").sum()),
            "within": 0, "lr_low": None, "lr_high": None}
    if scores.notna().any():
        best = scores.min() if direction == "min" else scores.max()
        near = scores <= best * (1 + ROBUST_MARGIN) if direction == "min" else scores >= best * (1 - ROBUST_MARGIN)
        note["within"] = int(near.sum())
        chosen = pd.to_numeric(rates[near], errors="coerce").dropna()
        if len(chosen):
            note.update(lr_low=float(chosen.min()), lr_high=float(chosen.max()))
    if rungs:
        note["rungs"] = [[int(float(steps_of_rung)), int(count)] for steps_of_rung, count in rungs]
    return note


def curve_frame(runs: pd.DataFrame, setting: str) -> pd.DataFrame:
    """The primary test metric (mean over seeds) with one column per value of `setting`, one row
    per architecture and combination of the other varying settings: e.g. copy accuracy as a
    function of the sequence length."""
    info = _task_info(runs)
    label = setting.split(".", 1)[-1]
    runs = _labelled(runs, exclude=setting).assign(
        score=_scores(runs, info["primary_metric"]),
        value=runs.config.map(lambda config: config.get(setting)))
    table = runs.pivot_table(index=["architecture", "settings", "budget"], columns="value",
                             values="score", aggfunc="mean")
    table.columns = [f"{label}={value}" for value in table.columns]
    return table.reset_index()[["architecture", "settings", *table.columns, "budget"]]


LENGTH_COLUMNS = 10   # a length curve's table groups the tested lengths into at most this many columns


def length_curve_frame(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """The primary test metric against the tested length n (its curve, recorded per run by a
    `CurveMetric`: e.g. accuracy at each unseen length, Deletang et al. 2023), one row per
    architecture and combination of varying settings, mean over seeds; the lengths in at most
    `LENGTH_COLUMNS` columns of consecutive lengths, each the mean over its lengths. Empty when
    the runs recorded no such curve."""
    metric = _task_info(runs)["primary_metric"]
    points = curves[(curves.name == f"test/{metric}") & curves.run_id.isin(set(runs.run_id))]
    if points.empty:
        return pd.DataFrame()
    lengths = sorted(points.x.unique())
    groups = np.array_split(np.array(lengths), min(LENGTH_COLUMNS, len(lengths)))
    column_of = {x: (f"n={group[0]:g}" if len(group) == 1 else f"n={group[0]:g}-{group[-1]:g}")
                 for group in groups for x in group}
    labelled = _labelled(runs)[["run_id", "architecture", "settings", "budget"]]
    points = points.assign(column=points.x.map(column_of)).merge(labelled, on="run_id")
    per_run = points.groupby(["architecture", "settings", "budget", "run_id", "column"], sort=False).y.mean()
    table = per_run.groupby(["architecture", "settings", "budget", "column"], sort=False).mean().unstack("column")
    columns = list(dict.fromkeys(column_of.values()))
    return table.reset_index()[["architecture", "settings", *columns, "budget"]]


def _labelled(runs: pd.DataFrame, exclude: str | None = None) -> pd.DataFrame:
    """`runs` with a `settings` label (the varying settings but `exclude` and the budget's) and a
    `budget` label, the row keys of the curve tables."""
    shown_in_budget = (*BUDGET_KEYS, "trainer.batch_size")
    others = [key for key in _varying_settings(runs) if key != exclude and key not in shown_in_budget]
    return runs.assign(
        settings=runs.config.map(lambda config: " ".join(f"{key}={config.get(key)}" for key in others) or "-"),
        budget=runs.config.map(_budget))


def _varying_settings(runs: pd.DataFrame) -> list[str]:
    """Setting keys whose value differs between the task's configurations. Model settings
    (`arch.`) count only where they differ between runs of one architecture: that architectures
    have different options and sizes is what the architecture and params columns already say.
    A setting that a later code version added, at one value wherever it is recorded, does not
    vary (`_added_later`)."""
    keys = sorted({key for config in runs.config for key in config} - _added_later(runs))
    varying = []
    for key in keys:
        groups = ([configs for _, configs in runs.groupby("architecture").config]
                  if key.startswith("arch.") else [runs.config])
        if any(len({repr(config.get(key)) for config in configs}) > 1 for configs in groups):
            varying.append(key)
    return varying


def _added_later(runs: pd.DataFrame) -> set[str]:
    """Settings missing from some runs' recorded configuration and at a single value in all the
    others: introduced by a later version of the suite at their default (`trainer.devices=1`),
    so no part of what tells two configurations apart."""
    configs = list(runs.config)
    keys = {key for config in configs for key in config}
    return {key for key in keys if any(key not in config for config in configs)
            and len({repr(config[key]) for config in configs if key in config}) == 1}


def _identities(runs: pd.DataFrame) -> pd.Series:
    """Each run's configuration without the settings added later (`_added_later`): runs of one
    configuration recorded by two versions of the suite form one row. `merge_idle_clipping`
    may have joined configurations already (`merged_identity`)."""
    if "merged_identity" in runs:
        return runs.merged_identity
    ignored = _added_later(runs)
    return runs.config.map(lambda config: json.dumps({key: value for key, value in config.items()
                                                      if key not in ignored}, sort_keys=True, default=str))


def _never_clipped(environment: Any) -> bool:
    """Whether the run clipped its gradients and the clipping never changed one: it trained
    exactly as without clipping (the gradients are scaled by exactly 1)."""
    record = environment.get("clipping") if isinstance(environment, dict) else None
    return isinstance(record, dict) and record.get("clipped") == 0


def merge_idle_clipping(runs: pd.DataFrame) -> pd.DataFrame:
    """A configuration whose clipping never acted in any of its runs trained exactly as without
    clipping (the tricks audit: clipping at 5 and none, identical per seed, shown as two
    configurations): it joins the unclipped configuration (`merged_identity`), one run per seed,
    the completed unclipped run first; `also_as` on the kept runs names the clipping settings
    they stand for ("clip_norm=5"). A configuration whose clipping acted once stays apart, and
    so does one without an unclipped configuration beside it (a task's default clipping)."""
    runs = runs.assign(merged_identity=_identities(runs))
    environments = runs.environment if "environment" in runs else pd.Series([{}] * len(runs), index=runs.index)
    clipped = runs.config.map(lambda config: any(config.get(key) is not None for key in CLIPPING))
    idle = environments.map(_never_clipped).groupby([runs.architecture, runs.merged_identity]).transform("all")

    def unclipped(config: str) -> str:
        kept = {key: (None if key in CLIPPING else value) for key, value in json.loads(config).items()}
        return json.dumps(kept, sort_keys=True, default=str)
    # only where the unclipped configuration ran too: otherwise there is nothing to join
    without = set(zip(runs.architecture[~clipped], runs.merged_identity[~clipped]))
    joining = clipped & idle & pd.Series([(architecture, unclipped(identity)) in without for architecture, identity
                                          in zip(runs.architecture, runs.merged_identity)], index=runs.index)
    if not joining.any():
        return runs.assign(also_as=None)
    runs.loc[joining, "merged_identity"] = runs.merged_identity[joining].map(unclipped)
    order = runs.assign(merge_clipped=clipped, merge_failed=runs.status != "completed")
    order = order.sort_values(["merge_failed", "merge_clipped"], kind="stable")
    duplicate = order.duplicated(["architecture", "merged_identity", "seed"]) & joining[order.index]
    kept = order[~duplicate]
    first = {key: index for index, key in zip(kept.index, zip(kept.architecture, kept.merged_identity, kept.seed))}
    also_as: dict[Any, set[str]] = {}
    for row in order[duplicate | (joining[order.index] & ~duplicate)].itertuples():
        text = " ".join(f"{short}={row.config.get(key)}" for key, short in short_names(list(CLIPPING)).items()
                        if row.config.get(key) is not None)
        also_as.setdefault(first[(row.architecture, row.merged_identity, row.seed)], set()).add(text)
    merged = kept.drop(columns=["merge_clipped", "merge_failed"]).sort_index()
    return merged.assign(also_as=merged.index.map(lambda index: ", ".join(sorted(also_as.get(index, ()))) or None))


def _budget(config: dict) -> str:
    if config.get("optim.optimizer") == "ridge":   # no steps: one pass, then a closed-form fit
        return "one pass (closed-form readout)"
    parts = [f"{key.split('.')[1].removeprefix('max_')}={config[key]}" for key in BUDGET_KEYS
             if config.get(key) is not None]
    if config.get("trainer.batch_size") is not None:
        parts.append(f"batch={config['trainer.batch_size']}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- publishing as CSV


def results_frame(runs: pd.DataFrame, planned: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every run flattened for publishing, one row each: its identity, outcome and measurements,
    the JSON columns as JSON text, and `planned_seeds` / `tuning_trial` (from `planned`, or the
    runs' own columns) so that `leaderboard_tables(read_results(csv))` ranks as the store does."""
    runs = _annotated(runs, planned)
    flat = runs[[column for column in RESULT_COLUMNS if column in runs]].copy()
    for column in JSON_COLUMNS:
        flat[column] = runs[column].map(lambda value: to_json(value or {}, non_finite_as_text=column == "config"))
    flat["planned_seeds"] = runs.planned_seeds
    flat["tuning_trial"] = runs.tuning_trial
    flat["reference"] = runs.reference
    flat["tuned"] = runs.tuned
    flat["tuning_pair"] = runs.tuning_pair
    flat["tried"] = runs.tried
    return flat.reset_index(drop=True)


COMPRESS_FROM = 900_000   # bytes: a published CSV this large is committed gzip-compressed (files stay under 1 MB)


def published_path(path: str | Path) -> Path:
    """A published CSV file (results.csv, history.csv, ...) as committed: the file itself, or
    where it grew past `COMPRESS_FROM`, its gzip-compressed `NAME.gz`."""
    path = Path(path)
    compressed = path.with_name(path.name + ".gz")
    return compressed if not path.is_file() and compressed.is_file() else path


def write_published_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a published CSV at `path`, or at `path`.gz (gzip, without a timestamp, so the same
    runs give the same bytes) when it would be `COMPRESS_FROM` bytes or more; the other form is
    removed. Returns the path written."""
    import gzip

    text = frame.to_csv(index=False).encode()
    compressed = path.with_name(path.name + ".gz")
    if len(text) < COMPRESS_FROM:
        compressed.unlink(missing_ok=True)
        path.write_bytes(text)
        return path
    path.unlink(missing_ok=True)
    compressed.write_bytes(gzip.compress(text, mtime=0))
    return compressed


def read_results(path_or_buffer: str | Path | IO[str]) -> pd.DataFrame:
    """A CSV file written from `results_frame` (or its .gz, `published_path`), as a runs table
    (`ResultStore.runs_frame()`'s shape: JSON columns decoded to dicts, floats exactly as written)."""
    if isinstance(path_or_buffer, (str, Path)):
        path_or_buffer = published_path(path_or_buffer)
    frame = pd.read_csv(path_or_buffer, float_precision="round_trip", keep_default_na=False,
                        na_values=[""], dtype={"run_id": str, "config_id": str, "architecture": str,
                                               "task": str, "status": str, "preset": object, "error": object})
    for column in JSON_COLUMNS:
        frame[column] = frame[column].map(lambda text: json.loads(text) if isinstance(text, str) and text else {})
    return frame


def load_runs(path: str | Path) -> pd.DataFrame:
    """The runs of a results store (an .sqlite file), or of a published leaderboard (a folder
    holding results.csv, or that CSV file), as a runs table with `planned_seeds` and
    `tuning_trial` columns."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "results.csv"
    path = published_path(path)
    if not path.is_file():
        raise BenchmarkError(f"no results at {path}: pass a results store (.sqlite), a published "
                             f"leaderboard folder or its results.csv")
    if path.name.lower().endswith((".csv", ".csv.gz")):
        return read_results(path)
    store = ResultStore(path)
    return _annotated(store.runs_frame(), store.sweep_frame())


# --------------------------------------------------------------------------- comparing two sets of runs


def compare(runs_a: pd.DataFrame, runs_b: pd.DataFrame, names: tuple[str, str] = ("A", "B")) -> pd.DataFrame:
    """Each configuration of A beside the same one of B, matched by (task, architecture,
    config_id), else (when versions changed the id) by (task, architecture, settings shown):
    mean of each over completed seeds, difference B - A, Welch's p-value and whether the
    difference is beyond seed noise (p < 0.05). Rows on one side only are listed too."""
    name_a, name_b = names
    both = pd.concat([_annotated(runs_a, None).assign(_side=name_a),
                      _annotated(runs_b, None).assign(_side=name_b)], ignore_index=True)
    both = both[~both.tuning_trial]
    configurations = _configurations(both)
    a = configurations[configurations._side == name_a].drop(columns="_side")
    b = configurations[configurations._side == name_b].drop(columns="_side")
    by_id = a.merge(b, on=["task", "architecture", "config_id"], suffixes=("_a", "_b"))
    rest_a = a[~a.config_id.isin(by_id.config_id)]
    rest_b = b[~b.config_id.isin(by_id.config_id)]
    by_settings = rest_a.merge(rest_b, on=["task", "architecture", "table", "settings", "metric"],
                               how="outer", suffixes=("_a", "_b"))
    by_id = by_id.rename(columns={"table_a": "table", "settings_a": "settings", "metric_a": "metric"})
    rows = []
    for row in pd.concat([by_id, by_settings], ignore_index=True).itertuples():
        scores_a = row.scores_a if isinstance(row.scores_a, np.ndarray) else None
        scores_b = row.scores_b if isinstance(row.scores_b, np.ndarray) else None
        mean_a = float(scores_a.mean()) if scores_a is not None and len(scores_a) else float("nan")
        mean_b = float(scores_b.mean()) if scores_b is not None and len(scores_b) else float("nan")
        p = welch_p(scores_a, scores_b) if scores_a is not None and scores_b is not None else float("nan")
        rows.append({"task": row.task, "table": row.table, "architecture": row.architecture,
                     "settings": row.settings, "metric": row.metric,
                     f"mean {name_a}": mean_a, f"mean {name_b}": mean_b,
                     "difference": mean_b - mean_a,
                     f"seeds {name_a}": 0 if scores_a is None else len(scores_a),
                     f"seeds {name_b}": 0 if scores_b is None else len(scores_b),
                     "p (Welch)": p,
                     "beyond seed noise": _noise_verdict(scores_a, scores_b, p, names)})
    columns = ["task", "table", "architecture", "settings", "metric", f"mean {name_a}", f"mean {name_b}",
               "difference", f"seeds {name_a}", f"seeds {name_b}", "p (Welch)", "beyond seed noise"]
    return pd.DataFrame(rows, columns=columns).sort_values(["task", "table", "architecture", "settings"],
                                          kind="stable").reset_index(drop=True)


def _noise_verdict(scores_a: np.ndarray | None, scores_b: np.ndarray | None, p: float,
                   names: tuple[str, str]) -> str:
    """'yes' (p < 0.05), 'no', 'n<2' (a side has fewer than 2 completed seeds), or 'only in X'."""
    if scores_a is None:
        return f"only in {names[1]}"
    if scores_b is None:
        return f"only in {names[0]}"
    if math.isnan(p):
        return "n<2"
    return "yes" if p < ALPHA else "no"


def _configurations(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (side, task, architecture, config_id): its table's group, the settings shown,
    the primary metric and the completed seeds' scores."""
    rows = []
    for name, _title, members in _groups(runs):
        info = _task_info(members[members.status == "completed"])
        members = members.assign(score=_scores(members, info["primary_metric"]))
        varying = [key for key in _varying_settings(members) if not _splits_tables(key, info)]
        keys = ["_side", "architecture", "config_id"]
        for (side, architecture, config_id), group in members.groupby(keys, sort=False):
            completed = group[group.status == "completed"]
            rows.append({"_side": side, "task": name, "table": group.group.iloc[0],
                         "architecture": architecture, "config_id": config_id,
                         "settings": _settings_label(group.config.iloc[0], varying),
                         "metric": f"{info['primary_metric']} ({info['direction']})",
                         "scores": completed.score.dropna().to_numpy()})
    return pd.DataFrame(rows, columns=["_side", "task", "table", "architecture", "config_id",
                                       "settings", "metric", "scores"])


def render_comparison(frame: pd.DataFrame, fmt: Format = "md") -> str:
    """A comparison from `compare` as Markdown, CSV, JSON (a list of rows) or a LaTeX table."""
    if fmt == "csv":
        return csv_frame(frame).to_csv(index=False)
    if fmt == "json":
        return json.dumps(_records(frame), indent=2, ensure_ascii=False) + "\n"
    if fmt == "latex":
        return _latex(frame, "Comparison; beyond seed noise: Welch's t-test p < 0.05")
    if frame.empty:
        return "No configuration to compare.\n"
    return (markdown_frame(frame).to_markdown(index=False, floatfmt=".4g")
            + "\n\nbeyond seed noise: Welch's t-test of the seed scores, p < 0.05.\n")


# --------------------------------------------------------------------------- rendering


def references(runs: pd.DataFrame, task: str) -> list[dict]:
    """Published reference numbers and baselines recorded with the task's completed runs, each
    once (a baseline that depends on a task option, like copy's, appears once per value)."""
    runs = runs[(runs.task == task) & (runs.status == "completed")]
    unique = {}
    for info in runs.task_info:
        for reference in info.get("references", []):
            unique.setdefault((reference["model"], reference["value"]), reference)
    return list(unique.values())


def _curve_section(runs: pd.DataFrame, task: str, curves: pd.DataFrame | None = None) -> str:
    runs = runs[(runs.status == "completed") & (runs.task == task)]
    info = _task_info(runs)
    setting, text = info.get("curve_setting"), ""
    if setting:
        text += (f"\nTest {info['primary_metric']} by {setting} (mean over seeds):\n\n"
                 + markdown_frame(curve_frame(runs, setting)).to_markdown(index=False, floatfmt=".4g") + "\n")
    lengths = length_curve_frame(runs, curves) if curves is not None else pd.DataFrame()
    if not lengths.empty:
        text += (f"\nTest {info['primary_metric']} against the tested length n, {length_training_note(runs)} "
                 f"(mean over the lengths of each column, then over seeds):\n\n"
                 + markdown_frame(lengths).to_markdown(index=False, floatfmt=".3g") + "\n")
    return text


def length_training_note(runs: pd.DataFrame) -> str:
    """Which lengths the runs trained on, e.g. "trained on n = 1-40"."""
    spans = {(config.get("task.min_length"), config.get("task.max_length")) for config in runs.config}
    return "trained on n = " + ", ".join(f"{low}-{high}" for low, high in sorted(spans, key=str))


def render(store: ResultStore, task: str | None = None, fmt: Format = "md") -> str:
    """The leaderboard as Markdown (tables with their references and curves), CSV (one table,
    with a `table` column), JSON (a list of tables) or LaTeX (booktabs tables)."""
    frames = leaderboard_frames(store, task)
    if not frames:
        where = f" for task '{task}'" if task else ""
        return f"No completed runs{where} in {store.path}: run `rnnbench sweep` or `rnnbench run` first.\n"
    return render_tables(frames, store.runs_frame(), fmt, curves=store.test_curves_frame())


def render_tables(frames: dict[str, pd.DataFrame], runs: pd.DataFrame, fmt: Format = "md",
                  heading: str = "##", curves: pd.DataFrame | None = None) -> str:
    """Tables from `leaderboard_tables` in a format; `runs` (the runs they were computed from)
    give Markdown its curve and reference sections, `curves` (`ResultStore.test_curves_frame`)
    its tables of the metric against the tested length."""
    if fmt == "csv":
        return csv_frame(pd.concat([_plain(frame).assign(table=title, tuned=frame.attrs.get("tuned", False))
                                    for title, frame in frames.items()])).to_csv(index=False)
    if fmt == "json":
        return json.dumps([_json_table(title, frame) for title, frame in frames.items()], indent=2,
                          ensure_ascii=False) + "\n"
    if fmt == "latex":
        return "\n".join(_latex_table(title, frame) for title, frame in frames.items())
    sections = []
    last_table = {frame.attrs["task"]: title for title, frame in frames.items()}
    for title, frame in frames.items():
        name = frame.attrs["task"]
        text = f"{heading} {markdown_text(title)}\n\n" + markdown_table(frame)
        if title == last_table[name]:   # the curve and references once, after the last table
            text += _curve_section(runs, name, curves) + _references_section(runs, name)
        sections.append(text)
    return "\n".join(sections)


def _references_section(runs: pd.DataFrame, task: str) -> str:
    refs = references(runs, task)
    if not refs:
        return ""
    return "\nPublished / baseline:\n" + "".join(
        markdown_text(f"{ref['model']}: {ref['value']:.4g} ({ref['source']})"
                      f"{' - ' + ref['note'] if ref.get('note') else ''}").join(["- ", "\n"])
        for ref in refs)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """The table without its attrs (pandas keeps attrs through concat only when all agree)."""
    frame = frame.copy()
    frame.attrs = {}
    return frame


def settings_text(shared: dict) -> str:
    """'budget steps=60, batch=64; task.length=10'."""
    task_settings = ", ".join(f"{key}={value}" for key, value in shared.items() if key != "budget")
    return "; ".join(part for part in (f"budget {shared['budget']}", task_settings) if part)


def _legend(frame: pd.DataFrame) -> str:
    """What a table's numbers are, in one sentence."""
    better = "lower" if frame.attrs["direction"] == "min" else "higher"
    how = ("Student t" if frame.attrs["interval"] == "t" else "percentile bootstrap")
    if frame.attrs.get("reference"):
        return (f"Reference runs, not ranked: test {frame.attrs['primary_metric']} ({better} is better), "
                f"for comparison with the published numbers below.")
    scale = " of the log scores" if frame.attrs['primary_metric'] in RATIO_SCALE else ""
    text = (f"Test {frame.attrs['primary_metric']} ({better} is better): mean over completed seeds, "
            f"95% interval of the mean ({how}); ≈best: Welch's t-test{scale} against the best row, "
            f"p ≥ 0.05.")
    if not frame.attrs.get("tuned"):
        text = ("Untuned: one shared configuration for every architecture (the sweep has no `tune:`), "
                "so this ranks the architectures at that setting, not each at its best. " + text)
    if frame.attrs.get("baselines") is not None:
        text += (f" baseline: the strongest of the task's trivial predictors "
                 f"({', '.join(frame.attrs['baselines']) or 'none recorded'}), scored on each seed's test set; "
                 f"a row not beyond it (paired per-seed differences, 95% interval above 0) did not learn "
                 f"and is not ranked.")
    if frame.attrs.get("baselines") is None:   # runs from before the protocol: a record, not a ranking
        text += (" Not a ranking under the protocol: these runs recorded no baselines, so nothing here "
                 "shows which rows learned; the order records these runs only.")
    if (frame.seeds < MIN_SEEDS).any():
        text += f" Rows with fewer than {MIN_SEEDS} completed seeds rank nothing reliably."
    if frame.attrs.get("cut_by_budget"):
        text = (f"**Cut by the budget: {', '.join(frame.attrs['cut_by_budget'])} (leading) were still improving "
                f"when it ended (validation better by more than 1% over the last fifth of training); this "
                f"ranking is the budget's, not the architectures'.** " + text)
    if frame.attrs.get("none_learned"):
        text = "**No row is beyond its baseline: nothing in this table learned the task.** " + text
    return text


def display_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with short column names, its interval as one column and without the columns
    that the settings line states once (budget; settings when no row has any)."""
    primary = frame.attrs["primary_metric"]
    low, high = frame["95% CI low"], frame["95% CI high"]
    if frame.attrs["interval"] == "t":
        interval = ("±95%", (high - low) / 2)
    else:
        interval = ("95% CI", [f"[{a:.4g}, {b:.4g}]" if not math.isnan(a) else "" for a, b in zip(low, high)])
    mixed = frame.budget.nunique() > 1   # closed-form and gradient-trained rows in one table
    short = frame.drop(columns=["95% CI low", "95% CI high"] + ([] if mixed else ["budget"]))
    if mixed:
        short = short.rename(columns={"budget": "training"})
    if (short.settings == "-").all():
        short = short.drop(columns="settings")
    short.insert(short.columns.get_loc(f"{primary} (mean)") + 1, *interval)
    return short.rename(columns={f"{primary} (mean)": "mean", "wall time (s)": "wall s"})


def markdown_table(frame: pd.DataFrame) -> str:
    """One leaderboard table as Markdown: its legend and shared settings, the table with short
    column names, and a tuned sweep's trial counts and importances below it."""
    text = _legend(frame) + "\n\nSettings: " + markdown_text(settings_text(frame.attrs["shared_settings"])) + "\n\n"
    threads = frame.attrs.get("threads", [])
    if len(threads) > 1:   # results are reproducible per thread count, and throughput depends on it
        text += (f"Rows were produced with different CPU thread counts ({', '.join(map(str, threads))}): "
                 f"their results and throughput compare only within one count.\n\n")
    versions = frame.attrs.get("code_versions", {})
    if len(versions) > 1:   # a fix between two commits may be what separates two rows
        text += ("Rows come from different code versions: " + "; ".join(
            f"{commit[:10]} ({', '.join(markdown_text(name) for name in names)})"
            for commit, names in versions.items()) + ".\n\n")
    shown = markdown_frame(display_table(frame))
    shown = shown.astype(object).where(shown.notna(), None)   # tabulate shows None, not NaN, as missing
    text += shown.to_markdown(index=False, floatfmt=".4g", missingval="-") + "\n"
    legend = frame.attrs.get("settings_legend") or {}
    if legend and not (frame.settings == "-").all():
        text += "\nShort names: " + "; ".join(f"{markdown_text(short)} = {markdown_text(key)}"
                                           for short, key in sorted(legend.items())) + ".\n"
    for note in frame.attrs.get("robustness", []):
        window = (f"learning rates {note['lr_low']:.3g} to {note['lr_high']:.3g}" if note["lr_low"] is not None
                  else "no learning rate")
        halving = note.get("rungs")
        at = f" at the first rung's {halving[0][0]:,} steps" if halving else ""
        text += (f"\nRobustness of {markdown_text(note['architecture'])}: {note['within']} of {note['trials']} "
                 f"trials within 5% of its best validation score{at} ({window}); {note['diverged']} diverged.")
        if halving:
            text += (" Successive halving: " + ", then ".join(f"{count} at {steps:,} steps" for steps, count in halving)
                     + ".")
    if frame.attrs.get("robustness"):
        text += "\n"
    if frame.attrs.get("untuned"):
        text += (f"\nNot tuned: {', '.join(markdown_text(name) for name in frame.attrs['untuned'])} (the sweep file's "
                 f"`tune: false`): one configuration, run with every seed.\n")
    for note in frame.attrs.get("tuning", []):
        importances = ", ".join(f"{key} {value:.2f}" for key, value in note["importances"].items())
        text += (f"\nTuned {markdown_text(note['architecture'])}: {note['trials']} trials; hyper-parameter importances: "
                 f"{importances or 'none'}")
    return text + ("\n" if frame.attrs.get("tuning") else "")


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON values: numbers as numbers, NaN and None as null."""
    return [{key: _json_value(value) for key, value in row.items()} for row in frame.to_dict(orient="records")]


def _json_value(value: object) -> object:
    """A cell as a JSON value: numpy numbers as Python numbers, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_table(title: str, frame: pd.DataFrame) -> dict:
    table = {"title": title, "task": frame.attrs["task"], "primary_metric": frame.attrs["primary_metric"],
             "direction": frame.attrs["direction"], "shared_settings": frame.attrs["shared_settings"],
             "threads": frame.attrs.get("threads", []), "rows": _records(frame), "tuning": frame.attrs["tuning"],
             "tuned": frame.attrs.get("tuned", False), "code_versions": frame.attrs.get("code_versions", {})}
    if frame.attrs.get("baselines") is not None:
        table.update(baselines=frame.attrs["baselines"], none_learned=frame.attrs["none_learned"])
    if frame.attrs.get("cut_by_budget") is not None:
        table.update(cut_by_budget=frame.attrs["cut_by_budget"])
    if frame.attrs.get("robustness"):
        table.update(robustness=frame.attrs["robustness"])
    return table


def _latex_cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return latex_escape(value)


def _latex(frame: pd.DataFrame, caption: str) -> str:
    """A booktabs table (\\toprule, \\midrule, \\bottomrule): text columns left, numbers right."""
    align = "".join("r" if pd.api.types.is_numeric_dtype(frame[column]) else "l" for column in frame)
    lines = [r"\begin{table}[ht]", r"\centering", rf"\caption{{{latex_escape(caption)}}}",
             rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(latex_escape(column) for column in frame.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_cell(value) for value in row) + r" \\" for row in frame.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _latex_table(title: str, frame: pd.DataFrame) -> str:
    caption = f"{title}. {_legend(frame)} Settings: {settings_text(frame.attrs['shared_settings'])}."
    return _latex(display_table(frame), caption)
