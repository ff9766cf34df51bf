"""Train one (architecture, task, configuration, seed) with PyTorch Lightning and record it.

`run(...)` resolves the configuration, derives the run id, builds the model, trains it within the
budget (early stopping on the primary validation metric), evaluates the best checkpoint on the
test split, and writes everything to the results store. A crash, a Ctrl-C or a diverged loss is
recorded with its status; nothing already measured is lost.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, TQDMProgressBar
from pytorch_lightning.strategies import DDPStrategy

from rnnbench.core.errors import DivergedError, RunInterrupted
from rnnbench.store import ResultStore
from rnnbench.training import conformance_verdicts, cpu_share
from rnnbench.training.baseline_scores import score_baselines
from rnnbench.training.callbacks import BestCheckpoint, RecordProgress
from rnnbench.training.config import RunConfig
from rnnbench.training.denormals import flush_denormals
from rnnbench.training.environment import NONDETERMINISTIC, PeakMemory, environment
from rnnbench.training.freed_memory import keep_freed_memory
from rnnbench.training.loggers import finish_loggers, run_loggers
from rnnbench.training.model import count_fixed_weights, count_parameters, initial_model
from rnnbench.training.module import TrainingModule
from rnnbench.training.prepare import PreparedRun, prepare
from rnnbench.training.readout import fit_closed_form_readout
from rnnbench.training.recorder import Recorder
from rnnbench.training.resume import ResumableBatches, SaveResumePoint, resume_checkpoint

# Lightning's info banners (GPU available..., tips) would drown the benchmark's own output.
for _name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)
# a resumed run finds its own checkpoints in its folder, which is what it wants
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


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

@dataclass
class RunSetting:
    """What `run` builds before training, and what `_record` writes with each way a run ends."""

    prepared: PreparedRun
    store: Recorder
    module: TrainingModule
    splits: Any
    parameters: int
    hidden_size: int
    fixed_parameters: int
    conformance: str
    checkpoint_dir: Path
    resume_from: Path | None
    follower: bool


@cpu_share.while_training
def run(architecture_name: str, task_name: str, overrides: dict[str, str] | None = None, *,
        preset: str | None = None, seed: int = 0, store: Recorder | str | os.PathLike = "runs/rnnbench.sqlite",
        progress: bool = True, wandb: bool = False, check: bool = True, keep_last: bool = False,
        group: str | None = None, tensorboard: bool = False) -> RunResult:
    """Train and evaluate one run, recording it in `store` (a results store, its path, or another
    `rnnbench.training.recorder.Recorder`: a Ray task's messages to its sweep's driver).

    A completed run keeps only its best checkpoint (`checkpoints/RUN_ID/best.ckpt` beside the
    store), unless `keep_last` keeps its resume point `last.ckpt` too. `group`: the sweep it
    belongs to (a W&B group). `wandb`, `tensorboard`: log there too (`run_loggers`).

    `check`: first require the architecture, with its resolved options, to pass the conformance
    kit (`rnnbench.training.conformance_verdicts.require`: computed once, kept in the store; a
    BenchmarkError with the kit's message, before anything is recorded, if it fails), as
    `rnnbench run` does unless `--no-check`. The run's environment records the verdict, or that
    the check was skipped.

    Bad input raises BenchmarkError before anything is recorded. Once the run is recorded as
    started, every way it can end is recorded: completed, diverged (`TrainingModule.diverged`),
    failed (with the error) or interrupted (Ctrl-C, SIGTERM, or found dead later); then the error
    is raised again (an interruption as `RunInterrupted`)."""
    began = time.perf_counter()
    process = {"denormals_flushed": flush_denormals(),   # before any torch op starts the threads
               "freed_memory_kept": keep_freed_memory()}
    prepared = prepare(architecture_name, task_name, overrides, preset, seed)
    setting = _set_up(prepared, (architecture_name, task_name), seed, store, check, preset)
    started = time.perf_counter()
    memory = PeakMemory()
    memory.start()
    config = prepared.config
    # a bar on a terminal; to a file or a pipe, one line per validation round (a bar writes every step)
    progress_bar = progress and sys.stdout.isatty()
    recorder = RecordProgress(setting.store, prepared.run_id, config.trainer.max_steps, config.trainer.max_epochs,
                              print_rounds=progress and not progress_bar,
                              monitor=f"val/{prepared.task.primary_metric}", direction=prepared.task.direction)
    threads, process["thread_policy"] = cpu_share.threads_for_run()   # once, before training: recorded
    torch.set_num_threads(threads)
    metrics: dict[str, float] = {}
    timings: dict[str, float] = {"setup_s": started - began}
    nondeterministic: set[str] = set()

    def record(status: str, error: str | None = None, **measured: Any) -> None:
        env = {**environment(), **process, "deterministic_algorithms": "warn",
               "deterministic": not nondeterministic, "nondeterministic_ops": sorted(nondeterministic),
               "peak_memory": memory.kind, "conformance": setting.conformance, "timings": timings,
               "resumed": setting.resume_from is not None, "convergence": recorder.convergence(),
               "clipping": setting.module.clipping_at_end,
               **({"fixed_parameters": setting.fixed_parameters} if setting.fixed_parameters else {})}
        setting.store.finish_run(prepared.run_id, status, error=error, metrics=metrics,
                                 parameters=setting.parameters, hidden_size=setting.hidden_size,
                                 wall_time_s=time.perf_counter() - started,
                                 peak_memory_mb=memory.peak_mb(), environment=env, **measured)

    loggers = run_loggers(wandb, tensorboard, prepared, seed, group, setting.store.checkpoint_root.parent)
    try:
        _train_recording_kernels(setting, recorder, metrics, timings, loggers, progress_bar, nondeterministic)
    except BaseException as error:
        _record_failure(error, record)
        raise
    throughput = float(setting.module.items_trained) / max(recorder.train_seconds, 1e-9)
    if setting.module.state_floats is not None:
        metrics["model/state_floats"] = setting.module.state_floats
    padding_share = setting.module.padding_share()
    if padding_share is not None:
        metrics["train/padding_share"] = padding_share
    record("completed", items_per_second=throughput)
    if not keep_last and not setting.follower:
        (setting.checkpoint_dir / "last.ckpt").unlink(missing_ok=True)
    return RunResult(prepared.run_id, "completed", metrics, setting.parameters, setting.hidden_size,
                     throughput, time.perf_counter() - started, setting.store.path, timings)


def _set_up(prepared: PreparedRun, names: tuple[str, str], seed: int, store: Recorder | str | os.PathLike, check: bool,
            preset: str | None) -> RunSetting:
    """Build the model (refusing what cannot fit), require conformance, load the data, and only
    then open the store (a refused run leaves no new store behind) and record the run as running;
    a DDP process of rank > 0 records nothing and resumes from rank 0's decision."""
    config, run_id = prepared.config, prepared.run_id
    follower = config.trainer.devices > 1 and _launched_rank() > 0
    opened = _existing_store(store)
    architecture, task = prepared.architecture(), prepared.task(config.task_options)
    model, hidden_size = initial_model(architecture, task, config, seed)  # refuses what cannot fit
    conformance = (conformance_verdicts.require(prepared.architecture, config.arch_options, opened).message
                   if check and not follower else conformance_verdicts.SKIPPED)
    splits = task.splits(config.trainer.batch_size, seed)
    store = opened or ResultStore(store)
    if follower:   # a DDP process Lightning started: it trains its share, rank 0 records
        store = UnrecordedStore(store)
    store.mark_stale_runs()
    module = TrainingModule(model, task, config, steps_per_epoch=len(splits.train))
    checkpoint_dir = store.checkpoint_root / run_id
    resume_from = resume_checkpoint(checkpoint_dir, store.status_of(run_id))
    if follower:   # rank 0 has recorded the run as running by now: its decision is the one
        resume_from = Path(os.environ[RESUME_ENV]) if os.environ.get(RESUME_ENV) else None
    task_info = {"primary_metric": task.primary_metric, "direction": task.direction,
                 "head": task.head_kind, "curve_setting": task.curve_setting,
                 "ranked_together": list(task.ranked_together), "item_unit": task.item_unit,
                 "references": [ref.__dict__ for ref in task.references()]}
    store.start_run(run_id=run_id, config_id=prepared.config_id, architecture=names[0],
                    task=names[1], architecture_version=architecture.version,
                    task_version=task.version, seed=seed, preset=preset, config=config.flat(),
                    task_info=task_info, keep_history=resume_from is not None)
    return RunSetting(prepared, store, module, splits, count_parameters(model), hidden_size,
                      count_fixed_weights(model), conformance, checkpoint_dir, resume_from, follower)


def _existing_store(store: Recorder | str | os.PathLike) -> Recorder | None:
    """The recorder, or the results store at a path that already holds one; None for a path
    with no store yet (created once nothing can refuse the run any more)."""
    if not isinstance(store, (str, os.PathLike)):
        return store
    return ResultStore(store) if Path(store).exists() else None


def _train_recording_kernels(setting: RunSetting, recorder: RecordProgress, metrics: dict[str, float],
                             timings: dict[str, float], loggers: list[Any], progress: bool,
                             nondeterministic: set[str]) -> None:
    """`_train_and_evaluate`, collecting the kernels that had no deterministic implementation
    (recorded) from torch's warnings and showing the other warnings; loggers end with the run."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            _train_and_evaluate(setting.module, setting.splits, setting.prepared.config,
                                setting.checkpoint_dir, setting.resume_from, recorder, metrics,
                                timings, loggers or False, setting.store, progress)
    finally:
        finish_loggers(loggers)
        for warning in caught:
            text = str(warning.message)
            if NONDETERMINISTIC in text:
                nondeterministic.add(text.split(NONDETERMINISTIC)[0].strip())
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                       warning.lineno)


def _record_failure(error: BaseException, record: Callable[..., None]) -> None:
    """Record how a started run ended other than completed; an interruption is raised again as
    `RunInterrupted` (Lightning turns a KeyboardInterrupt into SystemExit(1) once it has shut
    the loop down)."""
    interrupted = isinstance(error, (KeyboardInterrupt, SystemExit))
    status = "diverged" if isinstance(error, DivergedError) else "interrupted" if interrupted else "failed"
    record(status, error=(f"{type(error).__name__}: {error}" if not interrupted else
                          "stopped by Ctrl-C or SIGTERM; running it again resumes from its last checkpoint"))
    if interrupted:
        raise RunInterrupted() from None


def _train_and_evaluate(module: TrainingModule, splits: Any, config: RunConfig, checkpoint_dir: Path,
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
    if progress:   # tqdm's bar (a declared dependency), whether or not rich is installed
        callbacks.append(TQDMProgressBar())
    early = (EarlyStopping(monitor=monitor, mode=task.direction, patience=config.trainer.patience,
                           check_finite=False) if config.trainer.early_stopping else None)
    if early is not None:
        callbacks.append(early)
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
        recorder.training_ended("closed_form")
    else:
        trainer.fit(module, train_dataloaders=train_batches, val_dataloaders=splits.val,
                    ckpt_path=resume_from, weights_only=False)
        if trainer.interrupted:
            raise KeyboardInterrupt
        best_path = best.best_model_path or None
        recorder.training_ended("early_stopping" if early is not None and early.wait_count >= early.patience
                                else "budget")
    evaluation_started = time.perf_counter()
    timings["fit_s"] = evaluation_started - fit_started
    # the checkpoints are the runner's own (weights_only=False): they hold the carried state,
    # which may be any structure the state walker takes (a NamedTuple's class included)
    # the metrics of record are those of the checkpoint the test evaluates, validation included
    trainer.validate(module, dataloaders=splits.val, ckpt_path=best_path, verbose=False, weights_only=False)
    metrics.update(_metrics(trainer, "val/"))
    trainer.test(module, dataloaders=splits.test, ckpt_path=best_path, verbose=False, weights_only=False)
    metrics.update(_metrics(trainer, "test/"))
    for name, points in module.test_curves.items():
        store.set_curve(recorder.run_id, name, points)
    timings["evaluate_s"] = time.perf_counter() - evaluation_started
    baselines_started = time.perf_counter()
    metrics.update(score_baselines(module.task, module.model.head, splits))   # the same test set
    timings["baselines_s"] = time.perf_counter() - baselines_started
    if best.best_model_score is not None:
        metrics[f"best_{monitor}"] = float(best.best_model_score)
    uninformed = module.task.uninformed_loss()
    for split in ("val", "test"):
        loss = metrics.get(f"{split}/loss")
        if loss is not None and module.diverged(loss):
            raise DivergedError(f"the {split} loss of the best checkpoint is {loss:.4g} (first "
                                f"training loss {module.initial_loss}): the run diverged; lower "
                                f"optim.lr or set optim.clip_norm")
        if loss is not None and uninformed is not None and loss > UNINFORMED_SLACK * uninformed:
            raise DivergedError(f"the {split} loss of the best checkpoint is {loss:.4g}, above the "
                                f"{uninformed:.4g} of a model that learned nothing (a uniform guess): "
                                f"the run diverged; lower optim.lr or set optim.clip_norm")


# a best checkpoint more than 1% worse than a model that learned nothing diverged (an untrained
# model sits at the uninformed loss give or take its initial noise: that is "did not learn")
UNINFORMED_SLACK = 1.01
RESUME_ENV = "RNNBENCH_RESUME_FROM"   # rank 0's resume point, for the other DDP processes

def _launched_rank() -> int:
    """This process's rank when Lightning's DDP launcher started it (it re-runs the command with
    NODE_RANK and LOCAL_RANK set); 0 for the process the user started."""
    return int(os.environ.get("NODE_RANK") or 0) + int(os.environ.get("LOCAL_RANK") or 0)

class UnrecordedStore:
    """The store as a DDP process of rank > 0 sees it (a `Recorder`): paths, statuses and kept
    conformance verdicts are read, nothing is written (rank 0 records the run, its rounds and its
    checkpoints)."""

    def __init__(self, store: Recorder) -> None:
        self._store, self.path, self.checkpoint_root = store, store.path, store.checkpoint_root

    def mark_stale_runs(self) -> int:
        return 0

    def status_of(self, run_id: str) -> str | None:
        return self._store.status_of(run_id)

    def start_run(self, **fields: Any) -> None:
        pass

    def add_round(self, run_id: str, step: int, values: dict[str, float]) -> None:
        pass

    def set_curve(self, run_id: str, name: str, points: list[tuple[float, float]]) -> None:
        pass

    def finish_run(self, run_id: str, status: str, **fields: Any) -> None:
        pass

    def conformance_verdict(self, architecture: str, version: int, options_hash: str,
                            source_hash: str, kit_hash: str) -> tuple[bool, str, float] | None:
        return self._store.conformance_verdict(architecture, version, options_hash, source_hash, kit_hash)

    def record_conformance(self, architecture: str, version: int, options_hash: str,
                           source_hash: str, kit_hash: str, *, passed: bool, message: str,
                           checked_at: float) -> None:
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

def _strategy(devices: int) -> str | DDPStrategy:
    """One device: Lightning's default. Several: DDP, one process per device, started by
    re-running the command (Lightning's subprocess launcher; see `run` for what the other
    processes do), gradients all-reduced with gloo on CPUs and nccl on GPUs."""
    if devices == 1:
        return "auto"
    return DDPStrategy(process_group_backend="nccl" if torch.cuda.is_available() else "gloo")

def _metrics(trainer: pl.Trainer, prefix: str) -> dict[str, float]:
    return {name: float(value) for name, value in trainer.callback_metrics.items()
            if name.startswith(prefix)}
