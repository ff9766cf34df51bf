"""A completed run's model, rebuilt from its recorded settings at its best checkpoint."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rnnbench.core.contracts import Task
from rnnbench.core.errors import BenchmarkError
from rnnbench.store import ResultStore
from rnnbench.training.config import RunConfig
from rnnbench.training.model import BenchmarkModel, initial_model
from rnnbench.training.prepare import prepare

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
