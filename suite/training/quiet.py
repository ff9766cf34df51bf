"""What libraries print that the benchmark's output does not need, filtered in every process that
runs runs (the CLI's, and each sweep worker's)."""

from __future__ import annotations

import warnings


def quiet_library_chatter() -> None:
    """Keep library deprecation chatter out of the benchmark's output."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
