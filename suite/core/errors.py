"""One exception type for every user-facing problem: its message names the problem and the fix."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path


class BenchmarkError(Exception):
    """A problem the user can fix; the CLI prints its message on one line and exits non-zero."""


class DivergedError(BenchmarkError):
    """The training loss became NaN or infinite."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run that is recorded as interrupted (its resume point written)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean 'x'?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def path_problem(path: str | os.PathLike) -> str | None:
    """Why no file can be made at `path` ('/x/notes.txt is a file, not a folder'), or None."""
    for parent in Path(path).parents:   # nearest first
        if parent.exists():
            return None if parent.is_dir() else f"{parent} is a file, not a folder"
    return None
