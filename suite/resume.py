"""Resuming an interrupted run from its last checkpoint, mid-epoch included.

A run stopped by Ctrl-C, SIGTERM or a killed process is recorded as interrupted; running it again
continues from `last.ckpt` in its checkpoint folder. `last.ckpt` is written at every validation, every
`CHECKPOINT_EVERY_STEPS` training steps, and when the run is interrupted, so a long epoch loses at
most that many steps. The training batches are wrapped in `ResumableBatches`, whose position is
saved in each checkpoint, so a resumed epoch continues with the batch after the last one trained
(in the same order, for tasks that shuffle by pass number) instead of starting the epoch again.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.exceptions import SIGTERMException

from suite.contracts import Batch

CHECKPOINT_EVERY_STEPS = 500
LAST_CHECKPOINT = "last.ckpt"


class ResumableBatches:
    """The task's training iterable, resumable where it stopped.

    Lightning stores `state_dict()` (pass index, batches trained in that pass) in every checkpoint
    and calls `load_state_dict` before iterating again. A wrapped iterable with a `passes` counter
    (e.g. `suite.batching.IndexBatches`) is set to the saved pass so that it replays the same order.
    `completed` is counted by `SaveResumePoint`.
    """

    def __init__(self, batches: Iterable[Batch]) -> None:
        self.batches = batches
        self.pass_index = -1
        self.completed = 0
        self._resume_at: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Batch]:
        if self._resume_at is not None:
            self.pass_index, skip = self._resume_at
            self._resume_at = None
        else:
            self.pass_index, skip = self.pass_index + 1, 0
        self.completed = skip
        if hasattr(self.batches, "passes"):
            self.batches.passes = self.pass_index
        return itertools.islice(iter(self.batches), skip, None)

    def state_dict(self) -> dict[str, int]:
        return {"pass_index": self.pass_index, "completed": self.completed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        pass_index, completed = state["pass_index"], state["completed"]
        finished = completed >= len(self)
        self._resume_at = (pass_index + 1, 0) if finished else (pass_index, completed)


class SaveResumePoint(Callback):
    """Count the batches trained in `batches`, and write `last.ckpt` every `every_steps` training
    steps and when the run is interrupted (to a temporary file first, then renamed, so a kill
    never leaves a torn checkpoint)."""

    def __init__(self, batches: ResumableBatches, folder: Path, every_steps: int | None = None) -> None:
        self.batches, self.folder = batches, Path(folder)
        self.every_steps = every_steps or CHECKPOINT_EVERY_STEPS

    def _save(self, trainer) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / LAST_CHECKPOINT
        partial = target.with_suffix(".partial")
        trainer.save_checkpoint(partial)
        os.replace(partial, target)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index) -> None:
        self.batches.completed += 1
        if trainer.global_step and trainer.global_step % self.every_steps == 0:
            self._save(trainer)

    def on_exception(self, trainer, module, exception: BaseException) -> None:
        if is_interruption(exception, trainer) and trainer.global_step:
            self._save(trainer)


def is_interruption(error: BaseException, trainer: Any = None) -> bool:
    """Ctrl-C (Lightning turns it into SystemExit after a graceful shutdown) or SIGTERM."""
    if isinstance(error, (KeyboardInterrupt, SIGTERMException)):
        return True
    interrupted = bool(getattr(trainer, "interrupted", False)) if trainer is not None else False
    return isinstance(error, SystemExit) and interrupted


def resume_checkpoint(folder: Path, status: str | None) -> Path | None:
    """The checkpoint to resume from: `last.ckpt` of a run recorded as interrupted, if present."""
    candidate = Path(folder) / LAST_CHECKPOINT
    return candidate if status == "interrupted" and candidate.is_file() else None
