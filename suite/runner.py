"""Train one (architecture, task, configuration, seed) with PyTorch Lightning and record it.

`run(...)` resolves the configuration, derives the run id, builds the model, trains it within the
budget (early stopping on the primary validation metric), evaluates the best checkpoint on the
test split, and writes everything to the results store. A crash, a Ctrl-C or a diverged loss is
recorded with its status; nothing already measured is lost.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torchmetrics
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint

from suite import registry
from suite.config import RunConfig, config_hash, resolve
from suite.contracts import Architecture, Batch, Task
from suite.errors import BenchmarkError, DivergedError
from suite.model import BenchmarkModel, build_model, count_parameters, hidden_size_for_budget
from suite.store import ResultStore

NAN_CHECK_EVERY = 25


def _detach(state: Any) -> Any:
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(_detach(part) for part in state)


class BenchmarkModule(pl.LightningModule):
    """Loss reduction, state carrying, metrics and the optimiser around a BenchmarkModel."""

    def __init__(self, model: BenchmarkModel, task: Task, config: RunConfig, steps_per_epoch: int) -> None:
        super().__init__()
        self.model, self.task, self.config = model, task, config
        self.steps_per_epoch = steps_per_epoch
        self.split_metrics = torch.nn.ModuleDict({split: task.metrics().clone(prefix=f"{split}/")
                                                  for split in ("val", "test")})
        self._carried: Any = None
        self._loss_sum = torch.zeros(())
        self._loss_count = torch.zeros(())
        self.items_trained = torch.zeros((), dtype=torch.long)

    # ---- shared

    def _reduce(self, loss_sum: torch.Tensor, count: torch.Tensor, batch: Batch) -> torch.Tensor:
        if self.config.optim.loss_reduction == "sequence_sum":
            return loss_sum / batch.batch_size
        return loss_sum / count.clamp(min=1)

    def _step(self, batch: Batch):
        state = self._carried if self.task.carries_state else None
        output, encoded = self.model(batch, state)
        if self.task.carries_state:
            self._carried = _detach(encoded.state)
        return output

    # ---- training

    def on_train_epoch_start(self) -> None:
        self._carried = None

    def training_step(self, batch: Batch, batch_index: int) -> torch.Tensor:
        output = self._step(batch)
        loss = self._reduce(output.loss_sum, output.count, batch)
        self.items_trained = self.items_trained.to(output.count.device) + output.count
        if self.global_step % NAN_CHECK_EVERY == 0 and not torch.isfinite(loss):
            raise DivergedError(f"training diverged at step {self.global_step} (loss is "
                                f"{loss.item()}): lower optim.lr or set optim.clip_norm")
        self.log("train/loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False,
                 batch_size=batch.batch_size)
        return loss

    # ---- evaluation

    def _evaluation_start(self) -> None:
        self._carried = None
        self._loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        self._loss_count = torch.zeros((), device=self.device, dtype=torch.float64)

    def _evaluation_step(self, batch: Batch, split: str) -> None:
        output = self._step(batch)
        self._loss_sum += output.loss_sum.detach().double()
        self._loss_count += output.count.double()
        self.model.head.update_metrics(self.split_metrics[split], output.predictions.detach(), batch)

    def _evaluation_end(self, split: str) -> None:
        values = {name: value.float() for name, value in self.split_metrics[split].compute().items()}
        values[f"{split}/loss"] = (self._loss_sum / self._loss_count.clamp(min=1)).float()
        self.split_metrics[split].reset()
        self.log_dict(values, prog_bar=split == "val")

    def on_validation_epoch_start(self) -> None:
        self._evaluation_start()

    def validation_step(self, batch: Batch, batch_index: int) -> None:
        self._evaluation_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._evaluation_end("val")
        self._carried = None

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
    """After every validation: write the round's metrics to the store's history, and time the
    training steps (validation excluded) for the throughput figure."""

    def __init__(self, store: ResultStore, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self.rounds = 0
        self.train_seconds = 0.0
        self._started = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_index) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index) -> None:
        self.train_seconds += time.perf_counter() - self._started

    def on_validation_end(self, trainer, module) -> None:
        if trainer.sanity_checking:
            return
        values = {name: float(value) for name, value in trainer.callback_metrics.items()
                  if name.startswith(("val/", "train/")) and math.isfinite(float(value))}
        self.store.add_history(self.run_id, self.rounds, trainer.global_step, values)
        self.rounds += 1


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


def run_identity(architecture: type[Architecture], task: type[Task], config: RunConfig,
                 seed: int) -> tuple[str, str]:
    """(run_id, config_id): hashes of everything that determines the result, with and without
    the seed."""
    payload = {"architecture": architecture.name, "architecture_version": architecture.version,
               "task": task.name, "task_version": task.version, "config": config.flat()}
    config_id = config_hash(payload)
    return config_hash({**payload, "seed": seed}), config_id


def environment() -> dict[str, Any]:
    """Versions, device and code revision, recorded with every run."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    return {"python": platform.python_version(), "torch": torch.__version__,
            "lightning": pl.__version__, "torchmetrics": torchmetrics.__version__,
            "accelerator": "gpu" if torch.cuda.is_available() else "cpu", "device": device,
            "threads": torch.get_num_threads(), "hostname": socket.gethostname(), "git_commit": commit}


def _peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(architecture_name: str, task_name: str, overrides: dict[str, str] | None = None,
            preset: str | None = None, seed: int = 0):
    """Look up, check compatibility and resolve: (architecture class, task class, config, run_id,
    config_id). Raises BenchmarkError for any bad input, before anything is written."""
    architecture = registry.get_architecture(architecture_name)
    task = registry.get_task(task_name)
    verdict = registry.pair_compatibility(architecture, task)
    if not verdict.ok:
        raise BenchmarkError(f"'{architecture_name}' cannot run '{task_name}': {verdict.reason}. "
                             f"See `rnnbench list --matrix` for the compatible pairs.")
    config = resolve(architecture, task, overrides, preset)
    run_id, config_id = run_identity(architecture, task, config, seed)
    return architecture, task, config, run_id, config_id


def run(architecture_name: str, task_name: str, overrides: dict[str, str] | None = None, *,
        preset: str | None = None, seed: int = 0, store: ResultStore | str | os.PathLike = "runs/rnnbench.sqlite",
        progress: bool = True, wandb: bool = False) -> RunResult:
    """Train and evaluate one run, recording it in `store`. Raises BenchmarkError (bad input,
    divergence) after recording what happened."""
    architecture_cls, task_cls, config, run_id, config_id = prepare(
        architecture_name, task_name, overrides, preset, seed)
    store = store if isinstance(store, ResultStore) else ResultStore(store)
    store.mark_stale_runs()
    architecture, task = architecture_cls(), task_cls(config.task_options)

    pl.seed_everything(seed, workers=True, verbose=False)
    torch.use_deterministic_algorithms(True, warn_only=True)
    hidden_size = (hidden_size_for_budget(architecture, task, config, config.model.params)
                   if config.model.params else config.model.hidden_size)
    model = build_model(architecture, task, config, hidden_size)
    if config.optim.init_scale is not None:
        for parameter in model.parameters():
            torch.nn.init.uniform_(parameter, -config.optim.init_scale, config.optim.init_scale)
    splits = task.splits(config.trainer.batch_size, seed)
    module = BenchmarkModule(model, task, config, steps_per_epoch=len(splits.train))
    parameters = count_parameters(model)

    task_info = {"primary_metric": task.primary_metric, "direction": task.direction,
                 "head": task.head_kind,
                 "references": [ref.__dict__ for ref in task.references()]}
    store.start_run(run_id=run_id, config_id=config_id, architecture=architecture_name,
                    task=task_name, architecture_version=architecture.version,
                    task_version=task.version, seed=seed, preset=preset, config=config.flat(),
                    task_info=task_info)

    checkpoint_dir = store.path.parent / "checkpoints" / run_id
    monitor = f"val/{task.primary_metric}"
    checkpoint = ModelCheckpoint(dirpath=checkpoint_dir, monitor=monitor, mode=task.direction,
                                 save_top_k=1, save_last=True, filename="best")
    recorder = RecordProgress(store, run_id)
    callbacks: list[Callback] = [checkpoint, recorder]
    if config.trainer.early_stopping:
        callbacks.append(EarlyStopping(monitor=monitor, mode=task.direction,
                                       patience=config.trainer.patience, check_finite=False))
    trainer = pl.Trainer(**_trainer_budget(config, len(splits.train)),
                         accelerator="auto", devices=1, precision=config.trainer.precision,
                         gradient_clip_val=config.optim.clip_norm, gradient_clip_algorithm="norm",
                         callbacks=callbacks, logger=_logger(wandb, run_id, config),
                         enable_progress_bar=progress, enable_model_summary=False,
                         num_sanity_val_steps=0, deterministic=False,
                         default_root_dir=str(checkpoint_dir))

    started = time.perf_counter()
    try:
        trainer.fit(module, train_dataloaders=splits.train, val_dataloaders=splits.val)
        if trainer.interrupted:
            raise KeyboardInterrupt
        best = checkpoint.best_model_path or None
        trainer.test(module, dataloaders=splits.test, ckpt_path=best, verbose=False)
    except BaseException as error:
        status = {DivergedError: "diverged", KeyboardInterrupt: "interrupted"}.get(type(error), "failed")
        store.finish_run(run_id, status, error=f"{type(error).__name__}: {error}",
                         metrics=_metrics(trainer), parameters=parameters, hidden_size=hidden_size,
                         wall_time_s=time.perf_counter() - started, environment=environment())
        raise
    wall_time = time.perf_counter() - started
    metrics = _metrics(trainer, checkpoint)
    throughput = float(module.items_trained) / max(recorder.train_seconds, 1e-9)
    store.finish_run(run_id, "completed", metrics=metrics, parameters=parameters,
                     hidden_size=hidden_size, items_per_second=throughput, wall_time_s=wall_time,
                     peak_memory_mb=_peak_memory_mb(), environment=environment())
    return RunResult(run_id, "completed", metrics, parameters, hidden_size, throughput, wall_time,
                     store.path)


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


def _logger(wandb: bool, run_id: str, config: RunConfig):
    if not wandb:
        return False
    try:
        from pytorch_lightning.loggers import WandbLogger
        import wandb as _  # noqa: F401
    except ImportError:
        raise BenchmarkError("--wandb needs the wandb package: pip install 'rnnbench[wandb]'") from None
    logger = WandbLogger(project="rnnbench", name=run_id, mode=os.environ.get("WANDB_MODE", "offline"))
    logger.log_hyperparams(config.flat())
    return logger


def _metrics(trainer: pl.Trainer, checkpoint: ModelCheckpoint | None = None) -> dict[str, float]:
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()
               if name.startswith(("val/", "test/"))}
    if checkpoint is not None and checkpoint.best_model_score is not None:
        metrics[f"best_{checkpoint.monitor}"] = float(checkpoint.best_model_score)
    return metrics
