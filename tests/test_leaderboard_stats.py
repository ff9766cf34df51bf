"""Leaderboard statistics from a runs table alone, its formats, the CSV round trip and comparing
two sets of runs (issue 11)."""

from __future__ import annotations

import io
import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest

from helpers import QUICK
from rnnbench.reports.leaderboard import (compare, confidence_interval, leaderboard_frames, leaderboard_tables,
                                  load_runs, markdown_table, read_results, render, render_comparison,
                                  results_frame)
from rnnbench.store import ResultStore

T_975_2DF = 4.302652729911275     # Student t quantile 0.975 with 2 degrees of freedom (tables)
CONFIG = {"task.length": 10, "trainer.max_steps": 60, "trainer.batch_size": 64, "optim.lr": 0.001,
          "arch.hidden_size": 8}
TASK_INFO = {"primary_metric": "mse", "direction": "min", "head": "regression", "item_unit": "steps",
             "references": []}


def _runs(rows: list[tuple], task: str = "adding", environment: dict | None = None) -> pd.DataFrame:
    """A runs table (runs_frame()'s shape) from (architecture, scores or statuses, config changes)
    rows: a score is a completed seed, a string a seed that ended so."""
    records = []
    for architecture, outcomes, *changes in rows:
        config = {**CONFIG, **(changes[0] if changes else {})}
        config_id = f"{architecture}-" + "-".join(f"{key}={value}" for key, value in sorted(config.items()))
        for seed, outcome in enumerate(outcomes):
            completed = not isinstance(outcome, str)
            records.append({
                "run_id": f"{config_id}-{seed}", "config_id": config_id, "architecture": architecture,
                "task": task, "seed": seed, "status": "completed" if completed else outcome,
                "config": config, "task_info": TASK_INFO,
                "metrics": {"test/mse": outcome} if completed else {},
                "environment": environment or {}, "parameters": 100, "items_per_second": 1000.0,
                "wall_time_s": 2.0 + seed})
    return pd.DataFrame(records)


# --------------------------------------------------------------------------- statistics


def test_the_interval_is_students_t_over_the_completed_seeds():
    scores = [0.1, 0.2, 0.4]
    (table,) = leaderboard_tables(_runs([("rnn", scores + ["diverged"])])).values()
    mean, std = statistics.mean(scores), statistics.stdev(scores)
    half = T_975_2DF * std / math.sqrt(3)
    row = table.iloc[0]
    assert row["mse (mean)"] == pytest.approx(mean) and row["std"] == pytest.approx(std)
    assert row["95% CI low"] == pytest.approx(mean - half) and row["95% CI high"] == pytest.approx(mean + half)
    assert row["seeds"] == 3 and row["planned"] == 4 and row["not completed"] == "1 diverged"
    assert row["wall time (s)"] == pytest.approx(3.0)      # completed seeds 0..2: 2, 3, 4 s
    (single,) = leaderboard_tables(_runs([("rnn", [0.3])])).values()
    assert math.isnan(single["95% CI low"].iloc[0]) and math.isnan(single["95% CI high"].iloc[0])


def test_the_bootstrap_interval_is_deterministic():
    runs = _runs([("rnn", [0.1, 0.2, 0.4, 0.3, 0.25])])
    first = leaderboard_tables(runs, interval="bootstrap")["adding"]
    again = leaderboard_tables(runs, interval="bootstrap")["adding"]
    pd.testing.assert_frame_equal(first, again)
    low, high = first["95% CI low"].iloc[0], first["95% CI high"].iloc[0]
    assert 0.1 <= low < first["mse (mean)"].iloc[0] < high <= 0.4
    assert confidence_interval([0.1, 0.2, 0.4, 0.3, 0.25], "bootstrap") == (low, high)
    assert "95% CI" in markdown_table(first) and "±95%" not in markdown_table(first)


def test_rows_not_distinguishable_from_the_best_are_marked_by_welchs_test():
    runs = _runs([("rnn", [1.0, 1.1, 0.9]), ("gru", [1.05, 0.95, 1.02]), ("lstm", [5.0, 5.1, 4.9]),
                  ("esn", [1.2])])
    table = leaderboard_tables(runs)["adding"].set_index("architecture")
    assert table.loc["rnn", "≈best"] == "best"
    assert table.loc["gru", "≈best"] == "yes"       # the same within seed noise
    assert table.loc["lstm", "≈best"] == ""         # clearly worse
    assert table.loc["esn", "≈best"] == "n<2"       # one seed cannot be tested


def test_a_configuration_with_a_diverged_seed_ranks_below_every_complete_one():
    runs = _runs([("rnn", [0.01, 0.02, "diverged"]), ("gru", [0.5, 0.6, 0.55]), ("lstm", [0.3, 0.35, 0.32])])
    table = leaderboard_tables(runs)["adding"]
    assert list(table.architecture) == ["lstm", "gru", "rnn"]
    assert list(table["not completed"]) == ["-", "-", "1 diverged"]


def test_task_settings_the_task_ranks_together_share_one_table_and_others_split_it():
    """task.batching changes how a model is trained, not what it is tested on: ranked in one table
    (the task declares it in `ranked_together`, recorded in task_info); task.length splits."""
    together = {**TASK_INFO, "ranked_together": ["task.batching"]}
    runs = _runs([("rnn", [0.1, 0.2], {"task.batching": "random"}),
                  ("rnn", [0.3, 0.4], {"task.batching": "bucketed"}),
                  ("gru", [0.5, 0.6], {"task.length": 20})])
    runs = runs.assign(task_info=[together] * len(runs))
    tables = leaderboard_tables(runs)
    assert sorted(tables) == ["adding (task.length=10, steps=60, batch=64)",
                              "adding (task.length=20, steps=60, batch=64)"]
    ranked = tables["adding (task.length=10, steps=60, batch=64)"]
    assert len(ranked) == 2 and list(ranked.settings) == ["batching=random", "batching=bucketed"]
    alone = leaderboard_tables(runs.assign(task_info=[TASK_INFO] * len(runs)))   # not declared: split
    assert len(alone) == 3


def test_a_missing_value_reads_as_a_dash_not_nan():
    """One seed has no interval; a row without fixed weights beside the ESN has no fixed count."""
    esn = _runs([("esn", [0.1])], environment={"fixed_parameters": 4096})
    runs = pd.concat([esn, _runs([("gru", [0.3, 0.4])])], ignore_index=True)
    text = markdown_table(leaderboard_tables(runs)["adding"])
    assert "nan" not in text
    gru_row = next(line for line in text.splitlines() if line.startswith("| gru"))
    assert [cell.strip() for cell in gru_row.strip("|").split("|")].count("-") >= 2   # no fixed params, not completed


def test_shared_settings_are_stated_once_above_the_table_not_as_a_column():
    runs = _runs([("rnn", [0.1, 0.2]), ("gru", [0.3, 0.4])])
    text = markdown_table(leaderboard_tables(runs)["adding"])
    assert "Settings: budget steps=60, batch=64; task.length=10" in text
    header = [line for line in text.splitlines() if line.startswith("| architecture")][0]
    cells = [cell.strip() for cell in header.strip("|").split("|")]
    assert cells[:3] == ["architecture", "mean", "±95%"]
    assert "budget" not in cells and "settings" not in cells and "fixed params" not in cells
    assert text.count("steps=60") == 1
    # a setting that varies between rows is a column; the ESN's fixed reservoir has its own
    varied = _runs([("rnn", [0.1, 0.2]), ("rnn", [0.3, 0.4], {"optim.lr": 0.01})],
                   environment={"fixed_parameters": 4096})
    table = leaderboard_tables(varied)["adding"]
    assert list(table["fixed params"]) == [4096, 4096]
    assert "lr=0.01" in markdown_table(table) and "Short names: lr = optim.lr." in markdown_table(table)
    assert "fixed params" in markdown_table(table)


def test_a_tuned_pairs_trials_and_importances_are_listed_below_its_table():
    runs = _runs([("rnn", [0.1, 0.2])])
    tuning = pd.DataFrame([{"sweep": "tuned", "architecture": "rnn", "task": "adding", "trials": 3,
                            "best_run_id": runs.run_id.iloc[0],
                            "importances": {"optim.lr": 0.75, "arch.hidden_size": 0.25}}])
    text = markdown_table(leaderboard_tables(runs, tuning=tuning)["adding"])
    assert "Tuned rnn: 3 trials; hyper-parameter importances: optim.lr 0.75, arch.hidden_size 0.25" in text


# --------------------------------------------------------------------------- a real store: formats, CSV


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ResultStore:
    from rnnbench.training.runner import run

    path = tmp_path_factory.mktemp("board") / "r.sqlite"
    for architecture in ("rnn", "gru"):
        for seed in (0, 1):
            run(architecture, "adding", QUICK, seed=seed, store=path, progress=False)
    store = ResultStore(path)
    gru = store.runs_frame().query("architecture == 'gru'")
    store.record_sweep("s", {})   # as if a sweep had planned a third gru seed, not run yet
    store.plan_runs("s", [{"run_id": run_id, "config_id": gru.config_id.iloc[0], "architecture": "gru",
                           "task": "adding", "seed": seed, "role": "run", "trial": None, "params": {}}
                          for run_id, seed in [*zip(gru.run_id, gru.seed), ("not-run-yet", 2)]])
    return store


def test_published_csv_reads_back_to_the_same_tables(store, tmp_path):
    from_store = leaderboard_frames(store)
    assert list(from_store["adding"].sort_values("architecture").planned) == [3, 2]   # gru: 3 planned
    csv = tmp_path / "results.csv"
    results_frame(store.runs_frame(), store.sweep_frame()).to_csv(csv, index=False)
    again = leaderboard_tables(read_results(csv))
    assert list(again) == list(from_store)
    for title, table in from_store.items():
        pd.testing.assert_frame_equal(again[title], table)
        assert again[title].attrs["shared_settings"] == table.attrs["shared_settings"]
    pd.testing.assert_frame_equal(load_runs(tmp_path).drop(columns=["planned_seeds", "tuning_trial"]),
                                  read_results(csv).drop(columns=["planned_seeds", "tuning_trial"]))
    loaded = load_runs(store.path)
    assert len(loaded) == 4 and list(loaded.planned_seeds.sort_values()) == [0, 0, 3, 3]   # rnn: no plan


def test_the_formats_json_latex_csv_and_markdown(store):
    (table,) = json.loads(render(store, "adding", "json"))
    assert table["title"] == "adding" and table["task"] == "adding"
    assert table["shared_settings"]["budget"] == "steps=6, batch=16" and table["shared_settings"]["task.length"] == 6
    row = table["rows"][0]
    assert isinstance(row["mse (mean)"], float) and isinstance(row["seeds"], int)
    # six training steps do not get beyond predicting the mean: shown, not ranked, and said so
    assert row["≈best"] == "did not learn" and table["none_learned"] is True and table["baselines"] == ["mean"]
    assert row["baseline"] == pytest.approx(1 / 6, abs=0.03)
    latex = render(store, "adding", "latex")
    assert all(rule in latex for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    assert r"task.train\_size=64" in latex and r"$\pm$95\%" in latex
    assert render(store, "adding", "csv").startswith("architecture,settings,mse (mean)")
    markdown = render(store, "adding")
    assert "Settings: budget steps=6, batch=16; " in markdown and "predict 1 baseline" in markdown


def test_latex_escapes_names():
    runs = _runs([("my_rnn&co", [0.1, 0.2])], task="copy_50%")
    runs["task_info"] = [{**TASK_INFO, "primary_metric": "bits_per_char"}] * len(runs)
    runs["metrics"] = [{"test/bits_per_char": 0.5}] * len(runs)
    (frame,) = leaderboard_tables(runs).values()
    from rnnbench.reports.leaderboard import _latex_table
    latex = _latex_table("copy_50%", frame)
    assert r"my\_rnn\&co" in latex and r"copy\_50\%" in latex and "my_rnn" not in latex


HOSTILE = "<img src=x onerror=alert(1)>"


def test_markdown_shows_a_hostile_name_as_text_not_html():
    runs = _runs([(HOSTILE, [0.1, 0.2]), ("a|b", [0.3, 0.4])])
    from rnnbench.reports.leaderboard import render_tables
    text = render_tables(leaderboard_tables(runs), runs, "md")
    assert "<img" not in text.replace("\\<img", "") and r"\<img src=x onerror=alert(1)\>" in text
    assert r"a\|b" in text   # a pipe would split the table's cell


def test_csv_cells_never_start_a_spreadsheet_formula():
    runs = _runs([("=HYPERLINK(1)", [0.1, 0.2]), ("rnn", [0.3, 0.4])])
    from rnnbench.reports.leaderboard import render_tables
    table = pd.read_csv(io.StringIO(render_tables(leaderboard_tables(runs), runs, "csv")))
    assert set(table.architecture) == {"'=HYPERLINK(1)", "rnn"}
    from rnnbench.reports.escaping import csv_cell
    assert [csv_cell(value) for value in ("-0.5", "-", "+cmd", "@x", 0.5, "1e-3")] == \
        ["-0.5", "'-", "'+cmd", "'@x", 0.5, "1e-3"]


def test_json_has_null_for_an_interval_of_one_seed():
    frame = leaderboard_tables(_runs([("rnn", [0.3])]))["adding"]
    from rnnbench.reports.leaderboard import _json_table
    table = json.loads(json.dumps(_json_table("adding", frame)))
    assert table["rows"][0]["95% CI low"] is None and table["rows"][0]["mse (mean)"] == 0.3


# --------------------------------------------------------------------------- compare


def test_compare_flags_a_real_difference_and_not_seed_noise():
    a = _runs([("rnn", [1.0, 1.1, 0.9]), ("gru", [0.50, 0.52, 0.51]), ("lstm", [0.4, 0.41])])
    b = _runs([("rnn", [1.02, 0.93, 1.07]), ("gru", [0.20, 0.21, 0.22]), ("esn", [0.9, 0.8])])
    b.loc[b.architecture == "gru", "config_id"] = "gru-of-a-later-version"   # matched by settings
    frame = compare(a, b, names=("old", "new")).set_index("architecture")
    assert frame.loc["rnn", "beyond seed noise"] == "no"
    assert frame.loc["gru", "beyond seed noise"] == "yes"
    assert frame.loc["gru", "difference"] == pytest.approx(0.21 - 0.51)
    assert frame.loc["gru", "mean old"] == pytest.approx(0.51) and frame.loc["gru", "seeds new"] == 3
    assert frame.loc["lstm", "beyond seed noise"] == "only in old"
    assert frame.loc["esn", "beyond seed noise"] == "only in new"
    assert len(frame) == 4
    text = render_comparison(frame.reset_index())
    assert "beyond seed noise" in text and "only in new" in text
    rows = json.loads(render_comparison(frame.reset_index(), "json"))
    assert {row["architecture"] for row in rows} == {"rnn", "gru", "lstm", "esn"}
    assert pd.read_csv(io.StringIO(render_comparison(frame.reset_index(), "csv"))).shape[0] == 4


def test_a_table_says_when_its_rows_were_produced_with_different_thread_counts():
    runs = _runs([("rnn", [0.10, 0.11, 0.12]), ("gru", [0.20, 0.21, 0.22])])
    runs["environment"] = [{"threads": 1}] * 3 + [{"threads": 2}] * 3
    [table] = leaderboard_tables(runs).values()
    assert table.attrs["threads"] == [1, 2]
    assert "different CPU thread counts (1, 2)" in markdown_table(table)
    runs["environment"] = [{"threads": 1}] * 6
    [table] = leaderboard_tables(runs).values()
    assert "thread counts" not in markdown_table(table)


def _with_baselines(runs: pd.DataFrame, baselines: dict[str, list[float]]) -> pd.DataFrame:
    """Each run's metrics plus baseline/NAME values per seed (the runner records them so)."""
    runs = runs.copy()
    runs["metrics"] = [{**metrics, **{f"baseline/{name}": values[seed] for name, values in baselines.items()}}
                       for metrics, seed in zip(runs.metrics, runs.seed)]
    return runs


def test_a_row_not_beyond_its_strongest_baseline_did_not_learn_and_is_not_ranked():
    """Adding, per-seed mean-predictor MSEs 0.163, 0.172, 0.158 (the audit's numbers): the lstm at
    the plateau (the baseline's values) and an rnn near it did not learn, and are listed after the
    gru, which is beyond it on every seed; a weaker constant baseline (zero) is not the strongest."""
    baselines = {"mean": [0.1633, 0.1718, 0.1584], "zero": [1.1, 1.2, 1.0]}
    runs = _with_baselines(_runs([("lstm", [0.1633, 0.1718, 0.1584]), ("gru", [0.05, 0.06, 0.04]),
                                  ("rnn", [0.15, 0.19, 0.17])]), baselines)
    (table,) = leaderboard_tables(runs).values()
    assert list(table.architecture) == ["gru", "lstm", "rnn"]
    assert list(table["≈best"]) == ["best", "did not learn", "did not learn"]
    assert table.attrs["baselines"] == ["mean"] and not table.attrs["none_learned"]
    assert table.baseline.iloc[0] == pytest.approx(statistics.mean(baselines["mean"]))


def test_the_paired_rule_by_hand():
    """Differences (baseline - score, lower is better) 0.01, 0.02, 0.03: mean 0.02, s 0.01, t(0.975,
    2) = 4.303: interval 0.02 -+ 0.0248, which reaches below 0: not beyond. With 0.02, 0.02, 0.021
    it is."""
    from rnnbench.reports.leaderboard import strongest_baseline

    def completed(scores, base):
        runs = _with_baselines(_runs([("x", scores)]), {"mean": base})
        return runs.assign(score=runs.metrics.map(lambda metrics: metrics["test/mse"]))

    name, _, learned = strongest_baseline(completed([0.15, 0.14, 0.13], [0.16, 0.16, 0.16]), "min")
    assert name == "mean" and not learned
    assert strongest_baseline(completed([0.14, 0.14, 0.139], [0.16, 0.16, 0.16]), "min")[2]
    assert strongest_baseline(completed([0.5], [0.125]), "max")[2]            # one seed: better is enough
    assert not strongest_baseline(completed([0.125], [0.125]), "max")[2]      # equal is not beyond
    name, scores, learned = strongest_baseline(_runs([("x", [0.1, 0.2])]).assign(score=[0.1, 0.2]), "min")
    assert name is None and len(scores) == 0 and learned


def test_improving_at_end_by_hand():
    """Rounds at steps 100..1000: the last fifth is steps after 800. Accuracy best 0.50 before,
    0.52 after: +0.02 > 1% of 0.50, still improving; 0.504 after: +0.004 < 0.005, not."""
    from rnnbench.training.callbacks import improving_at_end

    rounds = [(step, 0.1 + step / 2000) for step in range(100, 801, 100)]   # 0.15 .. 0.50
    assert improving_at_end(rounds + [(900, 0.51), (1000, 0.52)], "max") is True
    assert improving_at_end(rounds + [(900, 0.504), (1000, 0.49)], "max") is False
    assert improving_at_end([(100, 3.0), (500, 2.0), (1000, 1.5)], "min") is True   # a loss still falling
    assert improving_at_end([(1000, 1.5)], "min") is None                            # no earlier part
    assert improving_at_end([], "min") is None


def test_a_table_says_when_its_leading_rows_were_cut_by_the_budget():
    runs = _runs([("gru", [0.05, 0.06]), ("lstm", [0.30, 0.31])])
    runs["environment"] = [{"convergence": {"improving_at_end": architecture == "gru"}}
                           for architecture in runs.architecture]
    (table,) = leaderboard_tables(runs).values()
    assert table.attrs["cut_by_budget"] == ["gru"]
    from rnnbench.reports.leaderboard import markdown_table
    assert markdown_table(table).startswith("**Cut by the budget: gru (leading) were still improving")
    runs["environment"] = [{"convergence": {"improving_at_end": False}}] * len(runs)
    (table,) = leaderboard_tables(runs).values()
    assert table.attrs["cut_by_budget"] == [] and "Cut by the budget" not in markdown_table(table)
    (table,) = leaderboard_tables(_runs([("gru", [0.05, 0.06])])).values()
    assert table.attrs["cut_by_budget"] is None   # runs from before convergence was recorded


def test_perplexities_are_compared_on_the_log_scale():
    """The audit's language-modelling table: the Elman RNN's perplexities 1.3e5, 3e5 and 1.4e6
    scatter so widely that Welch's test on raw perplexities cannot tell them from deep_rnn's 131.7
    (p = 0.25, "≈best"); on cross-entropy (log perplexity) it can."""
    runs = _runs([("deep_rnn", [131.5, 131.7, 131.9]), ("rnn", [1.3e5, 3.0e5, 1.4e6])])
    runs["task_info"] = [{**TASK_INFO, "primary_metric": "perplexity"}] * len(runs)
    runs["metrics"] = [{"test/perplexity": metrics["test/mse"]} for metrics in runs.metrics]
    from rnnbench.reports.leaderboard import welch_p
    assert welch_p(np.array([1.3e5, 3.0e5, 1.4e6]), np.array([131.5, 131.7, 131.9])) > 0.05
    (table,) = leaderboard_tables(runs).values()
    assert list(table["≈best"]) == ["best", ""]


def test_no_claim_of_best_without_a_comparison():
    (table,) = leaderboard_tables(_runs([("lstm", [0.1, 0.2, 0.3])])).values()
    assert list(table["≈best"]) == ["only row"]
    (table,) = leaderboard_tables(_runs([("lstm", [0.1]), ("gru", [0.2, 0.3])])).values()
    assert list(table["≈best"]) == ["n<2", "n<2"]   # the first row has one seed: nothing to test against


def test_an_untuned_table_says_so_in_every_format(store):
    (table,) = json.loads(render(store, "adding", "json"))
    markdown, latex = render(store, "adding"), render(store, "adding", "latex")
    assert "Untuned: one shared configuration for every architecture" in markdown
    assert "Untuned: one shared configuration" in latex
    assert table["tuned"] is False
    assert set(pd.read_csv(io.StringIO(render(store, "adding", "csv"))).tuned) == {False}


def test_robustness_by_hand():
    """Trials at lr 1e-4, 1e-3, 1e-2, 1e-1 with validation MSE 0.30, 0.100, 0.104, diverged: the
    best is 0.100, within 5% means at most 0.105: 1e-3 and 1e-2 (2 trials), one diverged."""
    from rnnbench.reports.leaderboard import robustness

    trials = pd.DataFrame({"status": ["completed", "completed", "completed", "diverged"],
                           "metrics": [{"val/mse": 0.30}, {"val/mse": 0.100}, {"val/mse": 0.104}, {}],
                           "config": [{"optim.lr": lr} for lr in (1e-4, 1e-3, 1e-2, 1e-1)]})
    assert robustness(trials, "mse", "min") == {"trials": 4, "diverged": 1, "within": 2,
                                                "lr_low": 1e-3, "lr_high": 1e-2}


def test_a_table_says_when_its_rows_come_from_different_code_versions():
    runs = _runs([("gru", [0.05, 0.06]), ("lstm", [0.30, 0.31])])
    runs["environment"] = [{"git_commit": "a" * 40 if architecture == "gru" else "b" * 40}
                           for architecture in runs.architecture]
    (table,) = leaderboard_tables(runs).values()
    from rnnbench.reports.leaderboard import markdown_table
    assert table.attrs["code_versions"] == {"a" * 40: ["gru"], "b" * 40: ["lstm"]}
    assert "Rows come from different code versions: aaaaaaaaaa (gru); bbbbbbbbbb (lstm)." in markdown_table(table)


def test_a_closed_form_readout_ranks_beside_gradient_trained_rows():
    """The audit's Mackey-Glass: the ESN's ridge readout (0.00245) sat in a table of its own; it
    now ranks in the gradient-trained rows' table, its training shown per row."""
    runs = _runs([("esn", [0.0024, 0.0025], {"optim.optimizer": "ridge"}), ("lstm", [0.011, 0.012])])
    tables = leaderboard_tables(runs)
    (table,) = tables.values()
    assert list(table.architecture) == ["esn", "lstm"] and table["≈best"].iloc[0] == "best"
    from rnnbench.reports.leaderboard import display_table
    shown = display_table(table)
    assert list(shown.training) == ["one pass (closed-form readout)", "steps=60, batch=64"]
    assert table.attrs["shared_settings"]["budget"] == "per row (training column)"


def test_a_clipping_setting_that_never_acted_is_one_configuration_with_the_unclipped_one():
    """The audit's tricks table: clipping at 5 and no clipping identical per seed in all 12 pairs,
    because clipping never engaged: 12 configurations shown as 24. Each run records how often
    clipping acted; runs whose clipping never did are the unclipped configuration's runs, one
    row with its seeds counted once, saying so."""
    runs = _runs([("lstm", [0.1, 0.2], {"optim.clip_norm": 5.0}), ("lstm", [0.1, 0.2], {"optim.clip_norm": None})])
    runs["environment"] = [{"clipping": {"clipped": 0, "steps": 60}} if config["optim.clip_norm"] else {}
                           for config in runs.config]
    (table,) = leaderboard_tables(runs).values()
    assert len(table) == 1 and int(table.seeds.iloc[0]) == 2 and int(table.planned.iloc[0]) == 2
    assert "also clip_norm=5.0: never acted, the same runs" in table.settings.iloc[0]
    runs["environment"] = [{"clipping": {"clipped": 3, "steps": 60}} if config["optim.clip_norm"] else {}
                           for config in runs.config]
    (table,) = leaderboard_tables(runs).values()
    assert "clip_norm=5.0" in set(table.settings)


def test_a_setting_a_later_version_added_splits_nothing():
    """The audit's probes tables: runs recorded before `trainer.devices` existed and runs with
    `trainer.devices=1` were labelled apart, one configuration shown as two."""
    runs = _runs([("lstm", [0.1, 0.2]), ("gru", [0.3, 0.4])])
    runs["config"] = [{**config, "trainer.devices": 1} if seed == 1 else config
                      for config, seed in zip(runs.config, runs.seed)]
    runs["config_id"] = [f"{config_id}-{seed}" for config_id, seed in zip(runs.config_id, runs.seed)]
    (table,) = leaderboard_tables(runs).values()
    assert list(table.architecture) == ["lstm", "gru"] and list(table.seeds) == [2, 2]
    assert set(table.settings) == {"-"}   # no trainer.devices=1 label


def test_a_table_without_baselines_or_seeds_says_it_is_no_ranking():
    from rnnbench.reports.leaderboard import markdown_table
    (table,) = leaderboard_tables(_runs([("gru", [0.1, 0.2]), ("lstm", [0.3, 0.4])])).values()
    text = markdown_table(table)
    assert "Not a ranking under the protocol: these runs recorded no baselines" in text
    assert "fewer than 3 completed seeds" in text
    runs = _with_baselines(_runs([("gru", [0.01, 0.02, 0.03])]), {"mean": [0.16, 0.16, 0.16]})
    (table,) = leaderboard_tables(runs).values()
    assert "Not a ranking" not in markdown_table(table) and "fewer than 3" not in markdown_table(table)


def test_a_configuration_whose_clipping_acted_in_one_run_stays_one_row():
    """Clipping that never acted in some seeds of a configuration and acted in another does not
    split the configuration: only a configuration idle in every run joins the unclipped one."""
    runs = _runs([("lstm", [0.1, 0.2, 0.3], {"optim.clip_norm": 1.0})])
    runs["environment"] = [{"clipping": {"clipped": clipped, "steps": 60}} for clipped in (0, 0, 1)]
    (table,) = leaderboard_tables(runs).values()
    assert len(table) == 1 and int(table.seeds.iloc[0]) == 3


def test_idle_clipping_without_an_unclipped_configuration_beside_it_is_not_labelled():
    """The time-series board (issue 27): every run clips at the task's default 1.0, which never
    acted for the LSTM; with no unclipped configuration to join, its row said 'also
    clip_norm=1.0: never acted, the same runs', naming a merge that did not happen."""
    runs = _runs([("lstm", [0.1, 0.2, 0.3], {"optim.clip_norm": 1.0}), ("gru", [0.2, 0.3, 0.4], {"optim.clip_norm": 1.0})])
    runs["environment"] = [{"clipping": {"clipped": 0, "steps": 60}} for _ in runs.index]
    (table,) = leaderboard_tables(runs).values()
    assert len(table) == 2 and not any("never acted" in str(label) for label in table.settings)


def test_a_row_label_shows_the_hidden_size_its_runs_had_and_no_learning_rate_for_a_closed_form_fit():
    """The time-series board (issue 27): beside the ESN's reservoirs of 200 and 1,000 units, every
    gradient-trained row read 'hidden_size=64' (the setting before the parameter budget chose the
    size; the LSTM had 48 units) and the ESN's ridge readout 'lr=0.003', which it never uses."""
    runs = _runs([("esn", [0.002, 0.003], {"optim.optimizer": "ridge", "arch.hidden_size": 200}),
                  ("esn", [0.001, 0.002], {"optim.optimizer": "ridge", "arch.hidden_size": 1000}),
                  ("lstm", [0.006, 0.007], {"optim.optimizer": "adam", "optim.lr": 0.05, "arch.hidden_size": 64})])
    runs["hidden_size"] = [config["arch.hidden_size"] if architecture == "esn" else 48
                           for architecture, config in zip(runs.architecture, runs.config)]
    (table,) = leaderboard_tables(runs).values()
    labels = sorted(zip(table.architecture, table.settings))
    assert labels == [("esn", "hidden_size=1000 optimizer=ridge"), ("esn", "hidden_size=200 optimizer=ridge"),
                      ("lstm", "hidden_size=48 lr=0.05 optimizer=adam")]
