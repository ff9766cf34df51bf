"""The runner's training throughput beside a bare PyTorch loop on the same model, data and batch.

Both sides train the same `BenchmarkModel` (built by the suite) on the same batches with the same
optimiser and clipping; the runner side is `rnnbench.runner.run` exactly as the CLI calls it, and its
figure is the items/s it records in the store (wall time between training batches, validation
excluded). A ratio of 1.0 means the runner costs nothing.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from typing import Any

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from rnnbench import registry
from rnnbench.config import resolve
from rnnbench.contracts import Batch, InputSpec, Requirements, SequenceBatch, Splits, Task
from rnnbench.heads import PerStepClassifier
from rnnbench.model import build_model
from rnnbench.runner import detach_state, run

LM_VOCAB, LM_BATCH, LM_STEPS = 10_000, 20, 20


class TokenStream:
    """Contiguous language-model batches over a random token stream: batch row b reads its own
    slice of the stream, step after step, so the carried state is meaningful."""

    def __init__(self, batches: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        tokens = torch.randint(0, LM_VOCAB, (LM_BATCH, batches * LM_STEPS + 1), generator=generator)
        self.inputs, self.targets = tokens[:, :-1], tokens[:, 1:]
        self.batches = batches

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        lengths = torch.full((LM_BATCH,), LM_STEPS)
        for index in range(self.batches):
            window = slice(index * LM_STEPS, (index + 1) * LM_STEPS)
            yield Batch(SequenceBatch(self.inputs[:, window], lengths), self.targets[:, window])


@registry.register_task("bench-lm")
class SyntheticLanguageModel(Task):
    """Next-token prediction on random tokens (10k vocabulary): a stand-in with PTB's shapes."""

    requirements = Requirements(structure="sequence", causal=True, carries_state=True)
    head_kind = "generation"
    primary_metric = "accuracy"
    direction = "max"

    @dataclass
    class Options:
        batches: int = 200

    def input_spec(self) -> InputSpec:
        return InputSpec(vocab_size=LM_VOCAB)

    def splits(self, batch_size: int, seed: int) -> Splits:
        return Splits(train=TokenStream(self.options.batches, seed), val=TokenStream(2, seed + 1),
                      test=TokenStream(2, seed + 2))

    def build_head(self, encoder_output_size, embedding):
        return PerStepClassifier(encoder_output_size, LM_VOCAB)

    def metrics(self) -> MetricCollection:
        return MetricCollection({"accuracy": MulticlassAccuracy(LM_VOCAB, average="micro")})


def bare_loop_throughput(architecture: str, task: str, settings: dict[str, Any], seed: int = 0) -> float:
    """Items/s of a plain PyTorch training loop over the same model and batches as the runner."""
    arch_cls, task_cls = registry.get_architecture(architecture), registry.get_task(task)
    config = resolve(arch_cls, task_cls, settings)
    task_obj = task_cls(config.task_options)
    torch.manual_seed(seed)
    model = build_model(arch_cls(), task_obj, config, config.model.hidden_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.optim.lr)
    train = task_obj.splits(config.trainer.batch_size, seed).train
    steps, items, state = config.trainer.max_steps, 0, None
    started = time.perf_counter()
    for step, batch in enumerate(train):
        if step == steps:
            break
        output, encoded = model(batch, state)
        if task_obj.requirements.carries_state:
            state = detach_state(encoded.state)
        loss = output.loss_sum / output.count
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.clip_norm)
        optimizer.step()
        items += int(output.count)
    return items / (time.perf_counter() - started)


def runner_throughput(architecture: str, task: str, settings: dict[str, Any], seed: int = 0) -> float:
    with tempfile.TemporaryDirectory() as folder:
        return run(architecture, task, settings, seed=seed, store=f"{folder}/bench.sqlite",
                   progress=False).items_per_second


CASES = {
    "2x200 LSTM LM (vocab 10k, batch 20, 20 steps)": (
        "lstm", "bench-lm", {"arch.hidden_size": 200, "arch.num_layers": 2, "optim.optimizer": "sgd",
                             "optim.lr": 1.0, "optim.clip_norm": 5.0, "trainer.batch_size": LM_BATCH,
                             "trainer.max_steps": 150, "trainer.val_every_steps": 150,
                             "trainer.early_stopping": False, "task.batches": 150}),
    "smallest probe: 16-unit RNN, adding T=20, batch 32": (
        "rnn", "adding", {"arch.hidden_size": 16, "task.length": 20, "task.train_size": 9_600,
                          "task.eval_size": 64, "optim.optimizer": "sgd", "optim.lr": 0.01,
                          "optim.clip_norm": 1.0, "trainer.batch_size": 32, "trainer.max_steps": 300,
                          "trainer.val_every_steps": 300, "trainer.early_stopping": False}),
}


def main() -> None:
    print("Runner overhead: training items/s, runner vs a bare PyTorch loop (same model, data, batch)")
    print(f"{'case':<54}{'bare loop':>12}{'runner':>12}{'ratio':>8}")
    for name, (architecture, task, settings) in CASES.items():
        bare_loop_throughput(architecture, task, {**settings, "trainer.max_steps": 10})  # warm-up
        bare = bare_loop_throughput(architecture, task, settings)
        runner = runner_throughput(architecture, task, settings)
        print(f"{name:<54}{bare:>12,.0f}{runner:>12,.0f}{runner / bare:>8.2f}")
