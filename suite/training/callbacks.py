"""The runner's Lightning callbacks: the run's progress (rounds, training time, the end of the
budget) and the best checkpoint."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from rnnbench.training.recorder import Recorder

class RecordProgress(Callback):
    """The run's progress, in one callback (Lightning's per-step cost grows with each callback):

    - after every validation, the round's metrics go to the store's history. A round is numbered
      by its training step, so a validation repeated after a resume (the process died after
      writing the round but before its checkpoint) replaces its round instead of adding a second;
    - training time, for the throughput figure: wall time between consecutive training batches,
      so data loading and the loop's own overhead count, and validation does not;
    - the end of the budget: every run ends with a validation of its final weights, whatever the
      interval. Lightning validates when a callback sets `should_stop`, but not when it stops at
      `max_steps` or `max_epochs` itself; so on the last batch of the budget this asks it to stop
      (before the checkpoint callbacks see the batch). A time budget already stops that way;
    - with `print_rounds` (output to a file or a pipe, where a progress bar would write every
      step), one line per validation round instead: its step and validation metrics;
    - convergence: the monitored validation metric of every round (kept in the resume point), so
      that the run records why it stopped and whether it was still improving (`convergence`)."""

    def __init__(self, store: Recorder, run_id: str, max_steps: int | None = None,
                 max_epochs: int | None = None, print_rounds: bool = False,
                 monitor: str | None = None, direction: str = "min") -> None:
        self.store, self.run_id = store, run_id
        self.max_steps, self.max_epochs = max_steps, max_epochs
        self.print_rounds = print_rounds
        self.monitor, self.direction = monitor, direction
        self.rounds: list[tuple[int, float]] = []   # (step, monitored value), kept in the resume point
        self._convergence: dict[str, Any] = {}     # fixed by `training_ended`
        self.train_seconds = 0.0
        self._since = time.perf_counter()

    def state_dict(self) -> dict[str, Any]:
        return {"rounds": list(self.rounds)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rounds = [tuple(pair) for pair in state_dict.get("rounds", [])]

    def training_ended(self, stopped_by: str) -> None:
        """Fix the run's convergence record when training ends (the evaluation of the best
        checkpoint that follows restores this callback's state as it was at that checkpoint)."""
        self._convergence = {"stopped_by": stopped_by, "monitor": self.monitor, "rounds": len(self.rounds),
                             "improving_at_end": improving_at_end(self.rounds, self.direction)}

    def convergence(self) -> dict[str, Any]:
        """Why training stopped (early_stopping, budget or closed_form) and whether the monitored
        validation metric was still improving over the last fifth of the steps; empty before
        training ended."""
        return dict(self._convergence)

    def on_train_epoch_start(self, trainer, module) -> None:
        self._since = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index) -> None:
        now = time.perf_counter()
        self.train_seconds += now - self._since
        self._since = now
        last_step = self.max_steps is not None and trainer.global_step >= self.max_steps
        last_epoch = self.max_epochs is not None and trainer.current_epoch + 1 >= self.max_epochs
        if last_step or (last_epoch and batch_index + 1 >= trainer.num_training_batches):
            trainer.should_stop = True

    def on_validation_end(self, trainer, module) -> None:
        self._since = time.perf_counter()
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        values = {name: float(value) for name, value in trainer.callback_metrics.items()
                  if name.startswith(("val/", "train/")) and math.isfinite(float(value))}
        if self.monitor in values:
            self.rounds = [pair for pair in self.rounds if pair[0] != trainer.global_step]   # a repeated round
            self.rounds.append((trainer.global_step, values[self.monitor]))
        if trainer.is_global_zero:   # under DDP, one process records
            self.store.add_round(self.run_id, trainer.global_step, values)
            if self.print_rounds:
                budget = f"/{self.max_steps}" if self.max_steps else ""
                shown = ", ".join(f"{name} {value:.4g}" for name, value in sorted(values.items())
                                  if name.startswith("val/"))
                print(f"step {trainer.global_step}{budget} (epoch {trainer.current_epoch}): {shown}",
                      file=sys.stdout, flush=True)

LAST_PART = 0.2           # the last fifth of training
IMPROVING_MARGIN = 0.01   # better by more than 1% of the earlier best: still improving


def improving_at_end(rounds: list[tuple[int, float]], direction: str) -> bool | None:
    """Whether the best value of the rounds in the last fifth of training (steps after 80% of
    the last round's) improves on the best before it by more than 1% of that best; None when
    either part has no round."""
    if not rounds:
        return None
    cutoff = (1 - LAST_PART) * max(step for step, _ in rounds)
    before = [value for step, value in rounds if step <= cutoff]
    after = [value for step, value in rounds if step > cutoff]
    if not before or not after:
        return None
    pick = min if direction == "min" else max
    earlier, later = pick(before), pick(after)
    gain = earlier - later if direction == "min" else later - earlier
    return bool(gain > IMPROVING_MARGIN * abs(earlier))


class BestCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, keeping the best weights by the monitored validation metric,
    saved after validations only, made cheap on the steps between them. Lightning calls every hook
    of every callback on every step, and formats each callback's `state_key` for each call: here
    the key is built once (the key ModelCheckpoint has, so checkpoints written before this class
    resume with their best score), and the per-batch hook, which for a checkpoint saved at
    validations only reads the trainer's state to decide not to save, is not run at all."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self._every_n_train_steps or self._train_time_interval is not None:
            raise ValueError("BestCheckpoint saves at validations only: no every_n_train_steps or "
                             "train_time_interval")
        self._state_key = super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    @property
    def state_key(self) -> str:
        return self._state_key

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index) -> None:
        pass
