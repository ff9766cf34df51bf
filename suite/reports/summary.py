"""One summary across every published leaderboard: leaderboards/README.md and index.html
(`rnnbench leaderboard summary`), computed from each board's committed results.csv.

Every ranked table whose runs recorded their baselines is one "task" of the summary (reference
tables and tables without baselines are listed, not scored). In it, each run's test score is
normalised between the table's strongest baseline (0) and its best row's mean (1)
(`rnnbench.reports.aggregate.normalise`); an architecture's rows in one table are pooled (its
best configuration when the sweep was tuned). Then, per architecture: its mean normalised score
on every task, the interquartile mean over all its runs with a stratified bootstrap interval
(Agarwal et al. 2021), the probability of improvement over the LSTM, and a performance profile
over tasks. The choice of tasks and of the aggregate can flip a ranking (Dehghani et al. 2021,
"The benchmark lottery"): the per-task columns stay beside the aggregate for that reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rnnbench.core.errors import BenchmarkError
from rnnbench.reports import aggregate
from rnnbench.reports.escaping import markdown_frame, markdown_text
from rnnbench.reports.figures import pyplot, save_png
from rnnbench.reports.html_page import Section, render_page
from rnnbench.reports.leaderboard import BASELINE, leaderboard_tables, read_results

REFERENCE_ARCHITECTURE = "lstm"   # probabilities of improvement are against it
TAUS = np.linspace(-0.25, 1.25, 61)


@dataclass
class Scored:
    """One summarised table: its board, title, and each architecture's normalised run scores."""

    board: str
    title: str
    scores: dict[str, np.ndarray]


def score_tables(root: Path) -> tuple[list[Scored], list[str], list[str]]:
    """(scored tables, notes on tables left out, board names) of every published board under
    `root` (a folder holding results.csv)."""
    scored, left_out, boards = [], [], []
    for folder in sorted({path.parent for pattern in ("*/results.csv", "*/results.csv.gz") for path in root.glob(pattern)}):
        boards.append(folder.name)
        runs = read_results(folder / "results.csv")
        for title, table in leaderboard_tables(runs).items():
            if table.attrs.get("reference"):
                continue
            if not table.attrs.get("baselines"):
                left_out.append(f"{folder.name}: {title} (no baselines recorded with its runs)")
                continue
            scores = _normalised(runs, table)
            if scores:
                scored.append(Scored(folder.name, title, scores))
            else:
                left_out.append(f"{folder.name}: {title} (no row beyond its baseline)")
    return scored, left_out, boards


def _normalised(runs: pd.DataFrame, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """{architecture: normalised test scores of its runs in `table`}; empty when the table's
    best row is not beyond the baseline."""
    primary, direction = table.attrs["primary_metric"], table.attrs["direction"]
    ranked = table[table["≈best"] != "did not learn"]
    if ranked.empty:
        return {}
    best, baseline = float(ranked[f"{primary} (mean)"].iloc[0]), float(table.baseline.mean())
    members = runs[runs.config_id.isin(set(table.attrs["config_ids"])) & (runs.status == "completed")]
    scores: dict[str, list[float]] = {}
    for run in members.itertuples():
        metrics = run.metrics or {}
        if f"test/{primary}" in metrics and any(key.startswith(BASELINE) for key in metrics):
            scores.setdefault(run.architecture, []).append(metrics[f"test/{primary}"])
    return {architecture: aggregate.normalise(np.array(values), baseline, best, direction)
            for architecture, values in scores.items()}


def summary_frame(scored: list[Scored]) -> pd.DataFrame:
    """One row per architecture: the mean normalised score per task, IQM with its interval,
    tasks covered, and P(improvement) over the LSTM."""
    architectures = sorted({name for item in scored for name in item.scores})
    reference = {f"{item.board}: {item.title}": item.scores[REFERENCE_ARCHITECTURE]
                 for item in scored if REFERENCE_ARCHITECTURE in item.scores}
    rows = []
    for architecture in architectures:
        mine = {f"{item.board}: {item.title}": item.scores[architecture]
                for item in scored if architecture in item.scores}
        low, high = aggregate.stratified_bootstrap(mine)
        row = {"architecture": architecture, "tasks": len(mine), "IQM": aggregate.pooled_iqm(mine),
               "IQM 95% low": low, "IQM 95% high": high,
               f"P(> {REFERENCE_ARCHITECTURE})": (aggregate.probability_of_improvement(mine, reference)
                                                 if architecture != REFERENCE_ARCHITECTURE else float("nan"))}
        row.update({task: float(np.nanmean(values)) for task, values in mine.items()})
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.sort_values("IQM", ascending=False, na_position="last").reset_index(drop=True)


def plot_profiles(scored: list[Scored], output: Path) -> Path:
    """Performance profiles: the share of an architecture's runs above each normalised score."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7.6, 4.2))
    for architecture in sorted({name for item in scored for name in item.scores}):
        mine = {item.title: item.scores[architecture] for item in scored if architecture in item.scores}
        axis.plot(TAUS, aggregate.performance_profile(mine, TAUS), label=architecture)
    axis.set_xlabel("normalised score tau (0: strongest baseline, 1: best row)")
    axis.set_ylabel("share of runs scoring above tau")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    figure.tight_layout()
    return save_png(figure, output, dpi=110)


def write_summary(root: Path) -> list[Path]:
    """leaderboards/README.md, index.html and summary.json (and the profile plot) from every
    board under `root`; a BenchmarkError when there is no published board."""
    scored, left_out, boards = score_tables(root)
    if not boards:
        raise BenchmarkError(f"no published leaderboard under {root}/: publish one first "
                             f"(`rnnbench leaderboard publish NAME --store STORE`)")
    frame = summary_frame(scored) if scored else pd.DataFrame()
    links = [f"- [{markdown_text(name)}]({name}/README.md)" for name in boards]
    lines = ["# rnnbench: every leaderboard, summarised", "",
             "Made by `rnnbench leaderboard summary` from each board's results.csv. Scores are normalised "
             "per table: 0 is the table's strongest trivial baseline, 1 its best row. IQM: interquartile "
             "mean of all of an architecture's runs, with a 95% stratified bootstrap interval (Agarwal et "
             f"al. 2021); P(> {REFERENCE_ARCHITECTURE}): the probability that a run of the architecture "
             f"beats a run of the {REFERENCE_ARCHITECTURE} on a task, averaged over the tasks both ran.", "",
             "## Leaderboards", "", *links, ""]
    written = []
    if scored:
        profile = plot_profiles(scored, root / "summary-profiles.png")
        written.append(profile)
        lines += ["## Across tasks", "", markdown_frame(frame).to_markdown(index=False, floatfmt=".3g"), "",
                  f"![Performance profiles]({profile.name})", ""]
    else:
        lines += ["## Across tasks", "", "No table can be summarised yet: none recorded the baselines "
                  "that normalise its scores.", ""]
    if left_out:
        lines += ["## Not summarised", "", *(f"- {markdown_text(note)}" for note in left_out), ""]
    (root / "README.md").write_text("\n".join(lines))
    sections = [Section("Leaderboards", "", links=[(name, f"{name}/index.html") for name in boards])]
    if scored:
        sections.append(Section("Across tasks", "", [("summary", frame)],
                                [("Performance profiles", profile.read_bytes())]))
    if left_out:
        sections.append(Section("Not summarised", "\n".join(left_out), [], []))
    (root / "index.html").write_text(render_page("rnnbench: every leaderboard, summarised", sections))
    (root / "summary.json").write_text(json.dumps(
        {"boards": boards, "left_out": left_out,
         "architectures": json.loads(frame.to_json(orient="records")) if scored else []}, indent=2) + "\n")
    return [root / "README.md", root / "index.html", root / "summary.json", *written]
