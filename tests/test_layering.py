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


def test_every_layering_contract_is_kept(tmp_path):
    result = _lint_imports(installed_layout(tmp_path / "layout"), ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "10 kept, 0 broken" in result.stdout


def test_a_task_importing_the_runner_is_caught(tmp_path):
    layout = installed_layout(tmp_path / "layout")
    probes = layout / "rnnbench" / "tasks" / "probes.py"
    probes.write_text(probes.read_text() + "\nfrom rnnbench.runner import run  # noqa\n")
    result = _lint_imports(layout, ROOT / "pyproject.toml")
    assert result.returncode != 0
    assert "rnnbench.tasks.probes -> rnnbench.runner" in result.stdout
