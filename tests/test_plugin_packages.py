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
    result = _run(installed, "-m", "rnnbench.cli", "list")
    assert result.returncode == 0, result.stderr
    assert "mgu" in result.stdout and "parity" in result.stdout and "lstm" in result.stdout
    assert "rnnbench.architectures:broken failed to load: RuntimeError: this plugin is broken" in result.stderr


def test_the_installed_architecture_runs_the_installed_task(installed):
    result = _run(installed, "-m", "rnnbench.cli", "run", "mgu", "parity", "--preset", "quick",
                  "--no-progress", "--store", str(installed["store"]))
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stdout and "test/accuracy" in result.stdout


def test_the_installed_architecture_passes_conformance(installed):
    code = "from rnnbench_mgu import MGU\nfrom rnnbench import check_architecture\ncheck_architecture(MGU)\nprint('conforms')"
    result = _run(installed, "-c", code)
    assert result.returncode == 0, result.stderr
    assert "conforms" in result.stdout


ROOT = README.parent


@pytest.fixture(scope="module")
def from_wheel(tmp_path_factory) -> dict:
    """rnnbench installed from its wheel (not editable) with the README's plugin packages, used
    from a research folder that has packages of its own named `tasks` and `plugins`."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(root / "dist"), str(ROOT)], check=True, capture_output=True)
    (wheel,) = (root / "dist").glob("rnnbench-*.whl")
    target = root / "site"
    for package in [wheel, *_write_readme_packages(root / "src")]:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--no-build-isolation", "--target", str(target), str(package)],
                       check=True, capture_output=True)
    project = root / "research"
    for own in ("tasks", "plugins"):
        (project / own).mkdir(parents=True)
        (project / own / "__init__.py").write_text(f"OWNER = 'the research project: {own}'\n")
    env = {**os.environ, "PYTHONPATH": str(target)}
    return {"env": env, "cwd": project, "site": target, "store": root / "runs" / "r.sqlite"}


def _run_in(setup, *args):
    return subprocess.run([sys.executable, *args], env=setup["env"], cwd=setup["cwd"],
                          capture_output=True, text=True, timeout=600)


def test_a_wheel_installs_one_namespace_beside_a_projects_own_tasks_and_plugins(from_wheel):
    code = ("import rnnbench, tasks, plugins\n"
            "print(rnnbench.__file__)\nprint(tasks.OWNER)\nprint(plugins.OWNER)\n"
            "from rnnbench.core import registry\nprint(sorted(registry.architectures()), registry.load_errors())")
    result = _run_in(from_wheel, "-c", code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(str(from_wheel["site"]))          # the wheel's copy, not the checkout
    assert lines[1:3] == ["the research project: tasks", "the research project: plugins"]
    assert "'lstm'" in lines[3] and "'mgu'" in lines[3] and lines[3].endswith("{}")
    top_level = {path.name for path in from_wheel["site"].iterdir()}
    assert "rnnbench" in top_level and not {"suite", "tasks", "plugins"} & top_level


def test_the_readme_plugins_run_from_the_wheel(from_wheel):
    result = _run_in(from_wheel, "-m", "rnnbench.cli", "run", "mgu", "parity", "--preset", "quick",
                     "--no-progress", "--store", str(from_wheel["store"]))
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stdout
