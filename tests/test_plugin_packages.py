"""The README's example plugin packages, built and pip-installed the way a plugin author would."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
FILE_BLOCK = re.compile(r"<!-- file: (?P<path>\S+) -->\n```\w*\n(?P<body>.*?)```", re.DOTALL)


def _write_readme_packages(root: Path) -> list[Path]:
    packages = set()
    for match in FILE_BLOCK.finditer(README.read_text()):
        path = root / match["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(match["body"])
        packages.add(root / Path(match["path"]).parts[0])
    return sorted(packages)


def _write_broken_package(root: Path) -> Path:
    package = root / "rnnbench-broken"
    package.mkdir()
    (package / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "rnnbench-broken"\nversion = "0.1.0"\n'
        '[project.entry-points."rnnbench.architectures"]\nbroken = "rnnbench_broken"\n')
    (package / "rnnbench_broken.py").write_text("raise RuntimeError('this plugin is broken')\n")
    return package


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("plugins")
    packages = _write_readme_packages(root / "src")
    assert [p.name for p in packages] == ["rnnbench-mgu", "rnnbench-parity"]
    target = root / "site"
    for package in [*packages, _write_broken_package(root / "src")]:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--no-build-isolation", "--target", str(target), str(package)],
                       check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    return {"env": env, "store": root / "runs" / "r.sqlite"}


def _run(installed, *args):
    return subprocess.run([sys.executable, *args], env=installed["env"], capture_output=True,
                          text=True, timeout=600)


def test_installed_plugins_are_listed_and_a_broken_one_is_reported(installed):
    result = _run(installed, "-m", "suite.cli", "list")
    assert result.returncode == 0, result.stderr
    assert "mgu" in result.stdout and "parity" in result.stdout and "lstm" in result.stdout
    assert "rnnbench.architectures:broken failed to load: RuntimeError: this plugin is broken" in result.stderr


def test_the_installed_architecture_runs_the_installed_task(installed):
    result = _run(installed, "-m", "suite.cli", "run", "mgu", "parity", "--preset", "quick",
                  "--no-progress", "--store", str(installed["store"]))
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stdout and "test/accuracy" in result.stdout


def test_the_installed_architecture_passes_conformance(installed):
    code = "from rnnbench_mgu import MGU\nfrom suite.conformance import check_architecture\ncheck_architecture(MGU)\nprint('conforms')"
    result = _run(installed, "-c", code)
    assert result.returncode == 0, result.stderr
    assert "conforms" in result.stdout
