"""Text from a trained language model.

Sampling draws w_t ~ softmax(z_t / temperature), where z_t are the model's logits after reading
the prime and the words drawn so far; the encoder's state is carried from one step to the next, so
each step reads one word. The model comes from `rnnbench.training.trained.load_trained` (a stored run at its
best checkpoint); the task turns text into ids and back (`encode`, `decode`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnbench.core.constraints import Between, Positive, check
from rnnbench.core.contracts import Batch, SequenceBatch
from rnnbench.core.errors import BenchmarkError
from rnnbench.training.model import BenchmarkModel
from rnnbench.training.trained import TrainedModel


MAX_WORDS = 10_000   # one model step per word, one at a time: more would look like a hang


def check_sampling(length: int, temperature: float) -> None:
    """BenchmarkError unless 1 <= length <= MAX_WORDS and temperature is positive and finite."""
    check("--length", length, Between(1, MAX_WORDS),
          hint=f": sampling draws at most {MAX_WORDS:,} words, one model step each; e.g. --length 50")
    check("--temperature", temperature, Positive, hint=": e.g. --temperature 1.0 (lower is more "
                                                       "conservative)")


@torch.no_grad()
def sample(model: BenchmarkModel, prime: Tensor, length: int, temperature: float = 1.0,
           generator: torch.Generator | None = None) -> Tensor:
    """`length` token ids drawn after reading the (P,) ids of `prime` (P >= 1); at most
    MAX_WORDS, one step of the model each."""
    check_sampling(length, temperature)
    if prime.numel() == 0:
        raise BenchmarkError("sampling needs at least one prime word")
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


def sample_text(trained: TrainedModel, prime: str, length: int, temperature: float = 1.0,
                seed: int = 0) -> str:
    """The prime followed by `length` sampled words, as the task writes text."""
    task = trained.task
    if not task.generates_text:
        raise BenchmarkError(f"task '{task.name}' is not a language model (it cannot encode and "
                             f"decode text): sample from a run of a generation task such as ptb")
    ids = task.encode(prime)
    drawn = sample(trained.model, ids, length, temperature, torch.Generator().manual_seed(seed))
    return task.decode(torch.cat([ids, drawn]))
