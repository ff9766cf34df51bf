"""The README and docs/plugins.md, run as a new user would read them, so that they cannot drift from
the code: every `rnnbench ...` command in a fenced bash block parses, every `run` resolves (plugin,
task, preset, settings, compatibility: what `rnnbench run` checks before it trains), every sweep
plans (`--dry-run`), the README's sweep file parses, and every `rnnbench.<name>` the text names
imports. (The plugin example of docs/plugins.md is installed and run in test_plugin_authoring.)"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml

from rnnbench import cli
from rnnbench.sweeps.spec import parse
from rnnbench.training.prepare import prepare

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "README.md", ROOT / "docs" / "plugins.md")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
OPTIONAL = re.compile(r"\[[^\]]*\]")   # `[--task copy]`, `[PREFIX]`: shown as optional, left out here
PLACEHOLDERS = {"FILE": "leaderboards/quick/sweep.yaml", "NAME": "quick", "RUN_ID": "abc123",
                "A": "runs/a.sqlite", "B": "runs/b.sqlite"}


def _blocks(language: str) -> list[tuple[str, str]]:
    return [(path.name, match.group(2)) for path in DOCS
            for match in FENCE.finditer(path.read_text()) if match.group(1) == language]


def _commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every `rnnbench` line of the docs' bash blocks, comments dropped."""
    found = []
    for where, block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split(" # ")[0].split("  #")[0].strip()
            if line.startswith("rnnbench "):
                words = shlex.split(OPTIONAL.sub("", line))[1:]
                found.append((where, [PLACEHOLDERS.get(word, word) for word in words]))
    return found


COMMANDS = _commands()


def test_the_docs_show_commands_to_check():
    assert len(COMMANDS) >= 20 and {argv[0] for _, argv in COMMANDS} >= {"list", "run", "sweep", "leaderboard",
                                                                          "data", "sample", "runs"}


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[" ".join(argv)[:60] for _, argv in COMMANDS])
def test_every_documented_command_is_accepted(where, argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    store = ["--store", str(tmp_path / "r.sqlite")]
    args = cli.build_parser().parse_args([*argv, *store] if argv[0] in ("run", "sweep", "runs") else argv)
    if args.command == "run":   # everything `rnnbench run` checks before it trains
        prepare(args.architecture, args.task, cli._overrides(args), args.preset, cli._seed(args))
    elif args.command == "sweep":
        words = [*argv, *store] + ([] if argv[1:2] == ["status"] else ["--dry-run"])
        assert cli.main(words) == 0, capsys.readouterr().err
        assert not (tmp_path / "r.sqlite").exists()
    elif args.command == "list":
        assert cli.main(argv) == 0


def test_the_readme_sweep_file_plans():
    (where, block), = [(where, block) for where, block in _blocks("yaml") if where == "README.md"]
    spec = parse(yaml.safe_load(block), source=where)
    assert spec.tune is not None and spec.architectures and spec.tasks


ENTRY_POINT_GROUPS = {"rnnbench.architectures", "rnnbench.tasks"}   # named in the text, not modules


def _named_in_docs() -> list[str]:
    names = set()
    for path in DOCS:
        names |= set(re.findall(r"`(rnnbench(?:\.[A-Za-z_]\w*)+)", path.read_text()))
        for block in FENCE.finditer(path.read_text()):
            for imported in re.findall(r"^from rnnbench import \(?([^)\n]+)", block.group(2), re.M):
                names |= {f"rnnbench.{name.strip()}" for name in imported.split(",") if name.strip()}
    return sorted(names - ENTRY_POINT_GROUPS)


@pytest.mark.parametrize("dotted", _named_in_docs())
def test_every_name_the_docs_give_imports(dotted):
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):   # the longest importable module, then attributes
        try:
            value = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            assert hasattr(value, attribute), f"{dotted}: {'.'.join(parts[:split])} has no {attribute}"
            value = getattr(value, attribute)
        return
    pytest.fail(f"{dotted} does not import")
