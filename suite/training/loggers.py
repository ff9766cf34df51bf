"""A run's loggers besides the store: TensorBoard and Weights & Biases (offline unless logged in)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from rnnbench.core.errors import BenchmarkError
from rnnbench.training.prepare import PreparedRun

def run_loggers(wandb: bool, tensorboard: bool, prepared: PreparedRun, seed: int, group: str | None,
             folder: Path) -> list[Any]:
    """The run's loggers besides the store, writing beside it: TensorBoard event files under
    tensorboard/SWEEP/architecture/task/seed, and Weights & Biases (`wandb_logger`)."""
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
        loggers.append(wandb_logger(prepared, seed, group, folder))
    return loggers

def wandb_logger(prepared: PreparedRun, seed: int, group: str | None, folder: Path):
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


def finish_loggers(loggers: list[Any]) -> None:
    """End the run's W&B run with the run: a sweep's worker runs many runs in one process."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()
