"""`rnnbench leaderboard publish NAME`: a leaderboard folder from a committed sweep file and the
results store it ran into.

leaderboards/NAME/ holds:
    sweep.yaml        the sweep file (committed first: the folder is named after it)
    reference.yaml    optional: a second sweep file whose runs are shown as labelled reference
                      rows (e.g. a paper's full configuration), in tables of their own, never ranked
    runs.sqlite.gz    optional: the store of a board run in parts, compressed, to resume from
    findings.md       optional, written by hand: the README's opening findings, each number a
                      reference to a table cell filled in here (`rnnbench.reports.findings`)
    README.md         the findings, known answers, protocol and cost, the tables and plots,
                      budget, hardware, and the commands that reproduce them
    index.html        the same as one self-contained page (sortable tables, inline plots)
    results.csv       every run of the sweep: run id, settings, seed, status, metrics (`read_results`)
    history.csv       every evaluation round of those runs (for the learning curves); either CSV
                      is committed as NAME.csv.gz once it grows to 900 KB (`published_path`)
    curves.csv        the runs' test curves, where a task records one (accuracy at each tested
                      length: the length-generalisation tables and plots)
    tuning.csv        a tuned sweep's trials and hyper-parameter importances per pair
    summary.json      the tables, numbers as numbers
    environment.json  hardware, versions, git commit and date of the runs and of publishing
    plots/            metric against parameters, against the task's curve setting, learning
                      curves, throughput, and gradient flow where `rnnbench diagnose` stored one

Every number in README.md is computed from results.csv (`leaderboard_tables(read_results(...))`),
which a test checks.
"""

from __future__ import annotations

import datetime
import json
import platform
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from rnnbench.reports import leaderboard_plots as board_plots

from rnnbench.sweeps import known_answers
from rnnbench.sweeps import spec as sweepfile
from rnnbench.core.errors import BenchmarkError
from rnnbench.core.revision import git_commit
from rnnbench.reports.escaping import csv_frame, markdown_text
from rnnbench.reports.findings import FINDINGS_FILE, cost_line, edge_line, fill_findings, protocol_line
from rnnbench.reports.html_page import Section, render_page
from rnnbench.reports.leaderboard import (display_table, leaderboard_frames, leaderboard_tables,
                                          length_curve_frame, length_training_note, read_results,
                                          published_path, render_tables, results_frame, settings_text,
                                          write_published_csv)
from rnnbench.store import ResultStore

ROOT = Path("leaderboards")
GRADIENT_FLOW = "-gradient-flow.png"
TUNING_FILE = "tuning.csv"   # a tuned sweep's trial counts and importances per pair
CURVES_FILE = "curves.csv"   # the runs' test curves (metric against tested length)
COMMITTED_STORE = "runs.sqlite.gz"   # a board run in parts commits its store, compressed


def publish(store: ResultStore, name: str, root: Path = ROOT) -> Path:
    """Write leaderboards/NAME/ (see the module docstring) from the runs the sweep file
    leaderboards/NAME/sweep.yaml planned in `store`; return the folder."""
    folder, spec, sweep_file, reference_file = _board_folder(name, root)
    planned = store.sweep_frame(spec.name)
    if planned.empty:
        raise BenchmarkError(f"sweep '{spec.name}' has not run in {store.path}: run `rnnbench sweep "
                             f"{sweep_file} --store {store.path}` first, or pass the --store it ran into")
    if reference_file.is_file():
        planned = pd.concat([planned, _reference_plan(store, reference_file)], ignore_index=True)
    runs = store.runs_frame()
    runs = runs[runs.run_id.isin(set(planned.run_id))]
    if not (runs.status == "completed").any():
        raise BenchmarkError(f"sweep '{spec.name}' has no completed run in {store.path} yet: see "
                             f"`rnnbench sweep status {sweep_file}`")
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    write_published_csv(csv_frame(results_frame(runs, planned)), folder / "results.csv")
    write_published_csv(csv_frame(_history(store, runs)), folder / "history.csv")
    curves = store.test_curves_frame()
    curves = curves[curves.run_id.isin(set(runs.run_id))]
    (folder / CURVES_FILE).unlink(missing_ok=True)
    (folder / (CURVES_FILE + ".gz")).unlink(missing_ok=True)
    if not curves.empty:
        write_published_csv(curves, folder / CURVES_FILE)
    tuning = store.tuning_frame(spec.name)
    (folder / TUNING_FILE).unlink(missing_ok=True)
    if not tuning.empty:   # trial counts and importances, for a rendering without the store
        tuning.assign(importances=tuning.importances.map(json.dumps)).to_csv(folder / TUNING_FILE, index=False)
    _render(folder, spec, name, tuning=tuning, gradient_flows=lambda members: _gradient_flows(store, members),
            require_baselines=True)
    return folder


def republish(name: str, root: Path = ROOT) -> Path:
    """Render leaderboards/NAME/ again from its committed results.csv and history.csv, without
    the store: after a change in how the suite computes or shows a leaderboard (its statistics,
    labels, plots), every published number follows from the same exported runs. Gradient-flow
    plots, drawn from curves only the store holds, are kept as they are. `rnnbench leaderboard
    publish NAME --from-results`."""
    folder, spec, _, _ = _board_folder(name, root)
    for part in ("results.csv", "history.csv"):
        if not published_path(folder / part).is_file():
            raise BenchmarkError(f"{folder / part} is missing: publish {name} from its store first "
                                 f"(`rnnbench leaderboard publish {name} --store STORE`)")
    tuning = None
    if (folder / TUNING_FILE).is_file():
        tuning = pd.read_csv(folder / TUNING_FILE, dtype={"best_run_id": str})
        tuning["importances"] = tuning.importances.map(json.loads)
    _render(folder, spec, name, tuning=tuning, gradient_flows=None)
    return folder


def _board_folder(name: str, root: Path) -> tuple[Path, Any, Path, Path]:
    """(folder, its sweep spec, sweep.yaml, reference.yaml) of a leaderboard, refusing a folder
    that leads outside `root` and one without a sweep file."""
    folder = Path(root) / name
    real_root = Path(root).resolve()
    if folder.is_symlink() or not folder.resolve().is_relative_to(real_root):
        raise BenchmarkError(f"{folder} leads outside {root}/ (to {folder.resolve()}): a leaderboard is "
                             f"published into a folder of its own under {root}/; replace the link by "
                             f"a folder")
    sweep_file = folder / "sweep.yaml"
    if not sweep_file.is_file():
        raise BenchmarkError(f"no sweep file at {sweep_file}: a published leaderboard comes from a "
                             f"committed sweep file; write one there (see the README's Sweeps) and "
                             f"run it with `rnnbench sweep {sweep_file}`")
    return folder, sweepfile.load(sweep_file), sweep_file, folder / "reference.yaml"


def _render(folder: Path, spec: Any, name: str, tuning: pd.DataFrame | None,
            gradient_flows: Callable[[pd.DataFrame], list] | None, require_baselines: bool = False) -> None:
    """README.md, index.html, summary.json, environment.json and plots/ from the folder's
    results.csv and history.csv: every number below comes from those files. A new publication
    (`require_baselines`) refuses a ranked table whose runs recorded no baselines."""
    known = known_answers.statement(folder.parent / "known-answers")   # refuses answers never checked
    published = read_results(folder / "results.csv")
    history = read_history(folder / "history.csv")
    curves = read_curves(folder / CURVES_FILE)
    tables = leaderboard_tables(published, tuning=tuning)
    if not tables:
        raise BenchmarkError(f"{folder / 'results.csv'} holds no completed run to rank")
    bare = [title for title, table in tables.items()
            if not table.attrs.get("reference") and table.attrs.get("baselines") is None]
    if require_baselines and bare:
        raise BenchmarkError(f"table '{bare[0]}' has no baselines recorded with its runs, so nothing "
                             f"says whether its rows learned: declare them in the task (Task.baselines) "
                             f"and run the sweep again with this version")
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    for earlier in (folder / "plots").glob("*.png"):   # the plots are drawn afresh: none stays stale
        if gradient_flows is not None or not earlier.name.endswith(GRADIENT_FLOW):
            earlier.unlink()
    plots = _plots(published, history, tables, gradient_flows, folder / "plots", curves)
    environment = _environment(published)
    (folder / "environment.json").write_text(json.dumps(environment, indent=2, sort_keys=True) + "\n")
    (folder / "summary.json").write_text(render_tables(tables, published, "json"))
    sweep_file, reference_file = folder / "sweep.yaml", folder / "reference.yaml"
    command = " && ".join([f"rnnbench sweep {sweep_file} --store STORE",
                           *([f"rnnbench sweep {reference_file} --store STORE"] if reference_file.is_file() else []),
                           f"rnnbench leaderboard publish {name} --store STORE"])
    findings_file = folder / FINDINGS_FILE
    findings = (fill_findings(findings_file.read_text(), tables, str(findings_file))
                if findings_file.is_file() else None)
    (folder / "README.md").write_text(_readme(spec, tables, published, plots, environment, command, folder, known,
                                              curves, findings))
    (folder / "index.html").write_text(_page(spec.name, tables, plots, environment, command, published, curves,
                                             findings, spec))


def read_history(path: Path) -> pd.DataFrame:
    """history.csv as written by `publish` (one row per run, round and metric)."""
    return pd.read_csv(published_path(path), dtype={"run_id": str, "config_id": str, "architecture": str,
                                                    "task": str, "name": str}, float_precision="round_trip")


def read_curves(path: Path) -> pd.DataFrame:
    """curves.csv as written by `publish` (run_id, name, x, y); empty if the board has none."""
    path = published_path(path)
    if not path.is_file():
        return pd.DataFrame(columns=["run_id", "name", "x", "y"])
    return pd.read_csv(path, dtype={"run_id": str, "name": str}, float_precision="round_trip")


def store_page(store: ResultStore, task: str | None = None) -> str:
    """Any store's leaderboard as one self-contained HTML page, tables and plots, as `publish`
    writes index.html (`rnnbench leaderboard --format html`); a BenchmarkError if nothing completed."""
    tables = leaderboard_frames(store, task)
    if not tables:
        where = f" for task '{task}'" if task else ""
        raise BenchmarkError(f"no completed runs{where} in {store.path}: run `rnnbench sweep` or "
                             f"`rnnbench run` first")
    runs = store.runs_frame()
    runs = runs[runs.config_id.isin(set().union(*(table.attrs["config_ids"] for table in tables.values())))]
    curves = store.test_curves_frame()
    with tempfile.TemporaryDirectory() as folder:   # the page holds the plots' bytes
        plots = _plots(runs, _history(store, runs), tables, lambda members: _gradient_flows(store, members),
                       Path(folder), curves)
        command = f"rnnbench leaderboard --store {store.path}{f' --task {task}' if task else ''} --format html"
        return _page(store.path.stem, tables, plots, _environment(runs), command, runs, curves)


def _reference_plan(store: ResultStore, reference_file: Path) -> pd.DataFrame:
    """The runs reference.yaml planned in `store`, with the role "reference"."""
    spec = sweepfile.load(reference_file)
    planned = store.sweep_frame(spec.name)
    if planned.empty:
        raise BenchmarkError(f"the reference sweep '{spec.name}' has not run in {store.path}: run "
                             f"`rnnbench sweep {reference_file} --store {store.path}` first")
    return planned.assign(role="reference")


def _history(store: ResultStore, runs: pd.DataFrame) -> pd.DataFrame:
    rows = [(run.run_id, run.architecture, run.task, run.config_id, run.seed, epoch, step, metric, value)
            for run in runs.itertuples() for epoch, step, metric, value in store.history(run.run_id)]
    return pd.DataFrame(rows, columns=["run_id", "architecture", "task", "config_id", "seed", "round", "step",
                                       "name", "value"])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80] or "table"


def _plots(runs: pd.DataFrame, history: pd.DataFrame, tables: dict[str, pd.DataFrame],
           gradient_flows: Callable[[pd.DataFrame], list] | None, folder: Path,
           curves: pd.DataFrame) -> dict[str, list[tuple[str, Path]]]:
    """{table title: [(caption, png path)]}: the plots of each table's runs."""
    ranked = set().union(*(table.attrs["config_ids"] for table in tables.values()))
    completed = runs[(runs.status == "completed") & runs.config_id.isin(ranked)]
    last_table = {table.attrs["task"]: title for title, table in tables.items()}
    plots: dict[str, list[tuple[str, Path]]] = {}
    for title, table in tables.items():
        task, metric = table.attrs["task"], table.attrs["primary_metric"]
        scored = completed[completed.task == task].assign(
            score=lambda frame: frame.metrics.map(lambda metrics: metrics.get(f"test/{metric}")))
        members = scored[scored.config_id.isin(set(table.attrs["config_ids"]))]
        slug, drawn = _slug(title), []
        if board_plots.parameters_plot_adds_something(members):
            drawn.append((f"Test {metric} against trained parameters",
                          board_plots.plot_metric_against_parameters(
                              members, metric, title, folder / f"{slug}-parameters.png")))
        sized = members.assign(state_floats=members.metrics.map(lambda metrics: metrics.get("model/state_floats")))
        if board_plots.state_plot_adds_something(sized):
            drawn.append((f"Test {metric} against the recurrent state size (floats per sequence)",
                          board_plots.plot_metric_against_state(sized.dropna(subset=["state_floats"]), metric,
                                                                title, folder / f"{slug}-state.png")))
        setting = members.task_info.iloc[0].get("curve_setting")
        values = scored.config.map(lambda config: config.get(setting)) if setting else None
        if title == last_table[task] and setting and values.nunique() > 1:   # once per task, over its tables
            drawn.append((f"Test {metric} against {setting} (mean and 95% band over seeds)",
                          board_plots.plot_metric_against_setting(
                              scored.assign(value=values), setting, metric, task,
                              folder / f"{_slug(task)}-{_slug(setting)}.png")))
        points = curves[(curves.name == f"test/{metric}") & curves.run_id.isin(set(members.run_id))]
        if not points.empty:
            architectures = members.set_index("run_id").architecture
            drawn.append((f"Test {metric} against the tested length n, {length_training_note(members)} "
                          f"(mean and 95% band over seeds)",
                          board_plots.plot_metric_against_length(
                              points.assign(architecture=points.run_id.map(architectures)), metric, title,
                              folder / f"{slug}-length.png")))
        rounds = history[history.run_id.isin(set(members.run_id)) & (history.name == f"val/{metric}")]
        if not rounds.empty:
            drawn.append((f"Validation {metric} during training (mean and 95% band over seeds)",
                          board_plots.plot_learning_curves(rounds, metric, title,
                                                           folder / f"{slug}-learning-curves.png")))
        unit = members.task_info.iloc[0].get("item_unit", "items")
        if members.dropna(subset=["items_per_second"]).architecture.nunique() > 1:   # one bar says nothing
            drawn.append((f"Training throughput ({unit}/s)", board_plots.plot_throughput(
                members.dropna(subset=["items_per_second"]), unit, title, folder / f"{slug}-throughput.png")))
        caption = "Gradient flow, ||dL_T/dx_t|| against T - t (rnnbench diagnose gradients)"
        kept = folder / f"{slug}{GRADIENT_FLOW}"
        flows = gradient_flows(members) if gradient_flows is not None else []
        if flows:
            from rnnbench.reports.run_plots import plot_gradient_flow

            drawn.append((caption, plot_gradient_flow(flows, title, kept)))
        elif gradient_flows is None and kept.is_file():   # re-rendered without the store: kept
            drawn.append((caption, kept))
        plots[title] = drawn
    return plots


def _gradient_flows(store: ResultStore, runs: pd.DataFrame) -> list:
    """The gradient-flow curves stored with these runs (one per architecture), if any."""
    from rnnbench.reports.gradient_flow import stored_gradient_flow

    flows, seen = [], set()
    for run in runs.itertuples():
        if run.architecture not in seen and store.curve(run.run_id, "grad_norm/init"):
            flows.append(stored_gradient_flow(store, run.run_id, run.architecture, run.task))
            seen.add(run.architecture)
    return flows


def _environment(runs: pd.DataFrame) -> dict:
    """What the runs ran on (each distinct value, with its count of runs) and when this was published."""
    recorded: dict[str, dict[str, int]] = {}
    for environment in runs.environment:
        for key in ("device", "accelerator", "threads", "python", "torch", "lightning", "git_commit", "hostname"):
            if key in environment:
                counts = recorded.setdefault(key, {})
                counts[str(environment[key])] = counts.get(str(environment[key]), 0) + 1
    commit = git_commit()
    finished = pd.to_numeric(runs.finished_at, errors="coerce").dropna()
    return {"runs": recorded,
            "runs_finished": {"first": _date(finished.min()), "last": _date(finished.max())} if len(finished) else {},
            "published": {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                          "git_commit": commit, "machine": platform.machine(),
                          "processor": platform.processor() or None, "platform": platform.platform()}}


def _date(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(float(timestamp), datetime.timezone.utc).isoformat(timespec="seconds")


def _hardware(environment: dict) -> str:
    runs = environment["runs"]
    def values(key: str) -> str:
        return ", ".join(f"{value} ({count} runs)" if len(runs.get(key, {})) > 1 else value
                         for value, count in runs.get(key, {}).items()) or "unknown"
    return (f"{values('accelerator')} ({values('device')}), {values('threads')} thread(s) per run; "
            f"torch {values('torch')}, Lightning {values('lightning')}, Python {values('python')}; "
            f"code at {values('git_commit')}")


def _readme(spec, tables, runs, plots, environment, command, folder: Path, known: str | None = None,
            curves: pd.DataFrame | None = None, findings: str | None = None) -> str:
    statuses = runs.status.value_counts()
    results_name = published_path(folder / "results.csv").name
    lines = [f"# Leaderboard: {markdown_text(spec.name)}", "",
             f"Produced by `rnnbench leaderboard publish {spec.name}` from the sweep file "
             f"[sweep.yaml](sweep.yaml) and the runs it planned"
             + (" (and the reference runs of [reference.yaml](reference.yaml), shown apart and not ranked)"
                if (folder / "reference.yaml").is_file() else "")
             + "; every number below is computed from "
             f"[{results_name}]({results_name}) (one row per run). Also as a page: [index.html](index.html).", "",
             *(["## Findings", "", findings.strip(), ""] if findings else []),
             *([f"- {markdown_text(known)}"] if known else []),
             f"- {markdown_text(protocol_line(spec))}",
             *([f"- {markdown_text(edge)}"] if (edge := edge_line(spec, runs)) else []),
             f"- {markdown_text(cost_line(runs))}",
             f"- Runs: {len(runs)} ({', '.join(f'{count} {status}' for status, count in statuses.items())}), "
             f"{len(spec.seeds)} seed(s) planned per configuration.",
             f"- Hardware: {_hardware(environment)}.",
             f"- Runs finished between {environment['runs_finished'].get('first', '?')} and "
             f"{environment['runs_finished'].get('last', '?')}; published "
             f"{environment['published']['date']}.",
             f"- Reproduce: `{command}`.",
             *([f"- Run in parts: its store is committed compressed beside this file; "
                f"`gunzip -k {folder / COMMITTED_STORE}` then `rnnbench sweep {folder / 'sweep.yaml'} --store "
                f"{folder / COMMITTED_STORE.removesuffix('.gz')} --workers 2` goes on from where it stopped "
                f"(Ctrl-C or SIGTERM stops it within seconds, losing nothing), and "
                f"`rnnbench sweep {folder / 'sweep.yaml'} --dry-run --store {folder / COMMITTED_STORE.removesuffix('.gz')}` "
                f"says what is left."] if (folder / COMMITTED_STORE).is_file() else []), ""]
    body = render_tables(tables, runs, "md", heading="##", curves=curves).split("\n")
    text = "\n".join(lines + body)
    for title, drawn in plots.items():
        text += f"\n### Plots: {markdown_text(title)}\n\n" + "".join(
            f"![{markdown_text(caption)}](plots/{path.name})\n\n" for caption, path in drawn)
    return text


def _page(name: str, tables, plots, environment, command, runs: pd.DataFrame, curves: pd.DataFrame,
          findings: str | None = None, spec: Any = None) -> str:
    sections = []
    completed = runs[runs.status == "completed"]
    for title, table in tables.items():
        shared = table.attrs.get("shared_settings") or {}
        text = f"Settings: {settings_text(shared)}." if shared else ""
        shown = [(title, display_table(table))]
        members = completed[completed.config_id.isin(set(table.attrs["config_ids"]))]
        lengths = length_curve_frame(members, curves) if not members.empty else pd.DataFrame()
        if not lengths.empty:
            shown.append((f"Test {table.attrs['primary_metric']} against the tested length n, "
                          f"{length_training_note(members)} (mean over seeds)", lengths))
        sections.append(Section(title, text, shown,
                                [(caption, path.read_bytes()) for caption, path in plots.get(title, [])]))
    about = " ".join([*([protocol_line(spec)] if spec is not None else []), cost_line(runs),
                      f"Hardware: {_hardware(environment)}. Reproduce: {command}"])
    intro = [*([Section("Findings", findings.strip(), [], [])] if findings else []), Section("About", about, [], [])]
    return render_page(f"rnnbench leaderboard: {name}", [*intro, *sections])
