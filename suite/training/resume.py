"""Resuming an interrupted run from its last checkpoint, exactly.

`SaveResumePoint` is the only writer of `last.ckpt` (Lightning's `ModelCheckpoint` writes only
`best.ckpt`). It writes it after every validation, every `CHECKPOINT_EVERY_STEPS` training steps
(but after the validation when one is due at that step), and when the run is interrupted, always to a temporary file that is then renamed, so that a kill
at any moment leaves either the previous checkpoint or the new one, never a torn one. Lightning's
own `ModelCheckpoint(save_last=True)` and `OnExceptionCheckpoint` write in place, and the latter
saves wherever the exception lands, in the middle of a batch, which is why they are not used.

A checkpoint holds, besides Lightning's state (weights, optimiser, scheduler, loop counters):
- the position in the training data (`ResumableBatches`: pass index and batches trained), so that
  a resumed epoch continues with the next batch, in the same order;
- the torch (CPU and CUDA), numpy and Python random states, so that dropout draws the same masks
  as in an uninterrupted run;
- the carried state of truncated BPTT (saved by the module).

Ctrl-C and SIGTERM do not interrupt a batch: the first one asks the run to stop, the current
training batch (or validation pass) finishes, `last.ckpt` is written, then the run stops as
interrupted. Data position, step counter, weights and random state therefore always agree, and a
resumed run replays nothing. A second Ctrl-C stops at once (from the previous checkpoint). A
SIGKILL loses at most the steps since the last checkpoint.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytorch_lightning.callbacks import Checkpoint

from rnnbench.core.contracts import Batch
from rnnbench.toolkit.batching import IndexBatches

CHECKPOINT_EVERY_STEPS = 500
STOP_CHECK_EVERY_STEPS = 25   # under DDP: steps between agreeing on a stop request
LAST_CHECKPOINT = "last.ckpt"


class ResumableBatches:
    """The task's training iterable, resumable where it stopped.

    Lightning stores `state_dict()` (pass index, batches trained in that pass) in every checkpoint
    and calls `load_state_dict` before iterating again. A wrapped `rnnbench.toolkit.batching.IndexBatches`
    (whose `passes` counter decides each pass's order) is set to the saved pass so that it replays the same order.
    `completed` is counted by `SaveResumePoint`.

    Under DDP (`shard`), process `rank` of `world_size` trains batches rank, rank + world_size,
    ... of each pass, and every process the same number of them (the remainder is left out).
    """

    def __init__(self, batches: Iterable[Batch]) -> None:
        self.batches = batches
        self.pass_index = -1
        self.completed = 0
        self._resume_at: tuple[int, int] | None = None
        self.rank, self.world_size = 0, 1

    def shard(self, rank: int, world_size: int) -> None:
        """Train only this process's share of every pass (DDP)."""
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return len(self.batches) // self.world_size  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Batch]:
        if self._resume_at is not None:
            self.pass_index, skip = self._resume_at
            self._resume_at = None
        else:
            self.pass_index, skip = self.pass_index + 1, 0
        self.completed = skip
        if isinstance(self.batches, IndexBatches):   # its passes replay from their index
            self.batches.passes = self.pass_index
        batches: Iterator[Batch] = iter(self.batches)
        if self.world_size > 1:
            batches = itertools.islice(batches, self.rank, len(self) * self.world_size, self.world_size)
        return itertools.islice(batches, skip, None)

    def state_dict(self) -> dict[str, int]:
        return {"pass_index": self.pass_index, "completed": self.completed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        # A resume point is always written inside an epoch (at a batch's end or its validation),
        # so Lightning re-enters the saved epoch even when its last batch was trained, iterates
        # it (finding nothing left) and then starts the next: the saved pass resumes with what is
        # left of it, which may be nothing, and the next pass follows in its own order.
        self._resume_at = (state["pass_index"], state["completed"])


def random_states() -> dict[str, Any]:
    """Every random generator a training step may draw from."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    # plain values and tensors only, so that checkpoints load with torch.load(weights_only=True)
    states = {"torch": torch.get_rng_state(),
              "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)),
              "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class SaveResumePoint(Checkpoint):
    """Counts the batches trained, owns `last.ckpt` (see the module docstring) and turns Ctrl-C and
    SIGTERM during training into a clean stop at the end of the current batch.

    A `Checkpoint` subclass, so Lightning runs it after the other callbacks and after the
    `ModelCheckpoint` that tracks the best score: the state it saves includes that score.
    """

    def __init__(self, batches: ResumableBatches, folder: Path, every_steps: int | None = None) -> None:
        self.batches, self.folder = batches, Path(folder)
        self.every_steps = every_steps or CHECKPOINT_EVERY_STEPS
        self.stop_requested = False
        self._pending_random_states: dict[str, Any] | None = None
        self._previous_handlers: dict[int, Any] = {}

    # ---- signals: a stop request, honoured at the next clean point

    def _request_stop(self, signum, frame) -> None:
        if self.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.stop_requested = True

    def setup(self, trainer, module, stage: str) -> None:
        if stage != "fit":
            return
        self.batches.shard(trainer.global_rank, trainer.world_size)
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous_handlers[signum] = signal.signal(signum, self._request_stop)

    def teardown(self, trainer, module, stage: str) -> None:
        self._restore_handlers()

    def on_exception(self, trainer, module, exception: BaseException) -> None:
        self._restore_handlers()   # an interrupted fit ends here, without `teardown`

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()

    def _stop_if_requested(self, trainer, validated: bool = False) -> None:
        if trainer.world_size > 1:
            # a signal may reach one process only: all stop if one was asked to, at the same
            # step (an all-reduce, hence only every STOP_CHECK_EVERY_STEPS steps and at validations)
            if trainer.global_step % STOP_CHECK_EVERY_STEPS and not validated:
                return
            self.stop_requested = trainer.strategy.reduce_boolean_decision(self.stop_requested, all=False)
        if self.stop_requested:
            self._save(trainer)
            raise KeyboardInterrupt

    # ---- writing

    def _save(self, trainer) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / LAST_CHECKPOINT
        partial = target.with_suffix(".partial")
        trainer.save_checkpoint(partial)   # every DDP process takes part; rank 0 writes
        if trainer.is_global_zero:
            os.replace(partial, target)

    @staticmethod
    def _validation_due(trainer) -> bool:
        """Whether Lightning validates right after this batch, by its own rule. A resume point
        written before that validation would make a resumed run skip it (Lightning restores the
        loop past the batch), so the point is written at the validation's end instead."""
        try:
            return bool(trainer.fit_loop.epoch_loop._should_check_val_fx(trainer.fit_loop._data_fetcher))
        except AttributeError:   # another Lightning: write the point now, as before
            return False

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index) -> None:
        self.batches.completed += 1
        if not self.stop_requested and trainer.world_size == 1 and trainer.global_step % self.every_steps:
            return   # most steps: nothing to write and no stop to honour (DDP agrees on stops below)
        if self._validation_due(trainer):
            return   # its end writes the resume point, and stops the run if a stop was asked for
        self._stop_if_requested(trainer)
        if trainer.global_step % self.every_steps == 0:
            self._save(trainer)

    def on_validation_end(self, trainer, module) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":  # not a validate() after training
            return
        self._save(trainer)
        self._stop_if_requested(trainer, validated=True)

    # ---- random state

    def on_save_checkpoint(self, trainer, module, checkpoint: dict[str, Any]) -> None:
        checkpoint["random_states"] = random_states()

    def on_load_checkpoint(self, trainer, module, checkpoint: dict[str, Any]) -> None:
        self._pending_random_states = checkpoint.get("random_states")

    def on_train_start(self, trainer, module) -> None:
        # after everything that builds or restores (which may draw numbers), before the first batch
        if self._pending_random_states is not None:
            set_random_states(self._pending_random_states)
            self._pending_random_states = None


def resume_checkpoint(folder: Path, status: str | None) -> Path | None:
    """The checkpoint to resume from: `last.ckpt` of a run recorded as interrupted, if present."""
    candidate = Path(folder) / LAST_CHECKPOINT
    return candidate if status == "interrupted" and candidate.is_file() else None
