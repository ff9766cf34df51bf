"""Who may import whom (../shared/DESIGN.md), as import-linter contracts ([tool.importlinter] in
pyproject.toml), checked here, so that `nox -s tests` (and a plain `pytest`) catches a broken layer.

import-linter finds a package's modules by walking its folder, and the repository keeps
`rnnbench.plugins` and `rnnbench.tasks` outside `rnnbench`'s folder (suite/), so the check runs on
a copy laid out as installed: rnnbench/, rnnbench/plugins/, rnnbench/tasks/.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


def installed_layout(target: Path) -> Path:
    """Copy suite/, plugins/ and tasks/ into `target` as the installed package; return `target`."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "suite", target / "rnnbench", ignore=ignore)
    shutil.copytree(ROOT / "plugins", target / "rnnbench" / "plugins", ignore=ignore)
    shutil.copytree(ROOT / "tasks", target / "rnnbench" / "tasks", ignore=ignore)
    return target


def _lint_imports(layout: Path, config: Path) -> subprocess.CompletedProcess:
    executable = shutil.which("lint-imports", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                                   os.environ.get("PATH", "")]))
    assert executable, "import-linter is missing: pip install -e '.[test]' (it is in the test extra)"
    env = os.environ | {"PYTHONPATH": str(layout)}
    return subprocess.run([executable, str(config), "--no-cache"], cwd=layout, env=env,
                          capture_output=True, text=True, timeout=120)


CONTRACTS = {   # each contract's name as lint-imports prints it (its start), and a planted violation
    "The framework's layers": ("core/planted.py", "from rnnbench.sweeps.plan import plan_sweep"),
    "Architectures see the core": ("plugins/jordan.py", "from rnnbench.reports.gradient_flow import decay_per_step"),
    "Tasks see the core and the toolkit": ("tasks/probes.py", "from rnnbench.conformance.kit import check_architecture"),
    "Only discovery": ("training/model.py", "from rnnbench.plugins.fused_rnn import FusedRNN"),
    "Reports never load training": ("reports/publish.py", "from rnnbench.training.runner import run"),
}


def _plant(layout: Path, relative: str, line: str) -> None:
    module = layout / "rnnbench" / relative
    module.write_text((module.read_text() if module.exists() else "") + f"\n{line}  # noqa\n")


def test_every_layering_contract_is_kept(tmp_path):
    result = _lint_imports(installed_layout(tmp_path / "layout"), ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"{len(CONTRACTS)} kept, 0 broken" in result.stdout


def test_each_contract_catches_its_planted_violation(tmp_path):
    """One violation of each contract, planted at once (the layers one in a module no contract
    names: a new module is covered); every contract must report broken, naming its import."""
    layout = installed_layout(tmp_path / "layout")
    for relative, line in CONTRACTS.values():
        _plant(layout, relative, line)
    result = _lint_imports(layout, ROOT / "pyproject.toml")
    assert result.returncode != 0
    output = " ".join(result.stdout.split())   # lint-imports wraps long names over lines
    assert f"0 kept, {len(CONTRACTS)} broken" in output, output[-3000:]
    for name, (relative, line) in CONTRACTS.items():
        importer = "rnnbench." + relative.removesuffix(".py").replace("/", ".")
        imported = line.split()[1]
        assert f"{importer} -> {imported}" in output, (name, output[-3000:])
