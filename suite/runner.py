"""Train one (architecture, task, configuration, seed) with PyTorch Lightning and record it.

`run(...)` resolves the configuration, derives the run id, builds the model, trains it within the
budget (early stopping on the primary validation metric), evaluates the best checkpoint on the
test split, and writes everything to the results store. A crash, a Ctrl-C or a diverged loss is
recorded with its status; nothing already measured is lost.
"""

from __future__ import annotations

import logging
import multiprocessing
import math
import os
import platform
import resource
import socket
import subprocess
import time
import warnings
import dataclasses
import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torchmetrics
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.strategies import DDPStrategy

from rnnbench import cpu_share, registry, verdicts
from rnnbench.config import RunConfig, check_seed, config_hash, identity_settings, resolve
from rnnbench.contracts import Architecture, Batch, SequenceBatch, Task, compatibility
from rnnbench.denormals import flush_denormals
from rnnbench.freed_memory import keep_freed_memory
from rnnbench.errors import BenchmarkError, DivergedError
from rnnbench.heads import Head
from rnnbench.model import (BenchmarkModel, build_model, check_initialisation, check_model_fits,
                         count_fixed_weights, count_parameters, decoder_architecture, hidden_size_for_budget, initialise)
from rnnbench.resume import ResumableBatches, SaveResumePoint, resume_checkpoint
from rnnbench.recording import Recorder
from rnnbench.store import ResultStore

LOG_EVERY = 25  # steps between train-loss logs and divergence checks: the only host syncs of training

# Lightning's info banners (GPU available..., tips) would drown the benchmark's own output.
for _name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)
# a resumed run finds its own checkpoints in its folder, which is what it wants
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


def detach_state(state: Any) -> Any:
    """The carried state cut from the graph (truncated BPTT)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(detach_state(part) for part in state)


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


class BenchmarkModule(pl.LightningModule):
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
            return self.model(batch, None)[0]
        state = self._train_state if training else self._eval_state
        output, encoded = self.model(batch, state)
        if training:
            self._train_state = detach_state(encoded.state)
        else:
            self._eval_state = detach_state(encoded.state)
        return output

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

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        steps_counted_by_automatic_optimisation(checkpoint)
        self._train_state = checkpoint.get("carried_state")
        self.initial_loss = checkpoint.get("initial_loss")
        self.positions = checkpoint.get("positions", torch.zeros(2, dtype=torch.long))

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
        if optim.clip_value is not None:
            self.clip_gradients(optimizer, gradient_clip_val=optim.clip_value, gradient_clip_algorithm="value")
        elif optim.clip_norm is not None:
            self.clip_gradients(optimizer, gradient_clip_val=optim.clip_norm, gradient_clip_algorithm="norm")

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
        mean = torch.stack(self._window_losses).mean()
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
      (before the checkpoint callbacks see the batch). A time budget already stops that way."""

    def __init__(self, store: Recorder, run_id: str, max_steps: int | None = None,
                 max_epochs: int | None = None) -> None:
        self.store, self.run_id = store, run_id
        self.max_steps, self.max_epochs = max_steps, max_epochs
        self.train_seconds = 0.0
        self._since = time.perf_counter()

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
        if trainer.is_global_zero:   # under DDP, one process records
            self.store.add_round(self.run_id, trainer.global_step, values)


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


def fit_closed_form_readout(module: BenchmarkModule, train: Any, recorder: RecordProgress) -> None:
    """optim.optimizer=ridge: one pass over the training split without gradients, feeding the
    inputs of the head's declared linear readout (`Head.readout`) and the targets to the
    encoder's `fit_readout`, which sets the readout in closed form. Rows are the supervised items:
    those of `batch.metric_mask` if the task gives one, else the real steps of per-step sequence
    targets, else one per item."""
    model = module.model
    readout = model.head.readout if isinstance(model.head, Head) else None
    if not isinstance(readout, torch.nn.Linear):
        raise BenchmarkError(f"optim.optimizer=ridge needs a head that declares a linear readout "
                             f"(`Head.readout`, as rnnbench.heads.PooledRegressor does); "
                             f"{type(model.head).__name__} has none: use adam instead")
    captured: list[torch.Tensor] = []

    def pairs():
        for batch in train:
            captured.clear()
            output = module._step(batch, training=True)
            features = captured[0].reshape(-1, readout.in_features)
            targets = batch.targets.reshape(features.shape[0], -1)
            rows = batch.metric_mask
            if rows is None and isinstance(batch.inputs, SequenceBatch):
                rows = batch.inputs.mask()  # per-step targets: the real steps
                rows = rows if rows.numel() == features.shape[0] else None
            if rows is not None:
                if rows.numel() != features.shape[0]:
                    raise BenchmarkError(f"optim.optimizer=ridge: the task's metric_mask has "
                                         f"{rows.numel()} entries for {features.shape[0]} readout "
                                         f"rows; it must mark the supervised items")
                rows = rows.reshape(-1).to(features.device)
                features, targets = features[rows], targets[rows]
            module.items_trained = module.items_trained + output.count.cpu()
            if features.shape[0] > 0:   # a chunk may hold only warm-up steps (time-series washout)
                yield features, targets

    hook = readout.register_forward_hook(lambda layer, args, output: captured.append(args[0]))
    started = time.perf_counter()
    model.eval()
    try:
        with torch.no_grad():
            model.encoder.fit_readout(pairs(), readout)
    finally:
        hook.remove()
    recorder.train_seconds += time.perf_counter() - started


@dataclass
class RunResult:
    run_id: str
    status: str
    metrics: dict[str, float]
    parameters: int
    hidden_size: int
    items_per_second: float
    wall_time_s: float
    store_path: Path
    timings: dict[str, float] = dataclasses.field(default_factory=dict)


def run_identity(architecture: type[Architecture], task: type[Task], config: RunConfig,
                 seed: int) -> tuple[str, str]:
    """(run_id, config_id): hashes of everything that determines the result, with and without
    the seed."""
    payload = {"architecture": architecture.name, "architecture_version": architecture.version,
               "task": task.name, "task_version": task.version, "config": identity_settings(config)}
    config_id = config_hash(payload)
    return config_hash({**payload, "seed": seed}), config_id


@functools.lru_cache(maxsize=1)
def _git_commit() -> str | None:
    """The code revision, read once per process (a worker runs many runs)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                              capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    """Versions, device and code revision, recorded with every run."""
    commit = _git_commit()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    return {"python": platform.python_version(), "torch": torch.__version__,
            "lightning": pl.__version__, "torchmetrics": torchmetrics.__version__,
            "accelerator": "gpu" if torch.cuda.is_available() else "cpu", "device": device,
            "threads": torch.get_num_threads(), "hostname": socket.gethostname(), "git_commit": commit}


class PeakMemory:
    """Peak memory of one run, and what was measured (`kind`, recorded with the figure).

    On a GPU: `torch.cuda.max_memory_allocated`, reset when the run starts. On Linux: the
    process's peak resident set size (VmHWM), reset when the run starts by writing 5 to
    /proc/self/clear_refs. Elsewhere: `ru_maxrss`, the process's peak since it started, which
    bounds the run's from above when one process runs several runs.
    """

    def start(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
            self.kind = "cuda max_memory_allocated during the run"
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.kind = "peak resident set size (VmHWM) of the process during the run"
        except OSError:
            self.kind = "peak resident set size (ru_maxrss) of the process since it started"

    def peak_mb(self) -> float:
        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 2**20
        if "VmHWM" in self.kind:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


NONDETERMINISTIC = "does not have a deterministic implementation"


@dataclass(frozen=True)
class PreparedRun:
    """A run looked up, checked and resolved by `prepare`, before anything is built or recorded.

    architecture, task: the registered classes; config: every setting resolved;
    run_id: hash of architecture and task (names and versions), config and seed;
    config_id: the same without the seed (the seeds of one configuration share it).
    """

    architecture: type[Architecture]
    task: type[Task]
    config: RunConfig
    run_id: str
    config_id: str


def prepare(architecture_name: str, task_name: str, overrides: dict[str, str] | None = None,
            preset: str | None = None, seed: int = 0) -> PreparedRun:
    """Look up, check compatibility and resolve into a `PreparedRun`. Raises BenchmarkError for
    any bad input, before anything is written."""
    check_seed(seed)
    architecture = registry.get_architecture(architecture_name)
    task = registry.get_task(task_name)
    # as the source encoder: the decoder of an encoder-decoder task is checked once resolved
    verdict = compatibility(architecture.capabilities,
                            dataclasses.replace(task.requirements, decoder=None))
    if not verdict.ok:
        raise BenchmarkError(f"'{architecture_name}' cannot run '{task_name}': {verdict.reason}. "
                             f"See `rnnbench list --matrix` for the compatible pairs.")
    config = resolve(architecture, task, overrides, preset)
    check_hardware(config, task)
    decoder_architecture(architecture, task, config)   # an encoder-decoder task's decoder can decode
    check_initialisation(architecture, task, config)
    if config.optim.optimizer == "ridge":
        if not architecture.capabilities.closed_form_readout:
            raise BenchmarkError(f"optim.optimizer=ridge needs an architecture with a closed-form "
                                 f"readout (e.g. esn); '{architecture_name}' has none: use adam, "
                                 f"adamw or sgd")
        if task.head_kind != "regression":
            raise BenchmarkError(f"optim.optimizer=ridge fits a squared-error readout, but "
                                 f"'{task_name}' is a {task.head_kind} task: use adam, adamw or sgd")
    run_id, config_id = run_identity(architecture, task, config, seed)
    return PreparedRun(architecture, task, config, run_id, config_id)


def check_hardware(config: RunConfig, task: type[Task]) -> None:
    """Refuse, with a BenchmarkError naming the fix, a precision or device count this machine and
    process cannot train with as asked: Lightning itself would swap 16-mixed for bf16-mixed on a
    CPU with a warning, and the record would name a precision the run did not use."""
    trainer = config.trainer
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if trainer.precision == "16-mixed" and not gpus:
        raise BenchmarkError("trainer.precision=16-mixed needs a CUDA GPU (float16 autocast with a "
                             "gradient scaler); on a CPU use trainer.precision=bf16-mixed or 32-true")
    if trainer.devices == 1:
        return
    if gpus and trainer.devices > gpus:
        raise BenchmarkError(f"trainer.devices={trainer.devices} but {gpus} GPU(s) are visible: set "
                             f"trainer.devices={gpus} or less")
    if multiprocessing.parent_process() is not None:
        raise BenchmarkError("trainer.devices>1 starts one process per device from `rnnbench run`, "
                             "not inside a sweep's worker (sweeps give each run one device): use "
                             "trainer.devices=1")
    if task.requirements.carries_state or config.optim.optimizer == "ridge":
        raise BenchmarkError(f"trainer.devices>1 shares out independent batches, but task "
                             f"'{task.name}' carries state from batch to batch or the readout is "
                             f"fitted in closed form: use trainer.devices=1")


def _strategy(devices: int) -> str | DDPStrategy:
    """One device: Lightning's default. Several: DDP, one process per device, started by
    re-running the command (Lightning's subprocess launcher; see `run` for what the other
    processes do), gradients all-reduced with gloo on CPUs and nccl on GPUs."""
    if devices == 1:
        return "auto"
    return DDPStrategy(process_group_backend="nccl" if torch.cuda.is_available() else "gloo")


def initial_model(architecture: Architecture, task: Task, config: RunConfig,
                  seed: int) -> tuple[BenchmarkModel, int]:
    """(model, hidden size) exactly as a run with this seed starts training: seeded, sized to the
    parameter budget if there is one, and initialised."""
    pl.seed_everything(seed, workers=True, verbose=False)
    if config.model.params:
        check_model_fits(architecture, task, config, hidden_size=1)  # the budget search builds models
        hidden_size = hidden_size_for_budget(architecture, task, config, config.model.params)
    else:
        hidden_size = config.model.hidden_size
    check_model_fits(architecture, task, config, hidden_size)
    model = build_model(architecture, task, config, hidden_size)
    initialise(model, config)   # optim.init_scale, arch.recurrent_init, arch.forget_bias
    return model, hidden_size


@dataclass
class TrainedModel:
    run_id: str
    task: Task
    config: RunConfig
    model: BenchmarkModel


def load_trained(store: ResultStore, run_id: str) -> TrainedModel:
    """The model of a completed run at its best validation checkpoint (what its test metrics
    measured), rebuilt from its recorded settings; a BenchmarkError if there is no such run."""
    record = store.get(run_id)
    checkpoint = store.checkpoint_root / run_id / "best.ckpt"
    if record is None or record.status != "completed" or not checkpoint.exists():
        state = "never run" if record is None else record.status
        raise BenchmarkError(f"run {run_id} has no completed training with a checkpoint in "
                             f"{store.path} ({state}): train it first with `rnnbench run`, or pass "
                             f"the --store that holds it")
    prepared = prepare(record.architecture, record.task, record.config, seed=record.seed)
    config = prepared.config
    task = prepared.task(config.task_options)
    model, _ = initial_model(prepared.architecture(), task, config, record.seed)
    # our own checkpoint, written by the runner: it holds Lightning's loop state besides tensors
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    model.load_state_dict({name.removeprefix("model."): value for name, value in saved.items()
                           if name.startswith("model.")})
    return TrainedModel(run_id, task, config, model.eval())


@cpu_share.while_training
def run(architecture_name: str, task_name: str, overrides: dict[str, str] | None = None, *,
        preset: str | None = None, seed: int = 0, store: Recorder | str | os.PathLike = "runs/rnnbench.sqlite",
        progress: bool = True, wandb: bool = False, check: bool = True, keep_last: bool = False,
        group: str | None = None, tensorboard: bool = False) -> RunResult:
    """Train and evaluate one run, recording it in `store` (a results store, its path, or another
    `rnnbench.recording.Recorder`: a Ray task's messages to its sweep's driver).

    A completed run keeps only its best checkpoint (`checkpoints/RUN_ID/best.ckpt` beside the
    store), unless `keep_last` keeps its resume point `last.ckpt` too. `group`: the sweep it
    belongs to (a W&B group). `wandb`, `tensorboard`: log there too (`_loggers`).

    `check`: first require the architecture, with its resolved options, to pass the conformance
    kit (`rnnbench.verdicts.require`: computed once, kept in the store; a BenchmarkError with the
    kit's message, before anything is recorded, if it fails), as `rnnbench run` does unless
    `--no-check`. The run's environment records the verdict, or that the check was skipped.

    Bad input raises BenchmarkError before anything is recorded. Once the run is recorded as
    started, every way it can end is recorded: completed, diverged (`BenchmarkModule.diverged`),
    failed (with the error) or interrupted (Ctrl-C, SIGTERM, or found dead later); then the error
    is raised again (a KeyboardInterrupt with `recorded = True`)."""
    began = time.perf_counter()
    denormals_flushed = flush_denormals()   # before any torch op starts the threads: recorded
    freed_memory_kept = keep_freed_memory()   # recorded
    prepared = prepare(architecture_name, task_name, overrides, preset, seed)
    architecture_cls, task_cls, config = prepared.architecture, prepared.task, prepared.config
    run_id, config_id = prepared.run_id, prepared.config_id
    store = ResultStore(store) if isinstance(store, (str, os.PathLike)) else store
    follower = config.trainer.devices > 1 and _launched_rank() > 0
    if follower:   # a DDP process Lightning started: it trains its share, rank 0 records
        store, check = _Unrecorded(store), False
    store.mark_stale_runs()
    architecture, task = architecture_cls(), task_cls(config.task_options)

    model, hidden_size = initial_model(architecture, task, config, seed)  # refuses what cannot fit
    conformance = (verdicts.require(architecture_cls, config.arch_options, store).message if check
                   else verdicts.SKIPPED)
    splits = task.splits(config.trainer.batch_size, seed)
    module = BenchmarkModule(model, task, config, steps_per_epoch=len(splits.train))
    parameters = count_parameters(model)
    fixed_parameters = count_fixed_weights(model)
    checkpoint_dir = store.checkpoint_root / run_id
    resume_from = resume_checkpoint(checkpoint_dir, store.status_of(run_id))
    if follower:   # rank 0 has recorded the run as running by now: its decision is the one
        resume_from = Path(os.environ[RESUME_ENV]) if os.environ.get(RESUME_ENV) else None

    task_info = {"primary_metric": task.primary_metric, "direction": task.direction,
                 "head": task.head_kind, "curve_setting": task.curve_setting,
                 "ranked_together": list(task.ranked_together), "item_unit": task.item_unit,
                 "references": [ref.__dict__ for ref in task.references()]}
    store.start_run(run_id=run_id, config_id=config_id, architecture=architecture_name,
                    task=task_name, architecture_version=architecture.version,
                    task_version=task.version, seed=seed, preset=preset, config=config.flat(),
                    task_info=task_info, keep_history=resume_from is not None)

    started = time.perf_counter()
    memory = PeakMemory()
    memory.start()
    recorder = RecordProgress(store, run_id, config.trainer.max_steps, config.trainer.max_epochs)
    threads, thread_policy = cpu_share.threads_for_run()   # once, before training: recorded
    torch.set_num_threads(threads)
    metrics: dict[str, float] = {}
    timings: dict[str, float] = {"setup_s": started - began}
    nondeterministic: set[str] = set()

    def record(status: str, error: str | None = None, **measured: Any) -> None:
        env = {**environment(), "thread_policy": thread_policy, "denormals_flushed": denormals_flushed,
               "freed_memory_kept": freed_memory_kept,
               "deterministic_algorithms": "warn",
               "deterministic": not nondeterministic, "nondeterministic_ops": sorted(nondeterministic),
               "peak_memory": memory.kind, "conformance": conformance, "timings": timings,
               "resumed": resume_from is not None,
               **({"fixed_parameters": fixed_parameters} if fixed_parameters else {})}
        store.finish_run(run_id, status, error=error, metrics=metrics, parameters=parameters,
                         hidden_size=hidden_size, wall_time_s=time.perf_counter() - started,
                         peak_memory_mb=memory.peak_mb(), environment=env, **measured)

    loggers = _loggers(wandb, tensorboard, prepared, seed, group, store.checkpoint_root.parent)
    try:
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                _train_and_evaluate(module, splits, config, checkpoint_dir, resume_from, recorder,
                                    metrics, timings, loggers or False, store, progress)
        finally:
            for logger in loggers:   # a worker runs many runs: each W&B run ends with its run
                if type(logger).__name__ == "WandbLogger":
                    logger.experiment.finish()
            # the kernels without a deterministic implementation are recorded, the rest shown
            for warning in caught:
                text = str(warning.message)
                if NONDETERMINISTIC in text:
                    nondeterministic.add(text.split(NONDETERMINISTIC)[0].strip())
                else:
                    warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                           warning.lineno)
    except BaseException as error:
        # Lightning turns a KeyboardInterrupt into SystemExit(1) once it has shut the loop down
        interrupted = isinstance(error, (KeyboardInterrupt, SystemExit))
        status = "diverged" if isinstance(error, DivergedError) else "interrupted" if interrupted else "failed"
        record(status, error=(f"{type(error).__name__}: {error}" if not interrupted else
                              "stopped by Ctrl-C or SIGTERM; running it again resumes from its last checkpoint"))
        if interrupted:
            recorded = KeyboardInterrupt()
            recorded.recorded = True  # type: ignore[attr-defined]
            raise recorded from None
        raise
    throughput = float(module.items_trained) / max(recorder.train_seconds, 1e-9)
    padding_share = module.padding_share()
    if padding_share is not None:
        metrics["train/padding_share"] = padding_share
    record("completed", items_per_second=throughput)
    if not keep_last and not follower:
        (checkpoint_dir / "last.ckpt").unlink(missing_ok=True)
    return RunResult(run_id, "completed", metrics, parameters, hidden_size, throughput,
                     time.perf_counter() - started, store.path, timings)


def _train_and_evaluate(module: BenchmarkModule, splits: Any, config: RunConfig, checkpoint_dir: Path,
                        resume_from: Path | None, recorder: RecordProgress, metrics: dict[str, float],
                        timings: dict[str, float], logger: Any, store: Recorder, progress: bool) -> None:
    """Train within the budget (or fit the closed-form readout), then validate and test the best
    checkpoint, filling `metrics` as they are measured and `timings` (seconds in fit, and in the
    final validation and test); raise DivergedError if a loss diverged."""
    task = module.task
    monitor = f"val/{task.primary_metric}"
    best = BestCheckpoint(dirpath=checkpoint_dir, monitor=monitor, mode=task.direction,
                          save_top_k=1, save_last=False, filename="best", enable_version_counter=False)
    train_batches = ResumableBatches(splits.train)
    callbacks: list[Callback] = [recorder, best, SaveResumePoint(train_batches, checkpoint_dir)]
    if config.trainer.early_stopping:
        callbacks.append(EarlyStopping(monitor=monitor, mode=task.direction,
                                       patience=config.trainer.patience, check_finite=False))
    trainer = pl.Trainer(**_trainer_budget(config, len(splits.train)),
                         accelerator="auto", devices=config.trainer.devices,
                         strategy=_strategy(config.trainer.devices), precision=config.trainer.precision,
                         callbacks=callbacks, logger=logger,
                         enable_progress_bar=progress, enable_model_summary=False,
                         num_sanity_val_steps=0, deterministic="warn",
                         default_root_dir=str(checkpoint_dir))
    # deterministic="warn" turns on torch's deterministic algorithms, and with them a NaN fill of
    # every tensor an op allocates (`torch.utils.deterministic.fill_uninitialized_memory`, a debug
    # aid): a second write of every output. No kernel reads memory before writing it, so results
    # are the same bit for bit without the fill, and steps are faster (`benchmarks.runner_overhead`).
    torch.utils.deterministic.fill_uninitialized_memory = False
    if config.trainer.devices > 1:   # the processes Lightning starts inherit rank 0's decision
        os.environ[RESUME_ENV] = str(resume_from or "")
    fit_started = time.perf_counter()
    # SaveResumePoint alone handles SIGINT and SIGTERM (a stop at a clean point). Lightning's own
    # SIGTERM handler would end the run mid-loop (SystemExit) without a resume point, and at
    # teardown reinstate the handler it found (ours), which a worker would then keep between runs.
    trainer._signal_connector.register_signal_handlers = lambda: None
    if config.optim.optimizer == "ridge":
        fit_closed_form_readout(module, splits.train, recorder)
        best_path = None
    else:
        trainer.fit(module, train_dataloaders=train_batches, val_dataloaders=splits.val,
                    ckpt_path=resume_from)
        if trainer.interrupted:
            raise KeyboardInterrupt
        best_path = best.best_model_path or None
    evaluation_started = time.perf_counter()
    timings["fit_s"] = evaluation_started - fit_started
    # the metrics of record are those of the checkpoint the test evaluates, validation included
    trainer.validate(module, dataloaders=splits.val, ckpt_path=best_path, verbose=False)
    metrics.update(_metrics(trainer, "val/"))
    trainer.test(module, dataloaders=splits.test, ckpt_path=best_path, verbose=False)
    metrics.update(_metrics(trainer, "test/"))
    timings["evaluate_s"] = time.perf_counter() - evaluation_started
    if best.best_model_score is not None:
        metrics[f"best_{monitor}"] = float(best.best_model_score)
    for split in ("val", "test"):
        loss = metrics.get(f"{split}/loss")
        if loss is not None and module.diverged(loss):
            raise DivergedError(f"the {split} loss of the best checkpoint is {loss:.4g} (first "
                                f"training loss {module.initial_loss}): the run diverged; lower "
                                f"optim.lr or set optim.clip_norm")


RESUME_ENV = "RNNBENCH_RESUME_FROM"   # rank 0's resume point, for the other DDP processes


def _launched_rank() -> int:
    """This process's rank when Lightning's DDP launcher started it (it re-runs the command with
    NODE_RANK and LOCAL_RANK set); 0 for the process the user started."""
    return int(os.environ.get("NODE_RANK") or 0) + int(os.environ.get("LOCAL_RANK") or 0)


class _Unrecorded:
    """The store as a DDP process of rank > 0 sees it: paths and statuses are read, nothing is
    written (rank 0 records the run, its rounds and its checkpoints)."""

    def __init__(self, store: Recorder) -> None:
        self._store, self.path, self.checkpoint_root = store, store.path, store.checkpoint_root

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def mark_stale_runs(self) -> int:
        return 0

    def start_run(self, **fields: Any) -> None:
        pass

    def add_round(self, run_id: str, step: int, values: dict[str, float]) -> None:
        pass

    def finish_run(self, run_id: str, status: str, **fields: Any) -> None:
        pass


def _trainer_budget(config: RunConfig, steps_per_epoch: int) -> dict[str, Any]:
    budget = config.trainer
    interval = budget.val_every_steps
    if interval is not None and budget.max_steps is not None:
        interval = min(interval, budget.max_steps)
    options: dict[str, Any] = {
        "max_steps": budget.max_steps if budget.max_steps is not None else -1,
        "max_epochs": budget.max_epochs if budget.max_epochs is not None else -1,
    }
    if budget.max_time_s is not None:
        options["max_time"] = {"seconds": budget.max_time_s}
    if interval is not None:
        options.update(val_check_interval=interval, check_val_every_n_epoch=None)
    return options


def _loggers(wandb: bool, tensorboard: bool, prepared: PreparedRun, seed: int, group: str | None,
             folder: Path) -> list[Any]:
    """The run's loggers besides the store, writing beside it: TensorBoard event files under
    tensorboard/SWEEP/architecture/task/seed, and Weights & Biases (`_wandb_logger`)."""
    loggers = []
    if tensorboard:
        from pytorch_lightning.loggers import TensorBoardLogger

        if not any(importlib.util.find_spec(name) for name in ("tensorboard", "tensorboardX")):
            raise BenchmarkError("--tensorboard needs tensorboardX (or tensorboard): pip install "
                                 "'rnnbench[tensorboard]'")
        loggers.append(TensorBoardLogger(folder / "tensorboard", name=group or "runs",
                                         version=f"{prepared.architecture.name}/{prepared.task.name}/{seed}",
                                         default_hp_metric=False))
        loggers[-1].log_hyperparams({**prepared.config.flat(), "run_id": prepared.run_id, "seed": seed})
    if wandb:
        loggers.append(_wandb_logger(prepared, seed, group, folder))
    return loggers


def _wandb_logger(prepared: PreparedRun, seed: int, group: str | None, folder: Path):
    """A Weights & Biases logger writing beside the store (or under WANDB_DIR). The run is named
    architecture/task/seed and grouped by its sweep; it stays offline unless WANDB_MODE says
    otherwise or the user is logged in (an API key in WANDB_API_KEY or ~/.netrc)."""
    try:
        from pytorch_lightning.loggers import WandbLogger
        import wandb as wandb_package
    except ImportError:
        raise BenchmarkError("--wandb needs the wandb package: pip install 'rnnbench[wandb]'") from None
    logged_in = bool(os.environ.get("WANDB_API_KEY")) or _netrc_has("api.wandb.ai")
    mode = os.environ.get("WANDB_MODE") or ("online" if logged_in else "offline")
    logger = WandbLogger(project="rnnbench", name=f"{prepared.architecture.name}/{prepared.task.name}/{seed}",
                         id=prepared.run_id, group=group, mode=mode, resume="allow",
                         save_dir=os.environ.get("WANDB_DIR", str(folder)))
    logger.log_hyperparams({**prepared.config.flat(), "run_id": prepared.run_id, "seed": seed,
                            "wandb_version": wandb_package.__version__})
    return logger


def _netrc_has(host: str) -> bool:
    try:
        import netrc

        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _metrics(trainer: pl.Trainer, prefix: str) -> dict[str, float]:
    return {name: float(value) for name, value in trainer.callback_metrics.items()
            if name.startswith(prefix)}
