"""`rnnbench leaderboard publish NAME` and `compare A B` (issue 11)."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import QUICK
from rnnbench import cli
from rnnbench.reports.leaderboard import (compare, leaderboard_tables, load_runs, markdown_table, read_results,
                                  render_tables)


@pytest.fixture
def published(tmp_path, monkeypatch):
    """A sweep file committed under leaderboards/pub/, run into a store, then published."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "leaderboards" / "pub"
    folder.mkdir(parents=True)
    (folder / "sweep.yaml").write_text(yaml.safe_dump({
        "name": "pub", "architectures": ["rnn", "gru"], "tasks": ["adding"], "seeds": 3, "set": dict(QUICK)}))
    store = str(tmp_path / "runs" / "r.sqlite")
    assert cli.main(["sweep", "leaderboards/pub/sweep.yaml", "--store", store, "--no-progress", "--workers", "2"]) == 0
    assert cli.main(["leaderboard", "publish", "pub", "--store", store]) == 0
    return folder, store


def test_publish_writes_the_folder_with_every_part(published):
    folder, _ = published
    for name in ("sweep.yaml", "README.md", "index.html", "results.csv", "history.csv", "summary.json",
                 "environment.json"):
        assert (folder / name).is_file(), name
    plots = sorted(path.name for path in (folder / "plots").glob("*.png"))
    assert plots == ["adding-learning-curves.png", "adding-parameters.png", "adding-throughput.png"]
    readme = (folder / "README.md").read_text()
    assert "rnnbench sweep leaderboards/pub/sweep.yaml --store STORE" in readme
    assert "Hardware: cpu" in readme and "![" in readme
    environment = json.loads((folder / "environment.json").read_text())
    assert environment["runs"]["torch"] and environment["published"]["date"]
    results = read_results(folder / "results.csv")
    assert len(results) == 6 and set(results.status) == {"completed"} and set(results.seed) == {0, 1, 2}


def test_any_store_writes_its_leaderboard_as_one_html_page(published, tmp_path, capsys):
    """`leaderboard --format html`: runs made with `run` or `sweep`, no published folder needed."""
    _, store = published
    out = tmp_path / "board.html"
    assert cli.main(["leaderboard", "--store", store, "--format", "html", "--output", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table" in page and "data:image/png;base64," in page
    assert ">gru<" in page and ">rnn<" in page and "--format html" in page
    assert cli.main(["leaderboard", "--store", store, "--format", "html", "--task", "copy"]) == 2
    assert "no completed runs for task 'copy'" in capsys.readouterr().err


def test_published_plots_are_palette_pngs_so_the_page_stays_small(published):
    """Plots are quantised to at most 256 colours: a third of the size of matplotlib's RGBA PNGs, so
    the self-contained index.html of a leaderboard with many architectures stays under 1 MB."""
    from PIL import Image

    folder, _ = published
    for path in (folder / "plots").glob("*.png"):
        with Image.open(path) as image:
            assert image.mode == "P", path.name


def _committed_leaderboard_files() -> list[str]:
    root = Path(__file__).parent.parent
    listing = subprocess.run(["git", "ls-files", "leaderboards"], cwd=root, capture_output=True, text=True)
    return sorted(str(root / name) for name in listing.stdout.split() if not name.endswith(".sqlite"))


@pytest.mark.parametrize("path", _committed_leaderboard_files())
def test_no_committed_leaderboard_file_is_a_megabyte_or_more(path):
    assert Path(path).stat().st_size < 1_000_000, f"{path}: publish it again (`rnnbench leaderboard publish`)"


def test_publishing_again_leaves_no_plot_of_an_earlier_publish(published):
    folder, store = published
    stale = folder / "plots" / "adding-old-title-parameters.png"
    stale.write_bytes((folder / "plots" / "adding-parameters.png").read_bytes())
    assert cli.main(["leaderboard", "publish", "pub", "--store", store]) == 0
    assert not stale.exists() and (folder / "plots" / "adding-parameters.png").is_file()


def test_every_number_in_the_readme_is_recomputed_from_results_csv_alone(published):
    folder, _ = published
    tables = leaderboard_tables(read_results(folder / "results.csv"))
    readme = (folder / "README.md").read_text()
    assert tables
    for title, table in tables.items():
        assert f"## {title}" in readme
        assert markdown_table(table) in readme          # the same table, digit for digit
        assert list(table.planned) == [3, 3]            # planned seeds travel in the file
    summary = json.loads((folder / "summary.json").read_text())
    assert summary == json.loads(render_tables(tables, read_results(folder / "results.csv"), "json"))


def _published_leaderboards() -> list[str]:
    root = Path(__file__).parent.parent / "leaderboards"
    return sorted(folder.name for folder in root.iterdir()
                  if (folder / "results.csv").exists() or (folder / "results.csv.gz").exists())


@pytest.mark.parametrize("name", _published_leaderboards())
def test_every_table_of_a_committed_leaderboard_is_recomputed_from_its_results_csv(name):
    """The leaderboards in the repository, not only a fresh publish: each README table, digit for
    digit, from the committed results.csv alone (a hand edit or a stale README fails here)."""
    folder = Path(__file__).parent.parent / "leaderboards" / name
    tables = leaderboard_tables(read_results(folder / "results.csv"))
    readme = (folder / "README.md").read_text()
    assert tables
    for title, table in tables.items():
        assert f"## {title}" in readme, title
        assert markdown_table(table) in readme, f"{name}: '{title}' differs from results.csv: publish it again"
    if (folder / "findings.md").is_file():   # its findings' numbers too
        from rnnbench.reports.findings import fill_findings
        assert fill_findings((folder / "findings.md").read_text(), tables).strip() in readme, \
            f"{name}: findings.md is not what its README opens with: publish it again"


def test_compare_puts_a_store_beside_its_published_leaderboard(published, capsys):
    folder, store = published
    frame = compare(load_runs(store), load_runs(folder))
    assert sorted(frame.architecture) == ["gru", "rnn"]
    assert list(frame["difference"]) == [0.0, 0.0] and set(frame["beyond seed noise"]) == {"no"}  # same runs
    capsys.readouterr()
    assert cli.main(["leaderboard", "compare", store, str(folder)]) == 0
    assert "beyond seed noise" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["leaderboard", "publish", "missing"], "no sweep file at leaderboards/missing/sweep.yaml"),
    (["leaderboard", "publish", "../x"], "cannot name a leaderboard"),
    (["leaderboard", "frobnicate"], "is not a command"),
])
def test_publish_refuses_what_it_cannot_publish_in_one_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "r.sqlite"
    from rnnbench.store import ResultStore
    ResultStore(store)
    assert cli.main([*argv, "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_publish_of_a_sweep_that_never_ran_says_how_to_run_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "leaderboards" / "later").mkdir(parents=True)
    (tmp_path / "leaderboards" / "later" / "sweep.yaml").write_text("name: later\ntasks: [adding]\n")
    from rnnbench.store import ResultStore
    ResultStore(tmp_path / "r.sqlite")
    assert cli.main(["leaderboard", "publish", "later", "--store", str(tmp_path / "r.sqlite")]) == 2
    assert "sweep 'later' has not run" in capsys.readouterr().err


def test_publish_refuses_a_leaderboard_folder_that_links_outside_leaderboards(published, tmp_path, capsys):
    """leaderboards/NAME a symlink to a folder elsewhere: refused, and nothing is written there."""
    folder, store = published
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "sweep.yaml").write_text((folder / "sweep.yaml").read_text())
    (tmp_path / "leaderboards" / "linked").symlink_to(elsewhere, target_is_directory=True)
    assert cli.main(["leaderboard", "publish", "linked", "--store", store]) == 2
    assert "leads outside leaderboards/" in capsys.readouterr().err
    assert [path.name for path in elsewhere.iterdir()] == ["sweep.yaml"]


def test_reference_runs_are_published_in_a_table_of_their_own_and_never_ranked(published, capsys):
    """reference.yaml (a paper's full configuration, one seed): its runs travel in results.csv,
    marked, and show as a labelled table apart from the ranked ones."""
    folder, store = published
    longer = {**QUICK, "trainer.max_steps": "9"}
    (folder / "reference.yaml").write_text(yaml.safe_dump({
        "name": "pub-reference", "architectures": ["gru"], "tasks": ["adding"], "seeds": 1, "set": longer}))
    assert cli.main(["leaderboard", "publish", "pub", "--store", store]) == 2
    assert "reference sweep 'pub-reference' has not run" in capsys.readouterr().err
    assert cli.main(["sweep", "leaderboards/pub/reference.yaml", "--store", store, "--no-progress"]) == 0
    assert cli.main(["leaderboard", "publish", "pub", "--store", store]) == 0
    results = read_results(folder / "results.csv")
    assert len(results) == 7 and list(results.reference).count(True) == 1
    tables = leaderboard_tables(results)
    reference = {title: table for title, table in tables.items() if table.attrs["reference"]}
    assert list(reference) == ["adding (reference: steps=9, batch=16)"]
    (table,) = reference.values()
    assert list(table.architecture) == ["gru"] and list(table["≈best"]) == ["not ranked"]
    ranked = tables["adding (steps=6, batch=16)"]
    assert sorted(ranked.architecture) == ["gru", "rnn"] and "not ranked" not in set(ranked["≈best"])
    readme = (folder / "README.md").read_text()
    assert "Reference runs, not ranked" in readme and "reference.yaml --store STORE" in readme


def test_a_leaderboard_renders_again_from_its_committed_csvs_without_the_store(published, capsys):
    """After a change in how tables are computed or shown, `publish NAME --from-results` renders
    README.md, index.html and summary.json again from results.csv and history.csv alone."""
    folder, store = published
    readme, summary = (folder / "README.md").read_text(), (folder / "summary.json").read_text()
    Path(store).unlink()                                   # the store is gone
    (folder / "README.md").write_text("stale\n")
    assert cli.main(["leaderboard", "publish", "pub", "--from-results"]) == 0
    again = (folder / "README.md").read_text()
    assert again.split("published ")[0] == readme.split("published ")[0]   # all but the publishing date
    assert again.split("- Reproduce")[1] == readme.split("- Reproduce")[1]
    assert json.loads((folder / "summary.json").read_text()) == json.loads(summary)
    assert cli.main(["leaderboard", "publish", "pub", "--from-results", "--store", store]) == 2
    assert "leave out --store" in capsys.readouterr().err
    (folder / "history.csv").unlink()
    assert cli.main(["leaderboard", "publish", "pub", "--from-results"]) == 2
    assert "history.csv is missing" in capsys.readouterr().err


def test_a_tuned_leaderboard_renders_again_with_its_trials_and_importances(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "leaderboards" / "tuned"
    folder.mkdir(parents=True)
    (folder / "sweep.yaml").write_text(yaml.safe_dump({
        "name": "tuned", "architectures": ["gru"], "tasks": ["adding"], "seeds": 2, "set": dict(QUICK),
        "tune": {"trials": 3, "sampler": "random", "space": {"optim.lr": {"log_uniform": [1e-3, 1e-1]}}}}))
    store = str(tmp_path / "r.sqlite")
    assert cli.main(["sweep", "leaderboards/tuned/sweep.yaml", "--store", store, "--no-progress"]) == 0
    assert cli.main(["leaderboard", "publish", "tuned", "--store", store]) == 0
    readme = (folder / "README.md").read_text()
    assert "Robustness of gru: " in readme and "Tuned gru: 3 trials" in readme and "Untuned" not in readme
    assert cli.main(["leaderboard", "publish", "tuned", "--from-results"]) == 0
    again = (folder / "README.md").read_text()
    assert again.split("published ")[1].split("\n", 1)[1] == readme.split("published ")[1].split("\n", 1)[1]


def test_a_new_publication_of_a_table_without_baselines_is_refused(tmp_path, monkeypatch, capsys):
    """Runs whose task declares no baselines (here: recorded before them, their baseline metrics
    removed) cannot be published anew; re-rendering an older export still works and says so."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "leaderboards" / "bare"
    folder.mkdir(parents=True)
    (folder / "sweep.yaml").write_text(yaml.safe_dump({"name": "bare", "architectures": ["gru"],
                                                       "tasks": ["adding"], "seeds": 1, "set": dict(QUICK)}))
    store = str(tmp_path / "r.sqlite")
    assert cli.main(["sweep", "leaderboards/bare/sweep.yaml", "--store", store, "--no-progress"]) == 0
    from rnnbench.store import ResultStore
    with ResultStore(store)._connect() as db:   # as a run of an earlier version recorded it
        db.execute("UPDATE runs SET metrics = json_remove(metrics, '$.\"baseline/mean\"')")
    assert cli.main(["leaderboard", "publish", "bare", "--store", store]) == 2
    assert "has no baselines recorded with its runs" in capsys.readouterr().err


def test_length_generalisation_curves_reach_every_format(tmp_path, monkeypatch, capsys):
    """Issue 26: a length task's accuracy against the tested length is in `rnnbench leaderboard`,
    on the HTML page and on a published board (curves.csv), and survives a republish from the
    committed files alone."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "leaderboards" / "lengths"
    folder.mkdir(parents=True)
    (folder / "sweep.yaml").write_text(yaml.safe_dump({
        "name": "lengths", "architectures": ["rnn", "lstm"], "tasks": ["parity_check"], "seeds": 2,
        "preset": "quick", "set": {"trainer.max_steps": 4, "trainer.val_every_steps": 2}}))
    store = str(tmp_path / "runs" / "r.sqlite")
    assert cli.main(["sweep", "leaderboards/lengths/sweep.yaml", "--store", store, "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["leaderboard", "--store", store]) == 0
    board = capsys.readouterr().out
    assert "against the tested length n, trained on n = 1-8" in board
    header = next(line for line in board.splitlines() if "n=9 " in line)
    assert [cell.strip() for cell in header.split("|")[3:11]] == [f"n={n}" for n in range(9, 17)]
    page = tmp_path / "board.html"
    assert cli.main(["leaderboard", "--store", store, "--format", "html", "--output", str(page)]) == 0
    assert "against the tested length n" in page.read_text()
    assert cli.main(["leaderboard", "publish", "lengths", "--store", store]) == 0
    curves = (folder / "curves.csv").read_text().splitlines()
    assert curves[0] == "run_id,name,x,y" and len(curves) == 1 + 4 * 8     # 4 runs, 8 tested lengths
    assert (folder / "plots" / "parity_check-length.png").is_file()
    def length_section() -> str:
        readme = (folder / "README.md").read_text()
        return readme[readme.index("against the tested length n"):]
    first = length_section()
    assert cli.main(["leaderboard", "publish", "lengths", "--from-results"]) == 0
    assert length_section() == first


def test_findings_are_filled_from_the_tables_and_open_the_readme(published, capsys):
    """findings.md (issue 27): hand-written sentences whose numbers are references to table cells,
    filled at publish; a reference to nothing is refused with what it could be."""
    folder, store = published
    (folder / "findings.md").write_text("The GRU reaches {adding | gru | mean} over {adding | gru | seeds} seeds.\n")
    assert cli.main(["leaderboard", "publish", "pub", "--store", store]) == 0
    from rnnbench.reports.leaderboard import display_table

    table = display_table(leaderboard_tables(read_results(folder / "results.csv"))["adding"]).set_index("architecture")
    readme = (folder / "README.md").read_text()
    assert f"## Findings\n\nThe GRU reaches {table.at['gru', 'mean']:.4g} over 3 seeds." in readme
    assert readme.index("## Findings") < readme.index("- Protocol: untuned") < readme.index("- Cost: 6 runs, ")
    assert "The GRU reaches" in (folder / "index.html").read_text()
    assert "Run in parts" not in readme      # said only where a store is committed to resume from
    with open(store, "rb") as source, gzip.open(folder / "runs.sqlite.gz", "wb") as target:
        shutil.copyfileobj(source, target)
    assert cli.main(["leaderboard", "publish", "pub", "--store", store]) == 0
    assert ("- Run in parts: its store is committed compressed beside this file; `gunzip -k "
            "leaderboards/pub/runs.sqlite.gz` then `rnnbench sweep leaderboards/pub/sweep.yaml --store "
            "leaderboards/pub/runs.sqlite --workers 2`") in (folder / "README.md").read_text()
    for reference, message in (("{adding | grru | mean}", "names no row. Did you mean 'gru'?"),
                               ("{addng | gru | mean}", "names no table. Did you mean 'adding'?"),
                               ("{adding | gru | maen}", "names no column. Did you mean 'mean'?")):
        (folder / "findings.md").write_text(f"x {reference}\n")
        assert cli.main(["leaderboard", "publish", "pub", "--store", store]) == 2
        assert message in capsys.readouterr().err


def test_the_protocol_line_says_how_each_row_was_chosen():
    from rnnbench.reports.findings import protocol_line
    from rnnbench.sweeps.spec import parse

    spec = parse({"name": "t", "architectures": ["gru", "esn"], "tasks": ["adding"], "seeds": 3,
                  "budget": {"steps": 900},
                  "tune": {"trials": 9, "space": {"optim.lr": {"log_uniform": [1e-4, 1e-2]}},
                           "halving": {"rungs": 2, "eta": 3}},
                  "overrides": {"architectures": {"esn": {"tune": False}}}})
    assert protocol_line(spec) == (
        "Protocol: every architecture tuned on the same budget, 9 TPE trials over optim.lr (log-uniform 0.0001, "
        "0.01) by successive halving (9 at 300 steps, then 3 at 900 steps), scored on the validation set; its "
        "best configuration then run with 3 seed(s) per configuration, scored on the test set; budget per run: "
        "steps=900; not tuned: esn (`tune: false`, one configuration).")


def test_a_board_whose_csv_files_grow_past_the_file_limit_commits_them_compressed(published, monkeypatch, capsys):
    """The time-series board (issue 27): 596 runs made a 1.8 MB results.csv, past the 1 MB a
    committed file may have; from 900 KB it is written as results.csv.gz (no timestamp inside, so
    the same runs give the same bytes), and everything that reads a board reads either form."""
    from rnnbench.reports import leaderboard
    from rnnbench.reports.summary import score_tables

    folder, store = published
    plain = read_results(folder / "results.csv")
    monkeypatch.setattr(leaderboard, "COMPRESS_FROM", 1_000)
    assert cli.main(["leaderboard", "publish", "pub", "--store", store]) == 0
    assert not (folder / "results.csv").exists() and not (folder / "history.csv").exists()
    first = (folder / "results.csv.gz").read_bytes()
    assert gzip.decompress(first).startswith(b"run_id,")
    assert read_results(folder / "results.csv").equals(plain)
    assert "[results.csv.gz](results.csv.gz)" in (folder / "README.md").read_text()
    assert cli.main(["leaderboard", "publish", "pub", "--from-results"]) == 0
    assert [board for board in score_tables(folder.parent)[2]] == ["pub"]
    assert cli.main(["leaderboard", "publish", "pub", "--store", store]) == 0
    assert (folder / "results.csv.gz").read_bytes() == first
    monkeypatch.setattr(leaderboard, "COMPRESS_FROM", 900_000)
    assert cli.main(["leaderboard", "publish", "pub", "--store", store]) == 0
    assert (folder / "results.csv").is_file() and not (folder / "results.csv.gz").exists()
