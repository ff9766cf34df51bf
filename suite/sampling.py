"""Text from a trained language model: rebuild a stored run's model from its checkpoint and sample.

Sampling draws w_t ~ softmax(z_t / temperature), where z_t are the model's logits after reading
the prime and the words drawn so far; the encoder's state is carried from one step to the next, so
each step reads one word.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from suite.contracts import Batch, SequenceBatch
from suite.errors import BenchmarkError
from suite.model import BenchmarkModel, build_model, hidden_size_for_budget
from suite.runner import prepare
from suite.store import ResultStore


@dataclass
class LoadedRun:
    run_id: str
    task: Any
    model: BenchmarkModel
    checkpoint: Path


def checkpoint_of(store: ResultStore, run_id: str, which: str = "best") -> Path:
    folder = store.path.parent / "checkpoints" / run_id
    for name in (f"{which}.ckpt", "last.ckpt"):
        if (folder / name).is_file():
            return folder / name
    raise BenchmarkError(f"run {run_id} has no checkpoint in {folder}: train it first with "
                         f"`rnnbench run` (checkpoints are kept beside the store)")


def load_run(store: ResultStore, run_id: str) -> LoadedRun:
    """The run's task and model with the weights of its best (else last) checkpoint."""
    record = store.get(run_id)
    if record is None:
        raise BenchmarkError(f"no run '{run_id}' in {store.path}: see `rnnbench leaderboard` or "
                             f"pass the --store that holds it")
    architecture_cls, task_cls, config, *_ = prepare(record.architecture, record.task, record.config,
                                                    seed=record.seed)
    architecture, task = architecture_cls(), task_cls(config.task_options)
    if not (hasattr(task, "encode") and hasattr(task, "decode")):
        raise BenchmarkError(f"task '{record.task}' is not a language model (it cannot encode and "
                             f"decode text): sample from a run of a generation task such as ptb")
    hidden_size = (hidden_size_for_budget(architecture, task, config, config.model.params)
                   if config.model.params else config.model.hidden_size)
    model = build_model(architecture, task, config, hidden_size)
    path = checkpoint_of(store, run_id)
    # our own checkpoint, written by the runner: it holds Lightning's loop state besides tensors
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    model.load_state_dict({key.removeprefix("model."): value for key, value in state.items()
                           if key.startswith("model.")})
    model.eval()
    return LoadedRun(run_id, task, model, path)


@torch.no_grad()
def sample(model: BenchmarkModel, prime: Tensor, length: int, temperature: float = 1.0,
           generator: torch.Generator | None = None) -> Tensor:
    """`length` token ids drawn after reading the (P,) ids of `prime` (P >= 1)."""
    if temperature <= 0:
        raise BenchmarkError(f"--temperature must be positive, got {temperature}")
    if prime.numel() == 0:
        raise BenchmarkError("sampling needs at least one prime token")
    inputs, state, drawn = prime.view(1, -1), None, []
    for _ in range(length):
        lengths = torch.tensor([inputs.shape[1]])
        batch = Batch(SequenceBatch(inputs, lengths), torch.zeros_like(inputs))
        encoded = model.encoder(model.embed(batch.inputs), state)
        state = encoded.state
        logits = model.head(encoded, batch).predictions[0, -1]
        next_id = torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator)
        drawn.append(next_id)
        inputs = next_id.view(1, 1)
    return torch.cat(drawn) if drawn else torch.zeros(0, dtype=torch.long)
