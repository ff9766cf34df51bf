"""What a plugin author reads and starts from: docs/plugins.md lists every field and method of
both contracts, the template folder installs and passes the conformance kit as generated, and
`rnnbench list` keeps its columns aligned whatever the plugins' names."""

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rnnbench.core import contracts, registry

from rnnbench.toolkit import heads
from rnnbench.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "plugins.md"
TEMPLATE = ROOT / "templates" / "architecture"


def _documented() -> set[str]:
    """Every name in the page's code spans (`a`, `f(a, b)`, `X(a, b=1)`)."""
    spans = re.findall(r"`([^`\n]+)`", PAGE.read_text())
    return {name for span in spans for name in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", span)}


def _public_members(cls: type) -> set[str]:
    if dataclasses.is_dataclass(cls):
        names = {field.name for field in dataclasses.fields(cls)}
    elif hasattr(cls, "_fields"):                                    # NamedTuple
        names = set(cls._fields)
    else:
        names = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("rnnbench"):
            names |= {name for name in vars(klass) if not name.startswith("_")}
            names |= {name for name in getattr(klass, "__annotations__", {}) if not name.startswith("_")}
    return names


@pytest.mark.parametrize("cls", [contracts.Architecture, contracts.Capabilities, contracts.Encoder,
                                 contracts.EncoderOutput, contracts.Task, contracts.Requirements,
                                 contracts.InputSpec, contracts.Splits, contracts.Reference,
                                 contracts.SequenceBatch, contracts.TreeBatch, contracts.GridBatch,
                                 contracts.Batch, heads.Head, heads.HeadOutput],
                         ids=lambda cls: cls.__name__)
def test_the_plugin_page_lists_every_field_and_method(cls):
    missing = _public_members(cls) - _documented()
    assert not missing, f"docs/plugins.md does not describe {cls.__name__}.{sorted(missing)}"


def test_the_plugin_page_lists_every_public_name_and_head():
    import rnnbench
    documented = _documented()
    heads_exported = {name for name in rnnbench.__all__ if name in vars(heads)}
    assert heads_exported <= documented
    for name in ("register_architecture", "register_task", "check_architecture", "BenchmarkError",
                 "IndexBatches", "IGNORE_INDEX"):
        assert name in documented
    assert "docs/plugins.md" in (ROOT / "README.md").read_text()


@pytest.fixture(scope="module")
def installed_template(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("template")
    source = shutil.copytree(TEMPLATE, root / "source")   # a copy: the build leaves files beside it
    target = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}


def _python(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=600)


def test_the_template_installs_and_passes_the_conformance_kit(installed_template):
    result = _python(installed_template, "-c",
                     "from rnnbench import check_architecture\nfrom rnnbench_myarch import MyArch\n"
                     "check_architecture(MyArch)\n"
                     "check_architecture(MyArch, MyArch.Options(nonlinearity='relu'))\nprint('conforms')")
    assert result.returncode == 0, result.stderr
    assert "conforms" in result.stdout


def test_the_installed_template_is_found_through_its_entry_point(installed_template):
    result = _python(installed_template, "-m", "rnnbench.cli", "list", "architectures")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^  myarch +causal +sequence +v1 +Elman RNN written step by step", result.stdout, re.M)
    assert "failed to load" not in result.stderr


def test_the_list_keeps_its_columns_aligned_for_long_names(monkeypatch, capsys):
    architectures, tasks = dict(registry.architectures()), dict(registry.tasks())
    long_architecture = type("Long", (contracts.Architecture,), {
        "__doc__": "An architecture with a long name.", "version": 3,
        "capabilities": contracts.Capabilities(causal=False, structures=("tree", "sequence", "grid"))})
    long_task = type("Long", (contracts.Task,), {
        "__doc__": "A task with a long name.", "requirements": contracts.Requirements("sequence", causal=True),
        "head_kind": "classification", "primary_metric": "a_very_long_metric_name", "direction": "max"})
    architectures["a_much_longer_architecture_name_than_any"] = long_architecture
    tasks["a_much_longer_task_name_than_any_in_tree"] = long_task
    monkeypatch.setattr(registry, "architectures", lambda: architectures)
    monkeypatch.setattr(registry, "tasks", lambda: tasks)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    sections = out.split("Tasks:\n")
    for section, summary in ((sections[0].split("Architectures:\n")[1], r" v\d+(  |$)"), (sections[1], r" v\d+(  |$)")):
        lines = section.rstrip("\n").splitlines()
        version_columns = {re.search(summary, line).start() for line in lines}
        assert len(version_columns) == 1, section          # every version (and summary) in one column
        for line in lines:                                  # a name never runs into the next column
            assert re.match(r"  \S+  ", line), line
