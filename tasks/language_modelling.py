"""Word-level language modelling on the Penn Treebank (Mikolov et al. 2010 split, 10k vocabulary).

Each line of the files is a sentence; an end-of-sentence token `<eos>` is appended to every line and
the lines are joined into one stream per split (train 929,589 tokens, valid 73,760, test 82,430).
The training stream is cut into `batch_size` parallel rows, read `bptt` steps at a time
(truncated back-propagation through time); the hidden state is carried from one batch to the next
and detached (Zaremba, Sutskever & Vinyals 2014, "Recurrent Neural Network Regularization").

Perplexity = exp(-(1/N) sum_i log p(w_i | w_<i)) over all N predicted tokens of the validation or
test stream, which is read with `eval_batch_size` rows (1: every token is predicted from its whole
history).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated
from pathlib import Path

import torch
from torch import Tensor

from rnnbench import (AtLeast, Batch, BenchmarkError, InputSpec, PerStepClassifier, Reference,
                      Requirements, SequenceBatch, Splits, Task, register_task)
from rnnbench.data import require
from rnnbench.text import Vocabulary

if TYPE_CHECKING:
    from torchmetrics import MetricCollection

END_OF_SENTENCE = "<eos>"
UNKNOWN = "<unk>"
PTB_FILES = {"train": "ptb.train.txt", "val": "ptb.valid.txt", "test": "ptb.test.txt"}


@dataclass
class LanguageModellingOptions:
    """bptt: steps unrolled per batch (truncated BPTT).
    tie_weights: the output layer shares the input embedding's weights (Press & Wolf 2017;
        Inan et al. 2017); needs arch.embedding_size equal to the encoder's output size.
    eval_batch_size: parallel rows the validation and test streams are cut into.
    train_tokens / eval_tokens: read only the first N tokens of the training / each evaluation
        stream (None: all), for quick runs and tests.
    """

    bptt: Annotated[int, AtLeast(1)] = 20
    tie_weights: bool = False
    eval_batch_size: Annotated[int, AtLeast(1)] = 1
    train_tokens: Annotated[int, AtLeast(2)] | None = None
    eval_tokens: Annotated[int, AtLeast(2)] | None = None


def read_sentences(path: Path) -> list[list[str]]:
    """One sentence per line, split on whitespace, with `<eos>` appended."""
    with open(path, encoding="utf-8") as lines:
        return [line.split() + [END_OF_SENTENCE] for line in lines]


def stream(sentences: list[list[str]], vocabulary: Vocabulary, limit: int | None = None) -> Tensor:
    """The split as one (N,) tensor of token ids."""
    tokens = [token for sentence in sentences for token in sentence]
    return vocabulary.encode(tokens[:limit] if limit is not None else tokens)


class StreamBatches:
    """Consecutive (rows, <= bptt) windows of a token stream cut into `rows` parallel rows.

    Row r holds tokens [r*L, (r+1)*L) with L = N // rows (the last N mod rows tokens are
    dropped); batch k holds steps [k*bptt, (k+1)*bptt) of every row and, as targets, the tokens
    one step later, so consecutive batches continue each row where the previous one stopped. The
    last window may be shorter than bptt.
    """

    def __init__(self, tokens: Tensor, rows: int, bptt: int) -> None:
        length = tokens.numel() // rows
        if length < 2:
            raise BenchmarkError(f"a stream of {tokens.numel()} tokens is too short for {rows} rows: "
                                 f"use a smaller batch size or more tokens")
        self.data = tokens[:rows * length].view(rows, length)
        self.bptt = bptt

    def __len__(self) -> int:
        return -(-(self.data.shape[1] - 1) // self.bptt)

    def __iter__(self) -> Iterator[Batch]:
        rows, length = self.data.shape
        for start in range(0, length - 1, self.bptt):
            steps = min(self.bptt, length - 1 - start)
            inputs = self.data[:, start:start + steps]
            targets = self.data[:, start + 1:start + 1 + steps]
            lengths = torch.full((rows,), steps, dtype=torch.long)
            yield Batch(SequenceBatch(inputs, lengths), targets)


_ZAREMBA_SMALL = {
    "arch.num_layers": 2, "arch.hidden_size": 200, "arch.embedding_size": None,
    "task.bptt": 20, "task.tie_weights": False, "trainer.batch_size": 20,
    "optim.optimizer": "sgd", "optim.lr": 1.0, "optim.momentum": 0.0, "optim.weight_decay": 0.0,
    "optim.schedule": "decay", "optim.decay_start": 5, "optim.decay_factor": 0.5,
    "optim.clip_norm": 5.0, "optim.init_scale": 0.1, "optim.loss_reduction": "sequence_sum",
    "trainer.max_epochs": 13, "trainer.max_steps": None, "trainer.max_time_s": None,
    "trainer.val_every_steps": None, "trainer.early_stopping": False,
}


@register_task("ptb")
class PennTreebank(Task):
    """Word-level language modelling on the Penn Treebank; perplexity."""
    item_unit = "tokens"

    version = 1
    requirements = Requirements(structure="sequence", causal=True, carries_state=True)
    generates_text = True
    head_kind = "generation"
    primary_metric = "perplexity"
    direction = "min"
    defaults = {"optim.optimizer": "sgd", "optim.lr": 1.0, "optim.schedule": "decay",
                "optim.decay_start": 5, "optim.decay_factor": 0.5, "optim.clip_norm": 5.0,
                "optim.init_scale": 0.1, "optim.loss_reduction": "sequence_sum",
                "arch.hidden_size": 200, "trainer.batch_size": 20, "trainer.max_epochs": 13,
                "trainer.max_steps": None, "trainer.early_stopping": False}
    presets = {
        # Zaremba et al. 2014's SmallConfig as TensorFlow's PTB tutorial runs it.
        "zaremba-small": _ZAREMBA_SMALL,
        "quick": {"task.train_tokens": 40_000, "task.eval_tokens": 8_000, "task.eval_batch_size": 4,
                  "arch.hidden_size": 64, "trainer.max_epochs": 2},
    }
    Options = LanguageModellingOptions

    def __init__(self, options: LanguageModellingOptions) -> None:
        super().__init__(options)
        for name in ("bptt", "eval_batch_size"):
            if getattr(options, name) < 1:
                raise BenchmarkError(f"task.{name} must be at least 1, got {getattr(options, name)}")
        self._sentences: dict[str, list[list[str]]] | None = None
        self._vocabulary: Vocabulary | None = None

    def _load(self) -> dict[str, list[list[str]]]:
        if self._sentences is None:
            folder = require("ptb")
            self._sentences = {split: read_sentences(folder / name) for split, name in PTB_FILES.items()}
        return self._sentences

    @property
    def vocabulary(self) -> Vocabulary:
        """From the full training split (Mikolov's 10k words, `<unk>` and `<eos>` included)."""
        if self._vocabulary is None:
            self._vocabulary = Vocabulary.from_corpus(self._load()["train"], unknown=UNKNOWN)
        return self._vocabulary

    def input_spec(self) -> InputSpec:
        return InputSpec(vocab_size=len(self.vocabulary))

    def splits(self, batch_size: int, seed: int) -> Splits:
        sentences, options = self._load(), self.options
        train = stream(sentences["train"], self.vocabulary, options.train_tokens)
        val = stream(sentences["val"], self.vocabulary, options.eval_tokens)
        test = stream(sentences["test"], self.vocabulary, options.eval_tokens)
        return Splits(train=StreamBatches(train, batch_size, options.bptt),
                      val=StreamBatches(val, options.eval_batch_size, options.bptt),
                      test=StreamBatches(test, options.eval_batch_size, options.bptt))

    def build_head(self, encoder_output_size, embedding):
        return PerStepClassifier(encoder_output_size, len(self.vocabulary),
                                 tied_embedding=embedding if self.options.tie_weights else None)

    def metrics(self) -> MetricCollection:
        from torchmetrics import MetricCollection

        from rnnbench.metrics import Perplexity

        return MetricCollection({"perplexity": Perplexity()})

    def references(self) -> tuple[Reference, ...]:
        sizes = "comparable only at the same size, dropout and budget"
        return (
            Reference("KN-5 n-gram (test)", 141.2, "Mikolov & Zweig 2012"),
            Reference("RNN LM (test)", 124.7, "Mikolov & Zweig 2012"),
            Reference("LSTM small 2x200, no dropout (test)", 114.5, "Zaremba et al. 2014",
                      "preset zaremba-small; valid 120.7; TensorFlow's port reports 115.91 test"),
            Reference("LSTM medium 2x650, dropout 0.5 (test)", 82.7, "Zaremba et al. 2014", sizes),
            Reference("LSTM large 2x1500, dropout 0.65 (test)", 78.4, "Zaremba et al. 2014", sizes),
            Reference("AWD-LSTM 24M (test)", 57.3, "Merity et al. 2017", sizes),
        )

    # ---- generation (`rnnbench sample`)

    def encode(self, text: str) -> Tensor:
        return self.vocabulary.encode(text.split())

    def decode(self, ids: Tensor) -> str:
        """Words joined by spaces, one sentence per line."""
        words = self.vocabulary.decode(ids.tolist())
        return " ".join(words).replace(f" {END_OF_SENTENCE} ", "\n").replace(END_OF_SENTENCE, "\n")
