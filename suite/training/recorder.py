"""Where a run records itself: the interface the runner writes through.

On one machine it is the results store (`rnnbench.store.ResultStore`). Under Ray it is a message
to the sweep's driver (`rnnbench.sweeps.ray_driver.RemoteRecorder`), because only the driver writes the
store: SQLite does not belong on a network file system.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Recorder(Protocol):
    """What `rnnbench.training.runner.run` needs to record a run.

    path: the results store the records end up in; checkpoint_root: the folder that holds each
    run's checkpoints (`RUN_ID/best.ckpt`, `RUN_ID/last.ckpt`), shared by every machine a run
    may be retried on.
    """

    path: Path
    checkpoint_root: Path

    def mark_stale_runs(self) -> int:
        """Close the rows of runs whose process has died (as interrupted); return how many."""

    def status_of(self, run_id: str) -> str | None:
        """The run's recorded status, or None if it was never recorded."""

    def start_run(self, **fields: Any) -> None:
        """Record the run as running (`ResultStore.start_run`'s fields)."""

    def add_round(self, run_id: str, step: int, values: dict[str, float]) -> None:
        """Record one evaluation round at training step `step`."""

    def set_curve(self, run_id: str, name: str, points: list[tuple[float, float]]) -> None:
        """Record one of the run's curves (`ResultStore.set_curve`)."""

    def finish_run(self, run_id: str, status: str, **fields: Any) -> None:
        """Record how the run ended (`ResultStore.finish_run`'s fields)."""

    def conformance_verdict(self, architecture: str, version: int, options_hash: str,
                            source_hash: str, kit_hash: str) -> tuple[bool, str, float] | None:
        """A kept verdict of the conformance kit, or None (`rnnbench.training.conformance_verdicts`)."""

    def record_conformance(self, architecture: str, version: int, options_hash: str,
                           source_hash: str, kit_hash: str, *, passed: bool, message: str,
                           checked_at: float) -> None:
        """Keep a verdict of the conformance kit."""
