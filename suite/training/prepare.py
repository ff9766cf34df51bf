"""A run looked up, checked and resolved before anything is built or recorded, and its identity."""

from __future__ import annotations

import dataclasses
import multiprocessing
from dataclasses import dataclass

import torch

from rnnbench.core import registry
from rnnbench.core.constraints import check_seed
from rnnbench.core.contracts import Architecture, Task, compatibility
from rnnbench.core.errors import BenchmarkError
from rnnbench.training.config import RunConfig, config_hash, identity_settings, resolve
from rnnbench.training.model import check_initialisation, decoder_architecture

def run_identity(architecture: type[Architecture], task: type[Task], config: RunConfig,
                 seed: int) -> tuple[str, str]:
    """(run_id, config_id): hashes of everything that determines the result, with and without
    the seed."""
    payload = {"architecture": architecture.name, "architecture_version": architecture.version,
               "task": task.name, "task_version": task.version, "config": identity_settings(config)}
    config_id = config_hash(payload)
    return config_hash({**payload, "seed": seed}), config_id

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
