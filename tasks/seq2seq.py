"""Sequence to sequence: SCAN (Lake & Baroni 2018) and the reversal of digit strings.

Both are encoder-decoder tasks (`Requirements.decoder`): the architecture under test reads the
source, any sequence architecture, bidirectional included; a causal, state-carrying one (the same
by default, or `task.decoder=NAME`) generates the target, conditioned through its inputs on the
encoder's final state, with optional attention (`rnnbench.toolkit.seq2seq_head.Seq2SeqHead`).

Metrics: exact match (`exact_match`, primary: every token of the output and its end right) and
token accuracy, both of the model decoded from its own predictions (greedy, or beam search with
`task.beam_width` > 1), and the same two teacher-forced (`teacher_forced_exact_match`,
`teacher_forced_token_accuracy`): their gap is the exposure bias. The loss is the teacher-forced
cross-entropy per target token (the end-of-sequence included).

SCAN: one task, `task.split` = simple (random 80/20), length (train on outputs of at most 22
actions, test on longer) or addprim_jump ("jump" seen only alone in training). Validation is a
seeded 10% (`task.val_fraction`) of the training file, held out from training; the test file is
read only for the final test. One task with a split option rather than three tasks: the
leaderboard never ranks runs of different splits together (they differ in a task setting).

reverse: digit strings of 1..`task.length` digits, target the digits in reverse order; training,
validation and test examples are generated from the seed in separate streams.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import torch
from torch import Tensor

from rnnbench import (DECODER, AtLeast, Baseline, Batch, BenchmarkError, IGNORE_INDEX, InputSpec,
                      Probability, Range, Reference, Requirements, SequenceBatch, Splits, Task, register_task)
from rnnbench.toolkit.datasets import require
from rnnbench.toolkit.seq2seq_head import DECODED, TEACHER_FORCED, Attention, Seq2SeqHead
from rnnbench.toolkit.text import Batching, BucketBatches, Vocabulary, read_once, spread

if TYPE_CHECKING:
    from torchmetrics import MetricCollection

PAD, BOS, EOS = 0, 1, 2          # target ids; source id 0 is padding too
TARGET_RESERVED = ("<pad>", "<s>", "</s>")
HOLDOUT_SEED = 20180712          # the validation slice of a training file is the same for every run


@dataclass
class Seq2SeqOptions:
    """decoder: the architecture that generates the target (None: the encoder's own); a different
        one runs with its default options.
    attention: none, or Luong et al.'s global attention (dot, general) on the decoder's outputs.
    teacher_forcing: probability of feeding the true previous token in training (1: always).
    sampling_decay: k of scheduled sampling's inverse-sigmoid decay of that probability over
        training steps, eps_i = k / (k + exp(i / k)) (Bengio et al. 2015); None: constant.
    beam_width: 1 decodes greedily, more runs beam search; length_alpha: its length
        normalisation, score / length^alpha (Wu et al. 2016).
    batching: bucketed (default: batches of sources of similar length) or random batches
        (`rnnbench.toolkit.text.Batching`)."""

    decoder: str | None = None
    attention: Attention = "none"
    teacher_forcing: Annotated[float, Probability] = 1.0
    sampling_decay: Annotated[float, AtLeast(1.0)] | None = None
    beam_width: Annotated[int, AtLeast(1)] = 1
    length_alpha: Annotated[float, AtLeast(0.0)] = 0.0
    batching: Batching = "bucketed"


# --------------------------------------------------------------------------- batches


@dataclass
class Pairs:
    """Padded examples: sources (N, S) ids (0 = padding), targets (N, T) ids without the end
    token, and their lengths."""

    sources: Tensor
    source_lengths: Tensor
    targets: Tensor
    target_lengths: Tensor

    def __len__(self) -> int:
        return self.sources.shape[0]

    def subset(self, index: Tensor) -> "Pairs":
        return Pairs(self.sources[index], self.source_lengths[index], self.targets[index],
                     self.target_lengths[index])

    def batch(self, index: Tensor) -> Batch:
        """A Batch: targets y_1..y_n, </s> (IGNORE_INDEX after), decoder inputs <s>, y_1..y_n."""
        source_lengths, target_lengths = self.source_lengths[index], self.target_lengths[index]
        sources = self.sources[index, :int(source_lengths.max())]
        steps = int(target_lengths.max()) + 1
        tokens = self.targets[index, :steps - 1]
        real = torch.arange(steps - 1).unsqueeze(0) < target_lengths.unsqueeze(1)
        targets = torch.full((len(index), steps), IGNORE_INDEX, dtype=torch.long)
        targets[:, :-1] = tokens.masked_fill(~real, IGNORE_INDEX)
        targets[torch.arange(len(index)), target_lengths] = EOS
        inputs = torch.full((len(index), steps), PAD, dtype=torch.long)
        inputs[:, 0] = BOS
        inputs[:, 1:] = tokens.masked_fill(~real, PAD)
        return Batch(SequenceBatch(sources, source_lengths), targets,
                     decoder_inputs=SequenceBatch(inputs, target_lengths + 1))

    def batches(self, batch_size: int, shuffle: bool, seed: int,
                batching: Batching = "bucketed") -> BucketBatches:
        return BucketBatches(self.source_lengths, batch_size, self.batch, shuffle=shuffle, seed=seed,
                             batching=batching)


def pad_ids(sequences: list[Tensor]) -> tuple[Tensor, Tensor]:
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    return torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True, padding_value=0), lengths


# --------------------------------------------------------------------------- the shared task


class _Seq2SeqTask(Task):
    item_unit = "tokens"
    requirements = Requirements(structure="sequence", decoder=DECODER)
    head_kind = "seq2seq"
    primary_metric = "exact_match"
    direction = "max"
    Options = Seq2SeqOptions
    ranked_together = ("task.decoder", "task.attention", "task.teacher_forcing", "task.sampling_decay",
                       "task.beam_width", "task.length_alpha", "task.batching")

    def target_vocab_size(self) -> int:
        raise NotImplementedError

    def max_output_length(self) -> int:
        """The most tokens decoding may produce, the end-of-sequence included."""
        raise NotImplementedError

    def baselines(self, splits: Splits) -> tuple[Baseline, ...]:
        """The training split's most frequent output sequence, whatever the input (an answer
        counts only when all of it is right, so this scores about 0)."""
        counts: Counter[tuple[int, ...]] = Counter()
        for batch in splits.train:
            for row in batch.targets:
                counts[tuple(int(token) for token in row[row != IGNORE_INDEX])] += 1
        answer = torch.tensor(counts.most_common(1)[0][0], dtype=torch.long)

        def predict(batch: Batch) -> Tensor:   # both rows of the head's packed (B, 2, L) predictions
            return answer.expand(batch.targets.shape[0], 2, len(answer))
        return (Baseline("most_frequent_output", predict),)

    def build_head(self, encoder_output_size, embedding, decoder=None):
        if decoder is None:
            raise BenchmarkError(f"task '{self.name}' needs a decoder: the runner builds it "
                                 f"(Requirements.decoder)")
        options = self.options
        return Seq2SeqHead(decoder, self.target_vocab_size(), bos=BOS, eos=EOS,
                           max_length=self.max_output_length(), attention=options.attention,
                           teacher_forcing=options.teacher_forcing,
                           sampling_decay=options.sampling_decay, beam_width=options.beam_width,
                           length_alpha=options.length_alpha)

    def metrics(self) -> MetricCollection:
        from torchmetrics import MetricCollection

        from rnnbench.toolkit.metrics import ExactMatch, SequenceTokenAccuracy

        return MetricCollection({
            "exact_match": ExactMatch(DECODED), "token_accuracy": SequenceTokenAccuracy(DECODED),
            "teacher_forced_exact_match": ExactMatch(TEACHER_FORCED),
            "teacher_forced_token_accuracy": SequenceTokenAccuracy(TEACHER_FORCED)})


# --------------------------------------------------------------------------- SCAN

ScanSplit = Literal["simple", "length", "addprim_jump"]


@read_once
def read_scan(path: Path) -> list[tuple[list[str], list[str]]]:
    """(command words, actions) per line `IN: ... OUT: ...`."""
    pairs = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            command, separator, actions = line.strip().removeprefix("IN:").partition(" OUT:")
            if not separator or not line.startswith("IN:"):
                raise BenchmarkError(f"{path}:{number}: expected 'IN: ... OUT: ...'; is this a "
                                     f"SCAN file?")
            pairs.append((command.split(), actions.split()))
    return pairs


def hold_out(size: int, fraction: float, seed: int = HOLDOUT_SEED) -> tuple[Tensor, Tensor]:
    """(train, validation) indices, in file order: a seeded `fraction` of `size` held out."""
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    held = max(1, round(size * fraction))
    return order[held:].sort().values, order[:held].sort().values


@dataclass
class ScanOptions(Seq2SeqOptions):
    """split: simple, length or addprim_jump; val_fraction: the share of the training file held
    out for validation; train_examples / eval_examples: evenly spaced slices of the training part
    and of each evaluation split (None: all), for quick runs; max_output_length: the most tokens
    decoding produces (the longest SCAN output is 48 actions and its end)."""

    split: ScanSplit = "simple"
    val_fraction: Annotated[float, Range(low=0, high=1, low_open=True, high_open=True)] = 0.1
    train_examples: Annotated[int, AtLeast(1)] | None = None
    eval_examples: Annotated[int, AtLeast(1)] | None = None
    max_output_length: Annotated[int, AtLeast(1)] = 50


_SCAN_PAPER = "Lake & Baroni 2018, 'Generalization without systematicity', ICML"
_SCAN_NOTE = ("teacher forcing 0.5, Adam 1e-3, clipping 5, 100k steps of batch 1, greedy decoding; "
              "mean of 5 runs")


@register_task("scan")
class Scan(_Seq2SeqTask):
    """SCAN commands to action sequences (Lake & Baroni 2018); exact-match accuracy, decoded."""

    Options = ScanOptions
    defaults = {"optim.optimizer": "adam", "optim.lr": 1e-3, "optim.clip_norm": 5.0,
                "arch.hidden_size": 200, "arch.embedding_size": 200, "task.teacher_forcing": 0.5,
                "trainer.batch_size": 32, "trainer.max_steps": 10_000,
                "trainer.val_every_steps": 1000, "trainer.patience": 5}
    # measured: lstm, quick, simple split: test exact match 0.28 in 7 s of training (2 cores)
    presets = {"quick": {"task.train_examples": 2000, "task.eval_examples": 200,
                         "task.teacher_forcing": 1.0, "task.attention": "general",
                         "arch.hidden_size": 32, "arch.embedding_size": 32, "optim.lr": 3e-3,
                         "trainer.max_steps": 400, "trainer.val_every_steps": 200}}

    def __init__(self, options: ScanOptions) -> None:
        super().__init__(options)
        self._pairs: dict[str, list[tuple[list[str], list[str]]]] | None = None
        self._source: Vocabulary | None = None
        self._target: Vocabulary | None = None

    def files(self) -> dict[str, str]:
        split = self.options.split
        return {"train": f"tasks_train_{split}.txt", "test": f"tasks_test_{split}.txt"}

    def examples(self) -> dict[str, list[tuple[list[str], list[str]]]]:
        """Each split's (command, actions) pairs: train and val from the training file (val held
        out, `hold_out`), test from the test file, each cut to its slice option."""
        if self._pairs is None:
            folder = require("scan")
            files = {split: read_scan(folder / name) for split, name in self.files().items()}
            train, val = hold_out(len(files["train"]), self.options.val_fraction)
            every = {"train": [files["train"][i] for i in train.tolist()],
                     "val": [files["train"][i] for i in val.tolist()], "test": files["test"]}
            limits = {"train": self.options.train_examples, "val": self.options.eval_examples,
                      "test": self.options.eval_examples}
            self._pairs = {split: spread(pairs, limits[split]) for split, pairs in every.items()}
        return self._pairs

    def _vocabularies(self) -> tuple[Vocabulary, Vocabulary]:
        if self._source is None or self._target is None:
            train = read_scan(require("scan") / self.files()["train"])
            words = sorted({word for command, _ in train for word in command})
            actions = sorted({action for _, output in train for action in output})
            self._source = Vocabulary(["<pad>", "<unk>", *words], unknown="<unk>")
            self._target = Vocabulary([*TARGET_RESERVED, *actions])
        return self._source, self._target

    def input_spec(self) -> InputSpec:
        source, target = self._vocabularies()
        return InputSpec(vocab_size=len(source), target_vocab_size=len(target))

    def target_vocab_size(self) -> int:
        return len(self._vocabularies()[1])

    def max_output_length(self) -> int:
        return self.options.max_output_length

    def pairs(self, split: str) -> Pairs:
        source, target = self._vocabularies()
        examples = self.examples()[split]
        sources, source_lengths = pad_ids([source.encode(command) for command, _ in examples])
        targets, target_lengths = pad_ids([target.encode(actions) for _, actions in examples])
        return Pairs(sources, source_lengths, targets, target_lengths)

    def splits(self, batch_size: int, seed: int) -> Splits:
        return Splits(train=self.pairs("train").batches(batch_size, True, seed, self.options.batching),
                      val=self.pairs("val").batches(batch_size, False, seed, self.options.batching),
                      test=self.pairs("test").batches(batch_size, False, seed, self.options.batching))

    def references(self) -> tuple[Reference, ...]:
        overall = "overall-best setting of the paper: 2-layer LSTM, 200 units, dropout 0.5, no attention"
        table = {"simple": (("seq2seq LSTM (overall-best setting)", 0.998, overall),),
                 "length": (("seq2seq LSTM (overall-best setting)", 0.138, overall),
                            ("seq2seq GRU with attention (best on this split)", 0.208,
                             "1-layer GRU, 50 units, attention, dropout 0.5")),
                 "addprim_jump": (("seq2seq LSTM (overall-best setting)", 0.0008, overall),
                                  ("seq2seq (best on this split)", 0.012, "the best setting on this split"))}
        return tuple(Reference(f"{model}, {self.options.split} split", value, _SCAN_PAPER,
                               f"{note}; {_SCAN_NOTE}")
                     for model, value, note in table[self.options.split])


# --------------------------------------------------------------------------- reversal

DIGITS = 10


@dataclass
class ReversalOptions(Seq2SeqOptions):
    """length: the most digits of a string (each has 1..length, uniformly); train_size /
    eval_size: examples generated for training and per evaluation split."""

    length: Annotated[int, AtLeast(1)] = 10
    train_size: Annotated[int, AtLeast(1)] = 10_000
    eval_size: Annotated[int, AtLeast(1)] = 500
    attention: Attention = "general"


def make_reversal(size: int, length: int, generator: torch.Generator) -> Pairs:
    """`size` strings of 1..length digits (source ids 1..10) and their reversals (target ids
    3..12: the digit plus the three reserved ids)."""
    lengths = torch.randint(1, length + 1, (size,), generator=generator)
    digits = torch.randint(0, DIGITS, (size, length), generator=generator)
    steps = torch.arange(length).unsqueeze(0)
    real = steps < lengths.unsqueeze(1)
    mirrored = (lengths.unsqueeze(1) - 1 - steps).clamp(min=0)
    reversed_digits = digits.gather(1, mirrored)
    sources = (digits + 1).masked_fill(~real, 0)
    targets = (reversed_digits + len(TARGET_RESERVED)).masked_fill(~real, PAD)
    return Pairs(sources, lengths, targets, lengths.clone())


@register_task("reverse")
class Reversal(_Seq2SeqTask):
    """Reverse a string of digits (cf. Zaremba & Sutskever 2014); exact-match accuracy, decoded."""

    Options = ReversalOptions
    defaults = {"optim.optimizer": "adam", "optim.lr": 3e-3, "optim.clip_norm": 1.0,
                "arch.hidden_size": 64, "arch.embedding_size": 32, "trainer.batch_size": 64,
                "trainer.max_steps": 3000, "trainer.val_every_steps": 500, "trainer.patience": 4}
    presets = {"quick": {"task.length": 5, "task.train_size": 2000, "task.eval_size": 200,
                         "arch.hidden_size": 32, "arch.embedding_size": 16,
                         "trainer.max_steps": 150, "trainer.val_every_steps": 75}}

    def input_spec(self) -> InputSpec:
        return InputSpec(vocab_size=DIGITS + 1, target_vocab_size=self.target_vocab_size())

    def target_vocab_size(self) -> int:
        return DIGITS + len(TARGET_RESERVED)

    def max_output_length(self) -> int:
        return self.options.length + 1

    def splits(self, batch_size: int, seed: int) -> Splits:
        def generated(size: int, stream: int) -> Pairs:
            generator = torch.Generator().manual_seed(seed * 3 + stream)
            return make_reversal(size, self.options.length, generator)

        options = self.options
        return Splits(train=generated(options.train_size, 0).batches(batch_size, True, seed, self.options.batching),
                      val=generated(options.eval_size, 1).batches(batch_size, False, seed, self.options.batching),
                      test=generated(options.eval_size, 2).batches(batch_size, False, seed, self.options.batching))

    def references(self) -> tuple[Reference, ...]:
        return (Reference("exact reversal", 1.0, "by construction",
                          "an attention model learns it almost exactly; without attention, long "
                          "strings are harder"),)
