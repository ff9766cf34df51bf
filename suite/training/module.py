"""The Lightning module around a model: loss reduction, carried state (truncated BPTT), metrics,
the optimisation step and its schedule, and the divergence rule."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch

from rnnbench.core.contracts import Batch, SequenceBatch, Task
from rnnbench.core.errors import BenchmarkError, DivergedError
from rnnbench.core.state import detach_state, state_tensors
from rnnbench.toolkit.metrics import CurveMetric
from rnnbench.training.config import RunConfig
from rnnbench.training.model import BenchmarkModel

LOG_EVERY = 25  # steps between train-loss logs and divergence checks: the only host syncs of training

def steps_counted_by_automatic_optimisation(checkpoint: dict[str, Any]) -> None:
    """Carry a resume point's step count over from Lightning's automatic optimisation, which the
    runner used before it stepped the optimiser itself: Lightning counts the steps (and so
    `global_step`) of manual optimisation apart, and would resume such a point at step 0."""
    loops = checkpoint.get("loops", {}).get("fit_loop", {})
    manual = loops.get("epoch_loop.manual_optimization.optim_step_progress")
    automatic = loops.get("epoch_loop.automatic_optimization.optim_progress")
    if manual is None or automatic is None or manual["total"]["completed"]:
        return
    for scope in ("total", "current"):
        manual[scope] = dict(automatic["optimizer"]["step"][scope])

_PLAIN_VALUES = frozenset({str, int, float, bool, type(None)})   # never a parameter, buffer or module

DIVERGENCE_FACTOR = 100.0  # a loss this many times the first step's loss has diverged

class TrainingModule(pl.LightningModule):
    """Loss reduction, state carrying, metrics and the optimiser around a BenchmarkModel.

    Training and evaluation carry their own states (`_train_state`, `_eval_state`): a validation in
    the middle of a training stream must not reset the stream's truncated-BPTT state.

    The module takes the optimisation step itself (Lightning's manual optimisation): zero the
    gradients, backward, clip, step, schedule, as a plain PyTorch loop does, through Lightning's
    optimiser and backward so that mixed precision and DDP work as before. Lightning's automatic
    optimisation wraps the same work in a closure and more hook calls. With this and `__setattr__`,
    paired windows (`python -m benchmarks runner_overhead`): the smallest probe's step went from
    0.993 to 0.937 times plain Lightning's, the 2x200 LM's from 1.023 to 1.013 times a bare loop's.
    """

    def __init__(self, model: BenchmarkModel, task: Task, config: RunConfig, steps_per_epoch: int) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model, self.task, self.config = model, task, config
        self.steps_per_epoch = steps_per_epoch
        self.split_metrics = torch.nn.ModuleDict({split: task.metrics().clone(prefix=f"{split}/")
                                                  for split in ("val", "test")})
        self._train_state: Any = None
        self._eval_state: Any = None
        self._loss_sum = torch.zeros(())
        self._loss_count = torch.zeros(())
        # the test split's curves (`CurveMetric`), by recorded name: the runner stores them
        self.test_curves: dict[str, list[tuple[float, float]]] = {}
        self.state_floats: float | None = None   # floats per sequence in the recurrent state
        self.items_trained = torch.zeros((), dtype=torch.long)
        # real and all positions of the training batches' sequences (`padding_share`)
        self.positions = torch.zeros(2, dtype=torch.long)
        self.initial_loss: float | None = None
        # per step since the last check (`_check_window`): its loss, items, and sequence lengths
        # with their padded size; plain lists, so that a step adds no tensor operation of its own
        self._window_losses: list[torch.Tensor] = []
        self._window_counts: list[torch.Tensor] = []
        self._window_lengths: list[torch.Tensor] = []
        self._window_padded = 0
        # optimiser steps whose gradients clipping changed, of all clipped-for steps: whether
        # optim.clip_norm / clip_value acted at all (`clipping`)
        self.clip_counts = torch.zeros(2, dtype=torch.long)
        self.clipping_at_end: dict[str, int] | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        """Lightning sets `_current_fx_name` on the module around every hook it calls, about 35
        times a training step, and nn.Module's `__setattr__` takes 4 us each (its isinstance
        checks against Parameter and Buffer): 0.14 ms a step. A plain value replacing a plain
        attribute is stored directly, as nn.Module would store it; anything else goes through
        nn.Module (a tensor, a module, a name it registered)."""
        if type(value) in _PLAIN_VALUES and name in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # ---- shared

    def _reduce(self, loss_sum: torch.Tensor, count: torch.Tensor, batch: Batch) -> torch.Tensor:
        if self.config.optim.loss_reduction == "sequence_sum":
            return loss_sum / batch.batch_size
        return loss_sum / count.clamp(min=1)

    def _step(self, batch: Batch, training: bool):
        if not self.task.requirements.carries_state:
            output, encoded = self.model(batch, None)
            self._measure_state(encoded.state, batch)
            return output
        state = self._train_state if training else self._eval_state
        output, encoded = self.model(batch, state)
        self._measure_state(encoded.state, batch)
        if training:
            self._train_state = detach_state(encoded.state)
        else:
            self._eval_state = detach_state(encoded.state)
        return output

    def _measure_state(self, state: Any, batch: Batch) -> None:
        """The recurrent state's size, floats per sequence, from the first batch (Zoology's state
        size: what associative recall needs to grow with the pairs); None for an encoder that
        returns no state (it cannot carry one)."""
        if self.state_floats is None and state is not None:
            self.state_floats = sum(tensor.numel() for tensor in state_tensors(state)) / batch.batch_size

    def diverged(self, loss: float) -> bool:
        """The divergence rule: a loss that is not finite, or more than DIVERGENCE_FACTOR times the
        mean loss of the first training step(s)."""
        if not math.isfinite(loss):
            return True
        return self.initial_loss is not None and self.initial_loss > 0 and loss > DIVERGENCE_FACTOR * self.initial_loss

    # ---- training

    def on_train_epoch_start(self) -> None:
        self._train_state = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the losses since the last window are checked before any checkpoint is written: a
        # diverged model never becomes best.ckpt or a resume point (DivergedError aborts the save)
        self._check_window(log=False, reset=False)
        # a run resumed mid-epoch continues its truncated-BPTT stream from the same state
        checkpoint["carried_state"] = self._train_state
        checkpoint["initial_loss"] = self.initial_loss
        checkpoint["positions"] = self.positions.cpu()
        # the losses of the window under way: a resumed run logs the same window mean
        checkpoint["window_losses"] = [loss.cpu() for loss in self._window_losses]
        checkpoint["clip_counts"] = self.clip_counts.cpu()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        steps_counted_by_automatic_optimisation(checkpoint)
        self._train_state = checkpoint.get("carried_state")
        self.initial_loss = checkpoint.get("initial_loss")
        self.positions = checkpoint.get("positions", torch.zeros(2, dtype=torch.long))
        self._window_losses = list(checkpoint.get("window_losses", []))
        self.clip_counts = checkpoint.get("clip_counts", torch.zeros(2, dtype=torch.long))

    def _count_positions(self, batch: Batch) -> None:
        """Note a training batch's sequences (the source and, for an encoder-decoder task, the
        decoder's inputs): their lengths, and the positions they fill with padding."""
        for sequences in (batch.inputs, batch.decoder_inputs):
            if isinstance(sequences, SequenceBatch):
                self._window_lengths.append(sequences.lengths)
                self._window_padded += sequences.lengths.shape[0] * sequences.values.shape[1]

    def _add_tallies(self) -> None:
        """Add the items and positions of the steps since the last call to the run's totals:
        a few device operations per window, no sync."""
        if self._window_counts:
            counts = torch.stack(self._window_counts).sum()
            self.items_trained = self.items_trained.to(counts.device) + counts
            self._window_counts = []
        if self._window_lengths:
            real = torch.cat(self._window_lengths).sum()
            counted = torch.stack([real, real.new_tensor(self._window_padded)])
            self.positions = self.positions.to(real.device) + counted
            self._window_lengths, self._window_padded = [], 0

    def clipping(self) -> dict[str, int] | None:
        """{"clipped": optimiser steps clipping changed, "steps": steps it was asked for}; None
        when the run clips nothing. A setting that never clipped did nothing to the run. The
        run's record is `clipping_at_end`, taken when training ends."""
        clipped, steps = (int(count) for count in self.clip_counts)
        return {"clipped": clipped, "steps": steps} if steps else None

    def padding_share(self) -> float | None:
        """Padded positions over all positions of the training batches' sequences (0 for
        full-length batches; None when training saw no padded-sequence batch: trees, grids, a
        closed-form readout). What bucketing by length (`task.batching`) lowers."""
        real, total = (int(count) for count in self.positions)
        return 1.0 - real / total if total else None

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Tasks build their batches on the CPU: there, nothing to move. Lightning's default walks
        every field of the nested batch dataclasses and copies them (43 us a batch alone); with
        this and `BestCheckpoint`, the smallest probe's step went from 1.067 to 1.008 times plain
        Lightning's (paired windows, `python -m benchmarks runner_overhead`)."""
        if device.type == "cpu":
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def training_step(self, batch: Batch, batch_index: int) -> None:
        output = self._step(batch, training=True)
        loss = self._reduce(output.loss_sum, output.count, batch)
        self._window_counts.append(output.count)
        self._count_positions(batch)
        self._window_losses.append(loss.detach())
        if self.global_step % LOG_EVERY == 0:
            # Lightning's self.log costs about a millisecond: once per window, not per step
            self._check_window(log=True)
        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()   # clips in `on_before_optimizer_step`, once AMP has unscaled the gradients
        self._schedule()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Gradient clipping: by global norm (`optim.clip_norm`), by value (`optim.clip_value`,
        `torch.nn.utils.clip_grad_value_`), or none; never both (`resolve` refuses it)."""
        optim = self.config.optim
        if optim.clip_value is None and optim.clip_norm is None:
            return
        parameters = [parameter for parameter in self.parameters() if parameter.grad is not None]
        if not parameters:
            return
        if optim.clip_value is not None:   # acted where any gradient entry exceeds the value
            largest = torch.stack([parameter.grad.detach().abs().max() for parameter in parameters]).max()
            acted = largest > optim.clip_value
            self.clip_gradients(optimizer, gradient_clip_val=optim.clip_value, gradient_clip_algorithm="value")
        else:   # as Lightning's clip_gradients(norm) does, keeping the norm: acted where it exceeds the bound
            acted = torch.nn.utils.clip_grad_norm_(parameters, optim.clip_norm) > optim.clip_norm
        step = torch.stack([acted.long(), torch.ones_like(acted.long())])   # (clipped, asked)
        self.clip_counts = self.clip_counts.to(acted.device) + step

    def _schedule(self) -> None:
        """Step the learning-rate schedule when Lightning's automatic optimisation would: a
        per-step schedule after every optimiser step, a per-epoch one with the epoch's last batch."""
        scheduler = self.lr_schedulers()
        if scheduler is None:
            return
        if self.trainer.lr_scheduler_configs[0].interval == "step" or self.trainer.is_last_batch:
            scheduler.step()

    def _check_window(self, log: bool, reset: bool = True) -> None:
        """Apply the divergence rule to the mean training loss of the steps since the last check,
        and log it as train/loss if `log`; start a new window if `reset`.

        Host syncs: `training_step` only notes the loss (a device tensor) in a list; this averages
        the list and reads the mean back (`float`), so training syncs once per LOG_EVERY steps, at
        checkpoints and at the end.
        train/loss goes to the store and loggers, not the progress bar: Lightning converts a
        progress-bar value with `.item()` after every batch, a device sync per step. Under DDP
        every process calls this at the same steps and the window is averaged over them first,
        so all stop on the same step."""
        self._add_tallies()
        if not self._window_losses:
            return
        device = self._window_losses[-1].device   # a resumed window's first losses were saved on the CPU
        mean = torch.stack([loss.to(device) for loss in self._window_losses]).mean()
        if self._trainer is not None and self.trainer.world_size > 1:
            mean = self.trainer.strategy.reduce(mean, reduce_op="mean")
        value = float(mean)
        if self.initial_loss is None and math.isfinite(value):
            self.initial_loss = value
        if self.diverged(value):
            raise DivergedError(f"training diverged by step {self.global_step} (loss {value:.4g}, "
                                f"first loss {self.initial_loss}): lower optim.lr or set optim.clip_norm")
        if log:
            self.log("train/loss", mean, on_step=True, on_epoch=False)
        if reset:
            self._window_losses = []

    def on_train_end(self) -> None:
        self._check_window(log=False)  # the steps since the last window count too
        if self.trainer.world_size > 1:   # the throughput counts every process's items
            self.items_trained = self.trainer.strategy.reduce(self.items_trained, reduce_op="sum")
            self.positions = self.trainer.strategy.reduce(self.positions, reduce_op="sum")
        # fixed now: evaluating the best checkpoint next restores the counts saved with it
        self.clipping_at_end = self.clipping()

    def setup(self, stage: str) -> None:
        if self.trainer.world_size > 1:
            # under DDP every process evaluates the whole split (`ResumableBatches` shares out
            # training batches only): its metric states are complete, and torchmetrics' sync
            # across processes would count every item once per process
            for collection in self.split_metrics.values():
                for metric in collection.values():
                    metric.sync_on_compute = metric._to_sync = False

    # ---- evaluation

    def _evaluation_start(self) -> None:
        self._eval_state = None
        self._loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        self._loss_count = torch.zeros((), device=self.device, dtype=torch.float64)

    def _evaluation_step(self, batch: Batch, split: str) -> None:
        output = self._step(batch, training=False)
        self._loss_sum += output.loss_sum.detach().double()
        self._loss_count += output.count.double()
        self.model.head.update_metrics(self.split_metrics[split], output.predictions.detach(), batch)

    def _evaluation_end(self, split: str) -> None:
        values = {name: value.float() for name, value in self.split_metrics[split].compute().items()}
        values[f"{split}/loss"] = (self._loss_sum / self._loss_count.clamp(min=1)).float()
        for name, value in self.task.evaluate_model(self.model, split).items():
            values[f"{split}/{name}"] = torch.tensor(float(value))
        if split == "test":
            self.test_curves = {name: metric.curve() for name, metric in self.split_metrics[split].items(keep_base=False)
                                if isinstance(metric, CurveMetric)}
        self.split_metrics[split].reset()
        self._eval_state = None
        self.log_dict(values, prog_bar=split == "val")

    def on_validation_epoch_start(self) -> None:
        self._evaluation_start()

    def validation_step(self, batch: Batch, batch_index: int) -> None:
        self._evaluation_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._evaluation_end("val")

    def on_test_epoch_start(self) -> None:
        self._evaluation_start()

    def test_step(self, batch: Batch, batch_index: int) -> None:
        self._evaluation_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._evaluation_end("test")

    # ---- optimisation

    def configure_optimizers(self):
        optim = self.config.optim
        params = self.model.parameters()
        if optim.optimizer == "sgd":
            optimizer = torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum,
                                        weight_decay=optim.weight_decay)
        elif optim.optimizer == "adam":
            optimizer = torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay)
        else:
            optimizer = torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)
        if optim.schedule == "constant":
            return optimizer
        if optim.schedule == "decay":
            # epoch e (0-based) trains with lr * factor ** max(0, e + 1 - decay_start + 1)
            start, factor = optim.decay_start, optim.decay_factor
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda epoch: factor ** max(0, epoch + 2 - start))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        total = self.config.trainer.max_steps or (self.config.trainer.max_epochs or 0) * self.steps_per_epoch
        if not total:
            raise BenchmarkError("optim.schedule=cosine needs trainer.max_steps or trainer.max_epochs")
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
