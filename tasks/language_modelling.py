"""Language modelling on the Penn Treebank (Mikolov et al. 2010 split, 10k vocabulary), at the level
of words (`ptb`) and of characters (`ptb-char`), from the same three files.

Word level (`ptb`). Each line of the files is a sentence; an end-of-sentence token `<eos>` is
appended to every line and the lines are joined into one stream per split (train 929,589 tokens,
valid 73,760, test 82,430).

Character level (`ptb-char`): see `PennTreebankCharacters`.

Both: the training stream is cut into `batch_size` parallel rows, read `bptt` steps at a time
(truncated back-propagation through time); the hidden state is carried from one batch to the next
and detached (Zaremba, Sutskever & Vinyals 2014, "Recurrent Neural Network Regularization").
The validation and test streams are read the same way with `eval_batch_size` rows (1: every token
is predicted from its whole history), and scored over all their N predicted tokens:
perplexity = exp(-(1/N) sum_i log p(w_i | w_<i)) for words, bits per character
= -(1/N) sum_i log2 p(c_i | c_<i) for characters.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import torch
from torch import Tensor

from rnnbench import (AtLeast, Baseline, Batch, BenchmarkError, InputSpec, PerStepClassifier, Reference,
                      Requirements, SequenceBatch, Splits, Task, register_task)
from rnnbench.toolkit.baselines import label_counts, unigram, uniform
from rnnbench.toolkit.datasets import require
from rnnbench.toolkit.text import Vocabulary

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


class _PennTreebankStream(Task):
    """What the word- and character-level tasks share: Mikolov's three files read through the
    data layer (`require("ptb")`), one token stream per split cut into `StreamBatches`, the state
    carried across batches, a softmax over the vocabulary at every step, and text in and out for
    `rnnbench sample`. A subclass says how a split becomes a stream (`_stream`) and builds its
    `vocabulary`."""

    requirements = Requirements(structure="sequence", causal=True, carries_state=True)
    generates_text = True
    head_kind = "generation"
    direction = "min"

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
        raise NotImplementedError

    def _stream(self, split: str, limit: int | None) -> Tensor:
        """The split ("train", "val", "test") as one (N,) tensor of ids, its first `limit` only."""
        raise NotImplementedError

    def input_spec(self) -> InputSpec:
        return InputSpec(vocab_size=len(self.vocabulary))

    def splits(self, batch_size: int, seed: int) -> Splits:
        options = self.options
        train = self._stream("train", options.train_tokens)
        val = self._stream("val", options.eval_tokens)
        test = self._stream("test", options.eval_tokens)
        return Splits(train=StreamBatches(train, batch_size, options.bptt),
                      val=StreamBatches(val, options.eval_batch_size, options.bptt),
                      test=StreamBatches(test, options.eval_batch_size, options.bptt))

    def build_head(self, encoder_output_size, embedding, decoder=None):
        return PerStepClassifier(encoder_output_size, len(self.vocabulary),
                                 tied_embedding=embedding if self.options.tie_weights else None)

    def uninformed_loss(self) -> float:
        """ln V: the loss per token of a uniform guess (a perplexity of V)."""
        return math.log(len(self.vocabulary))

    def baselines(self, splits: Splits) -> tuple[Baseline, ...]:
        """The training split's unigram model (add-one smoothed) and the uniform model (the
        perplexity of a uniform guess is the vocabulary's size)."""
        size = len(self.vocabulary)
        return (unigram("unigram", label_counts(splits.train, size)), uniform("uniform", size))


@register_task("ptb")
class PennTreebank(_PennTreebankStream):
    """Word-level language modelling on the Penn Treebank; perplexity."""
    item_unit = "tokens"

    version = 1
    primary_metric = "perplexity"
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
    ranked_together = ("task.tie_weights",)

    @property
    def vocabulary(self) -> Vocabulary:
        """From the full training split (Mikolov's 10k words, `<unk>` and `<eos>` included)."""
        if self._vocabulary is None:
            self._vocabulary = Vocabulary.from_corpus(self._load()["train"], unknown=UNKNOWN)
        return self._vocabulary

    def _stream(self, split: str, limit: int | None) -> Tensor:
        return stream(self._load()[split], self.vocabulary, limit)

    def metrics(self) -> MetricCollection:
        from torchmetrics import MetricCollection

        from rnnbench.toolkit.metrics import Perplexity

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
        """Words as ids; a word outside the vocabulary is refused, naming it (the Penn Treebank
        is lower case with numbers as N, so 'The' would silently become <unk>); write `<unk>`
        for an unknown word on purpose."""
        words = text.split()
        unseen = [word for word in words if word not in self.vocabulary]
        if unseen:
            hints = [f"'{word.lower()}'" for word in unseen if word.lower() in self.vocabulary]
            raise BenchmarkError(f"{', '.join(repr(word) for word in unseen[:5])} not in the {self.name} "
                                 f"vocabulary of {len(self.vocabulary):,} words (lower case, numbers as N)"
                                 + (f"; did you mean {', '.join(hints[:5])}?" if hints else "")
                                 + f": write the prime as the corpus does, or {UNKNOWN} for an unknown word")
        return self.vocabulary.encode(words)

    def decode(self, ids: Tensor) -> str:
        """Words joined by spaces, one sentence per line."""
        words = self.vocabulary.decode(ids.tolist())
        return " ".join(words).replace(f" {END_OF_SENTENCE} ", "\n").replace(END_OF_SENTENCE, "\n")


# --------------------------------------------------------------------------- character level

SPACE = "_"
# Inside a character stream (a str, one character per symbol), the end of a line is "\n" and the
# single `<unk>` symbol (task.unknown=symbol) is "\x00"; the vocabulary names them as below.
_LINE_END, _UNKNOWN_SYMBOL = "\n", "\x00"
_SYMBOL_NAMES = {_LINE_END: END_OF_SENTENCE, _UNKNOWN_SYMBOL: UNKNOWN}


@dataclass
class CharacterModellingOptions(LanguageModellingOptions):
    """bptt, tie_weights, eval_batch_size: as for ptb (see `LanguageModellingOptions`); bptt
        defaults to 100 characters and eval_batch_size to 10 rows (10 fresh starts in 442,423
        test characters change the score negligibly and spare a step-by-step recurrence 442k
        sequential steps).
    train_tokens / eval_tokens: read only the first N characters (symbols) of the training / each
        evaluation stream (None: all), for quick runs and tests.
    unknown: how the word-level files' `<unk>` is read. "characters" (default): as the five
        characters `<`, `u`, `n`, `k`, `>`, as the standard character-level files (Mikolov's
        ptb.char.*.txt) have it and so the setting the published numbers were measured in; "symbol":
        as one symbol of its own, since it is a placeholder for a rare word rather than text.
        Spelled out, `u n k >` always follow `<` (which occurs nowhere else) and are nearly free,
        so the same model scores lower bpc: the test stream is 442,423 characters instead of
        423,247 (4,794 `<unk>`), up to about 4% of the score.
    """

    bptt: Annotated[int, AtLeast(1)] = 100
    eval_batch_size: Annotated[int, AtLeast(1)] = 10
    unknown: Literal["characters", "symbol"] = "characters"


def character_text(sentences: list[list[str]], unknown: Literal["characters", "symbol"]) -> str:
    """The split as one str with one character per symbol: each sentence's words joined by `_`
    (the files' spaces), then a newline (its end of line, `<eos>`); `<unk>` as its five characters
    or, with unknown="symbol", as the one character `_UNKNOWN_SYMBOL`."""
    lines = []
    for sentence in sentences:
        words = sentence[:-1] if sentence and sentence[-1] == END_OF_SENTENCE else sentence
        if unknown == "symbol":
            words = [_UNKNOWN_SYMBOL if word == UNKNOWN else word for word in words]
        lines.append(SPACE.join(words) + _LINE_END)
    return "".join(lines)


@register_task("ptb-char")
class PennTreebankCharacters(_PennTreebankStream):
    """Character-level language modelling on the Penn Treebank; bits per character.

    The standard character-level setup (Mikolov's ptb.char files), derived here from the same
    word-level files `ptb` reads: within a sentence, the space between two words becomes the
    symbol `_`; each sentence (line) ends with one end-of-line symbol, `<eos>` (a newline in the
    text); the sentences are joined into one stream per split. `<unk>`, the word-level files'
    stand-in for every rare word, is read as its five characters `< u n k >` by default, as the
    standard files have it, or as one symbol of its own with `task.unknown=symbol` (see
    `CharacterModellingOptions`: up to about 4% of the score, so never compare the two). Numbers are
    already `N` in the files. The alphabet is every symbol of the training split: 48 characters,
    `_` and `<eos>` (50; 49 with `<unk>` as one symbol: `<` and `>` occur only in it), none outside
    it in validation or test. Streams: train 5,017,482 symbols, valid 393,042, test 442,423
    (4,837,402 / 379,102 / 423,247 with `<unk>` as one symbol).

    Metric: bits per character, -(1/N) sum_i log2 p(c_i | c_<i) over every predicted symbol of
    the split (spaces and line ends included, as in the literature).

    Defaults: Adam at 2e-3 on windows of 100 characters, as the LSTM baseline of Cooijmans et al.
    2017 (one layer of 1000 units; Krueger et al. 2017 follow its setup; Merity et al. 2018 unroll
    150 with batches of 128), gradients clipped at norm 1 (the suite's default), batches of 64
    rows; a hidden size of 256 rather than 1000 keeps a 10-epoch run (784 steps an epoch) within
    reach of a CPU. Compare with the references at their size (`--set arch.hidden_size=1000`).
    """

    item_unit = "characters"
    version = 1
    primary_metric = "bpc"
    defaults = {"optim.optimizer": "adam", "optim.lr": 2e-3, "optim.schedule": "constant",
                "optim.clip_norm": 1.0, "optim.loss_reduction": "token_mean",
                "arch.hidden_size": 256, "trainer.batch_size": 64, "trainer.max_epochs": 10,
                "trainer.max_steps": None}
    presets = {
        "quick": {"task.train_tokens": 10_000, "task.eval_tokens": 2_000, "task.eval_batch_size": 4,
                  "task.bptt": 50, "arch.hidden_size": 32, "trainer.batch_size": 16,
                  "trainer.max_epochs": 2},
    }
    Options = CharacterModellingOptions

    def __init__(self, options: CharacterModellingOptions) -> None:
        super().__init__(options)
        if options.unknown not in ("characters", "symbol"):
            raise BenchmarkError(f"task.unknown must be 'characters' or 'symbol', got {options.unknown!r}")
        self._texts: dict[str, str] = {}
        self._ids: dict[str, int] | None = None

    def _text(self, split: str) -> str:
        if split not in self._texts:
            self._texts[split] = character_text(self._load()[split], self.options.unknown)
        return self._texts[split]

    @property
    def vocabulary(self) -> Vocabulary:
        """The symbols of the full training split, most frequent first (ties by name): `_` for a
        space, `<eos>` for a line end, `<unk>` (with task.unknown=symbol), and characters."""
        if self._vocabulary is None:
            counts = Counter(self._text("train"))
            if SPACE in "".join(word for sentence in self._load()["train"] for word in sentence):
                raise BenchmarkError(f"the ptb training file holds '{SPACE}', the symbol of a space: "
                                     f"not Mikolov's files (rnnbench data status ptb)")
            names = {_SYMBOL_NAMES.get(char, char): count for char, count in counts.items()}
            self._vocabulary = Vocabulary(sorted(names, key=lambda name: (-names[name], name)))
            self._ids = {char: self._vocabulary.index[_SYMBOL_NAMES.get(char, char)] for char in counts}
        return self._vocabulary

    def _symbol_ids(self) -> dict[str, int]:
        """Stream character -> id."""
        if self._ids is None:
            vocabulary = self.vocabulary   # builds both
            assert self._ids is not None and len(self._ids) == len(vocabulary)
        return self._ids

    def _stream(self, split: str, limit: int | None) -> Tensor:
        text = self._text(split)
        text = text[:limit] if limit is not None else text
        ids = self._symbol_ids()
        table = torch.full((128,), -1, dtype=torch.long)
        for char, index in ids.items():
            if ord(char) < 128:
                table[ord(char)] = index
        try:
            codes = torch.frombuffer(bytearray(text.encode("ascii")), dtype=torch.uint8).long()
        except UnicodeEncodeError as error:
            raise BenchmarkError(f"the ptb {split} file holds a non-ASCII character "
                                 f"({text[error.start]!r}): not Mikolov's files") from None
        encoded = table[codes]
        if (encoded < 0).any():
            unseen = text[int((encoded < 0).nonzero()[0, 0])]
            raise BenchmarkError(f"the ptb {split} file holds {unseen!r}, which the training split "
                                 f"never has: not Mikolov's files")
        return encoded

    def metrics(self) -> MetricCollection:
        from torchmetrics import MetricCollection

        from rnnbench.toolkit.metrics import BitsPerCharacter

        return MetricCollection({"bpc": BitsPerCharacter()})

    def references(self) -> tuple[Reference, ...]:
        setup = ("<unk> spelled out as in the standard files; comparable only at the same size, "
                 "regularisation and budget (theirs: many epochs, 1000 units or more)")
        if self.options.unknown == "symbol":
            setup = ("measured with <unk> spelled out as five characters: not comparable under "
                     "task.unknown=symbol, whose bpc is higher for the same model (about 4%)")
        return (
            Reference("LSTM, 1 layer of 1000 (test)", 1.38, "Cooijmans et al. 2017", setup),
            Reference("BN-LSTM, 1 layer of 1000 (test)", 1.32, "Cooijmans et al. 2017", setup),
            Reference("Zoneout LSTM (test)", 1.27, "Krueger et al. 2017", setup),
            Reference("AWD-LSTM, 3 layers, 13.8M params (test)", 1.175, "Merity et al. 2018", setup),
        )

    # ---- generation (`rnnbench sample`)

    def encode(self, text: str) -> Tensor:
        """Text as symbol ids: a space (or `_`) is `_`; a newline, or the literal `<eos>` (the
        default prime of `rnnbench sample`: a sentence start), is the end-of-line symbol; `<unk>`
        is its five characters, or its one symbol under task.unknown=symbol; any other character
        must be in the alphabet (lower case, numbers as N)."""
        symbol = self.options.unknown == "symbol"
        pattern = r"<eos>|<unk>|." if symbol else r"<eos>|."
        ids, found = self._symbol_ids(), []
        for piece in re.findall(pattern, text, flags=re.DOTALL):
            if piece in (END_OF_SENTENCE, "\n"):
                char = _LINE_END
            elif piece == UNKNOWN:
                char = _UNKNOWN_SYMBOL
            elif piece.isspace():
                char = SPACE
            else:
                char = piece
            if char not in ids:
                alphabet = "".join(sorted(c for c in ids if c not in _SYMBOL_NAMES))
                raise BenchmarkError(f"{piece!r} is not in the ptb-char alphabet ({alphabet}, "
                                     f"spaces, line ends{', <unk>' if symbol else ''}): the Penn "
                                     f"Treebank is lower case, with every number written N")
            found.append(ids[char])
        return torch.tensor(found, dtype=torch.long)

    def decode(self, ids: Tensor) -> str:
        """Symbols back as text: `_` as a space, `<eos>` as a newline (one sentence per line),
        the `<unk>` symbol as `<unk>`."""
        names = self.vocabulary.decode(ids.tolist())
        return "".join(" " if name == SPACE else "\n" if name == END_OF_SENTENCE else name
                       for name in names)
