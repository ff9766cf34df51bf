"""Where the tests find the real datasets, and what happens when they are not there.

The data directory is $RNNBENCH_DATA, or else ../shared/data beside the checkout (where CI puts
it). A test that needs a dataset says so with `@pytest.mark.data("ptb", ...)` (or asks for the
`data_dir` fixture): when a dataset is missing or corrupt, the test is skipped with that reason on
a workstation, and fails under CI (CI=true), so that a wrong data path never gives a green run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("RNNBENCH_DATA", str(ROOT.parent / "shared" / "data"))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_datasets(names: tuple[str, ...]) -> None:
    """Skip (or, under CI, fail) unless every dataset in `names` is present and verified."""
    from rnnbench.toolkit import datasets as data

    problems = []
    for name in names:
        report = data.status(name)
        if report.state != "present":
            problems.append(f"dataset '{name}' is {report.state} in {report.folder} "
                            f"({report.describe()}): {data.how_to_get(report.dataset, report.folder)}")
    if problems:
        message = "; ".join(problems)
        if in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "data(*names): the test reads these real datasets; skipped "
                                       "when absent, failed when absent under CI=true")


def pytest_runtest_setup(item: pytest.Item) -> None:
    names = tuple(name for marker in item.iter_markers("data") for name in marker.args)
    if names:
        require_datasets(names)


@pytest.fixture
def data_dir() -> Path:
    """The data directory (the datasets a test reads are required through its `data` marker)."""
    from rnnbench.toolkit import datasets as data

    return data.data_dir()
