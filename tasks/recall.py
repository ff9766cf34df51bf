"""Associative recall, copying, compression and memorization, generated from the seed: Zoology's
multi-query associative recall (Arora et al. 2023) and the six tasks of MAD (Poli et al. 2024,
"Mechanistic design and scaling of hybrid architectures", section 3; their settings are MAD's
baseline configurations, its difficulty knobs the options).

- `mqar`: D key-value pairs, then the D keys again at random later steps; at each, the value.
- `in_context_recall`, `noisy_recall`, `fuzzy_recall`: a stream of key-value pairs over a
  vocabulary that is fixed per sequence (keys from one half, values from the other), in MAD's
  multi-query form: every value whose key appeared before is asked for. Noisy recall mixes in
  pairs of noise tokens (`frac_noise`), fuzzy recall writes keys and values as motifs of 1-3
  tokens. As in MAD they train on next-token prediction at every step and score the recalls.
- `selective_copy`: 16 tokens scattered among blanks, then a copy token; write them in order
  (Gu & Dao 2023, section 3.1; MAD's selective copying).
- `compression`: a random sequence and a compression token; a decoder must rebuild every token
  from the encoder's last output alone (MAD's encoder + MLP decoder).
- `memorization`: keys followed by an insert token; write the key's value under a key-value map
  fixed for the task (facts learned into the weights, not read from the context).

Every task is scored by `accuracy` over the answers it asks for (`AnswerAccuracy`), against the
majority answer of its training data as the trivial baseline.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ClassVar

import torch
from torch import Tensor, nn

from rnnbench import (IGNORE_INDEX, AnswerClassifier, AtLeast, Baseline, Batch, BenchmarkError, Between,
                      EncoderOutput, Head, HeadOutput, InputSpec, Reference, Requirements, SequenceBatch,
                      Splits, Task, fixed_length_splits, register_task)
from rnnbench.toolkit.baselines import answer_counts, majority_class
from rnnbench.toolkit.generated import python_rng

if TYPE_CHECKING:
    from torchmetrics import MetricCollection


@dataclass
class RecallOptions:
    """vocab_size: tokens, special ones included; seq_len: steps; train_size: the training set,
    drawn once (MAD's difficulty knob) unless the task draws fresh data; eval_size: examples per
    evaluation split."""

    vocab_size: Annotated[int, AtLeast(4)] = 16
    seq_len: Annotated[int, AtLeast(4)] = 128
    train_size: Annotated[int, AtLeast(1)] = 12_800
    eval_size: Annotated[int, AtLeast(1)] = 1_280


class AnswerTask(Task):
    """A generated task of fixed-length token sequences scored at its answer positions.
    Subclasses implement `make(size, generator) -> (inputs, targets, answer)`, targets being the
    answers (IGNORE_INDEX elsewhere); `next_token_training` trains on every next token instead,
    as MAD does (the inputs then end with the last answer's token, and the model reads all but
    it)."""

    requirements: ClassVar[Requirements] = Requirements(structure="sequence", causal=True)
    head_kind = "tagging"
    primary_metric = "accuracy"
    direction = "max"
    item_unit = "answers"
    fresh_data: ClassVar[bool] = False          # MAD: one training set of train_size
    next_token_training: ClassVar[bool] = False
    Options = RecallOptions
    # MAD trains 200 epochs of 100 batches of 128 with AdamW and a cosine schedule, the best of
    # lr {1e-4, 5e-4, 1e-3} x weight decay {0, 0.1}; a CPU affords a few thousand steps
    defaults: ClassVar[dict] = {"optim.optimizer": "adamw", "optim.lr": 1e-3, "optim.schedule": "cosine",
                                "optim.clip_norm": 1.0, "arch.hidden_size": 128, "trainer.batch_size": 64,
                                "trainer.max_steps": 3000, "trainer.val_every_steps": 250,
                                "trainer.patience": 6}
    presets: ClassVar[dict] = {"quick": {"task.seq_len": 32, "task.train_size": 512, "task.eval_size": 128,
                                         "arch.hidden_size": 16, "trainer.max_steps": 40,
                                         "trainer.val_every_steps": 20}}

    def make(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def make_evaluation(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """The validation and test examples; default: drawn as the training ones."""
        return self.make(size, generator)

    @property
    def num_classes(self) -> int:
        return self.options.vocab_size

    def input_spec(self) -> InputSpec:
        return InputSpec(vocab_size=self.options.vocab_size)

    def splits(self, batch_size: int, seed: int) -> Splits:
        def scored(inputs: Tensor, targets: Tensor, answer: Tensor) -> Batch:
            if self.next_token_training:
                inputs, targets, answer = inputs[:, :-1], targets[:, 1:], answer[:, 1:]
            lengths = torch.full((len(inputs),), inputs.shape[1], dtype=torch.long)
            return Batch(SequenceBatch(inputs, lengths), targets, metric_mask=answer)

        def next_tokens(inputs: Tensor, targets: Tensor, answer: Tensor) -> Batch:
            lengths = torch.full((len(inputs),), inputs.shape[1] - 1, dtype=torch.long)
            return Batch(SequenceBatch(inputs[:, :-1], lengths), inputs[:, 1:], metric_mask=answer[:, 1:])

        o = self.options
        return fixed_length_splits(self.make, train_size=o.train_size, eval_size=o.eval_size,
                                   batch_size=batch_size, seed=seed, to_batch=scored, fresh=self.fresh_data,
                                   make_evaluation=self.make_evaluation,
                                   train_batch=next_tokens if self.next_token_training else None)

    def build_head(self, encoder_output_size, embedding, decoder=None):
        return AnswerClassifier(encoder_output_size, self.num_classes)

    def metrics(self) -> MetricCollection:
        from torchmetrics import MetricCollection

        from rnnbench.toolkit.metrics import AnswerAccuracy

        return MetricCollection({"accuracy": AnswerAccuracy()})

    def baselines(self, splits: Splits) -> tuple[Baseline, ...]:
        """The most frequent answer of the training data, at every answer position."""
        return (majority_class("majority answer", answer_counts(splits.train, self.num_classes)),)


# --------------------------------------------------------------------------- Zoology's MQAR


@dataclass
class MqarOptions(RecallOptions):
    """num_pairs: D key-value pairs; the defaults are Zoology's smallest figure-2 setting."""

    vocab_size: Annotated[int, AtLeast(4)] = 8_192
    seq_len: Annotated[int, AtLeast(4)] = 64
    num_pairs: Annotated[int, AtLeast(1)] = 4
    train_size: Annotated[int, AtLeast(1)] = 20_000
    eval_size: Annotated[int, AtLeast(1)] = 1_000


def distinct_draws(size: int, count: int, low: int, high: int, generator: torch.Generator) -> Tensor:
    """(size, count) integers in [low, high), distinct within each row (rows with a repeat are
    drawn again)."""
    draws = torch.randint(low, high, (size, count), generator=generator)
    while True:
        ordered = draws.sort(1).values
        repeated = (ordered[:, 1:] == ordered[:, :-1]).any(1)
        if not repeated.any():
            return draws
        draws[repeated] = torch.randint(low, high, (int(repeated.sum()), count), generator=generator)


@register_task("mqar")
class Mqar(AnswerTask):
    """Multi-query associative recall (Zoology, Arora et al. 2023): recall the values of D keys.

    D pairs k_1 v_1 ... k_D v_D (keys distinct, from the lower half of the vocabulary, values from
    the upper), then blanks (id 0) in which each key appears once more at a random step (uniform
    here; Zoology draws the gaps from a power law); the answer at a key is its value."""

    fresh_data = True
    Options = MqarOptions
    presets: ClassVar[dict] = {"quick": {"task.vocab_size": 64, "task.seq_len": 32, "task.num_pairs": 4,
                                         "task.train_size": 512, "task.eval_size": 128, "arch.hidden_size": 16,
                                         "trainer.max_steps": 40, "trainer.val_every_steps": 20}}

    def __init__(self, options: MqarOptions) -> None:
        super().__init__(options)
        pairs, half = options.num_pairs, options.vocab_size // 2
        if 4 * pairs > options.seq_len or pairs >= half:
            raise BenchmarkError(f"task 'mqar': {pairs} pairs need seq_len >= {4 * pairs} (the pairs and "
                                 f"room for their queries) and vocab_size > {2 * pairs + 1}: raise "
                                 f"task.seq_len or task.vocab_size, or lower task.num_pairs")

    def make(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        o = self.options
        pairs, half = o.num_pairs, o.vocab_size // 2
        keys = distinct_draws(size, pairs, 1, half, generator)
        values = torch.randint(half, o.vocab_size, (size, pairs), generator=generator)
        inputs = torch.zeros(size, o.seq_len, dtype=torch.long)
        inputs[:, 0:2 * pairs:2], inputs[:, 1:2 * pairs:2] = keys, values
        targets = torch.full((size, o.seq_len), IGNORE_INDEX, dtype=torch.long)
        steps = torch.rand(size, o.seq_len - 2 * pairs, generator=generator).argsort(1)[:, :pairs] + 2 * pairs
        order = torch.rand(size, pairs, generator=generator).argsort(1)
        rows = torch.arange(size).unsqueeze(1)
        inputs[rows, steps] = keys.gather(1, order)
        targets[rows, steps] = values.gather(1, order)
        return inputs, targets, targets != IGNORE_INDEX

    def references(self) -> tuple[Reference, ...]:
        return (Reference("chance (accuracy)", 1 / (self.options.vocab_size - self.options.vocab_size // 2),
                          "uniform guess over the values"),)


# --------------------------------------------------------------------------- MAD's recall tasks


@dataclass
class NoisyRecallOptions(RecallOptions):
    """noise_vocab_size: the last tokens of the vocabulary, used only as noise; frac_noise: the
    share of pairs that are noise."""

    vocab_size: Annotated[int, AtLeast(4)] = 32
    noise_vocab_size: Annotated[int, AtLeast(0)] = 16
    frac_noise: Annotated[float, Between(0.0, 0.99)] = 0.2


def recall_sequence(rng: random.Random, length: int, keys: range, values: range, *, pad: int,
                    noise: range | None = None, frac_noise: float = 0.0, key_motifs: int = 1,
                    value_motifs: int = 1, fixed_key_motif: bool = False) -> tuple[list[int], list[bool]]:
    """One MAD recall sequence of `length` tokens and the positions that ask for a value (the
    value's tokens, when its key appeared before). Keys are tuples of 1..key_motifs tokens from
    `keys` (all key_motifs long if `fixed_key_motif`), values of 1..value_motifs tokens from
    `values`; the map is drawn afresh for each sequence. A pair is replaced by as many noise
    tokens with probability `frac_noise`, except one pair drawn at random (as MAD keeps one). The
    last pair repeats a key seen before; the sequence is left-padded with `pad` to `length`."""
    mapping: dict[tuple[int, ...], tuple[int, ...]] = {}
    tokens: list[int] = []
    asked: list[bool] = []
    longest = key_motifs + value_motifs
    kept = rng.randrange(max(1, (length - longest) // 2))    # the pair slot never replaced by noise
    presented: set[tuple[int, ...]] = set()
    slot = 0
    while len(tokens) + longest <= length - longest:     # room for this pair and the final one
        k_size = key_motifs if fixed_key_motif else rng.randint(1, key_motifs)
        v_size = rng.randint(1, value_motifs)
        if noise is not None and slot != kept and rng.random() < frac_noise:
            tokens += [rng.choice(noise) for _ in range(k_size + v_size)]
            asked += [False] * (k_size + v_size)
        else:
            key = tuple(rng.choice(keys) for _ in range(k_size))
            value = mapping.setdefault(key, tuple(rng.choice(values) for _ in range(v_size)))
            tokens += [*key, *value]
            asked += [False] * k_size + [key in presented] * len(value)
            presented.add(key)
        slot += 1
    key = rng.choice(sorted(presented))
    tokens += [*key, *mapping[key]]
    asked += [False] * len(key) + [True] * len(mapping[key])
    padding = length - len(tokens)
    return [pad] * padding + tokens, [False] * padding + asked


class _RecallTask(AnswerTask):
    """MAD's recall tasks: sequences from `recall_sequence`, trained on every next token."""

    next_token_training = True

    def layout(self) -> dict:  # pragma: no cover
        raise NotImplementedError

    def make(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        return self._make(size, generator)

    def _make(self, size: int, generator: torch.Generator, **extra) -> tuple[Tensor, Tensor, Tensor]:
        rng, layout = python_rng(generator), self.layout()
        rows = [recall_sequence(rng, self.options.seq_len, **layout, **extra) for _ in range(size)]
        inputs = torch.tensor([tokens for tokens, _ in rows], dtype=torch.long)
        answer = torch.tensor([asked for _, asked in rows], dtype=torch.bool)
        return inputs, torch.where(answer, inputs, IGNORE_INDEX), answer

    def _require_even(self) -> None:
        if self.options.seq_len % 2:
            raise BenchmarkError(f"task '{self.name}' is built of key-value pairs: its seq_len must be "
                                 f"even, not {self.options.seq_len}: set task.seq_len={self.options.seq_len + 1}")


@register_task("in_context_recall")
class InContextRecall(_RecallTask):
    """In-context recall (MAD, Poli et al. 2024): recall each value whose key came before.

    A stream of key-value pairs, keys from the lower half of the vocabulary and values from the
    upper, the map drawn per sequence."""

    def __init__(self, options: RecallOptions) -> None:
        super().__init__(options)
        self._require_even()

    def layout(self) -> dict:
        half = self.options.vocab_size // 2
        return {"keys": range(half), "values": range(half, self.options.vocab_size), "pad": 0}


@register_task("noisy_recall")
class NoisyRecall(_RecallTask):
    """Noisy in-context recall (MAD, Poli et al. 2024): in-context recall among noise tokens.

    A share of the pairs is replaced by tokens of a separate noise vocabulary, which the model
    must learn to ignore."""

    Options = NoisyRecallOptions

    def __init__(self, options: NoisyRecallOptions) -> None:
        super().__init__(options)
        self._require_even()
        if options.noise_vocab_size + 2 > options.vocab_size:
            raise BenchmarkError(f"task 'noisy_recall': noise_vocab_size={options.noise_vocab_size} leaves "
                                 f"fewer than 2 of the {options.vocab_size} tokens for keys and values: "
                                 f"raise task.vocab_size or lower task.noise_vocab_size")

    def layout(self) -> dict:
        o = self.options
        clean = o.vocab_size - o.noise_vocab_size
        return {"keys": range(clean // 2), "values": range(clean // 2, clean), "pad": 0,
                "noise": range(clean, o.vocab_size), "frac_noise": o.frac_noise}


@dataclass
class FuzzyRecallOptions(RecallOptions):
    """key_motif_size, value_motif_size: keys and values are 1..this many tokens (test keys are
    always the longest)."""

    key_motif_size: Annotated[int, AtLeast(1)] = 3
    value_motif_size: Annotated[int, AtLeast(1)] = 3


@register_task("fuzzy_recall")
class FuzzyRecall(_RecallTask):
    """Fuzzy in-context recall (MAD, Poli et al. 2024): recall with keys and values of 1-3 tokens.

    A key's boundary must be inferred; sequences are left-padded with the last token of the
    vocabulary."""

    Options = FuzzyRecallOptions

    def __init__(self, options: FuzzyRecallOptions) -> None:
        super().__init__(options)
        shortest = 4 * (options.key_motif_size + options.value_motif_size)
        if options.seq_len < shortest:
            raise BenchmarkError(f"task 'fuzzy_recall': seq_len={options.seq_len} is too short for motifs "
                                 f"of {options.key_motif_size} + {options.value_motif_size} tokens: set "
                                 f"task.seq_len to at least {shortest}")

    def layout(self) -> dict:
        o = self.options
        clean = o.vocab_size - 1
        return {"keys": range(clean // 2), "values": range(clean // 2, clean), "pad": clean,
                "key_motifs": o.key_motif_size, "value_motifs": o.value_motif_size}

    def make_evaluation(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """As in MAD, evaluation keys are all of the longest motif size."""
        return self._make(size, generator, fixed_key_motif=True)


# --------------------------------------------------------------------------- copying


@dataclass
class SelectiveCopyOptions(RecallOptions):
    """tokens_to_copy: how many tokens are scattered and copied."""

    seq_len: Annotated[int, AtLeast(4)] = 256
    tokens_to_copy: Annotated[int, AtLeast(1)] = 16


@register_task("selective_copy")
class SelectiveCopy(AnswerTask):
    """Selective copying (Gu & Dao 2023; MAD): copy the tokens scattered among blanks, in order.

    The tokens to copy (from all but the last two ids) sit at random steps among blanks, then come
    the copy token and as many blank steps as tokens; the answers are the tokens, in order.
    Content-aware selection is needed: the tokens' positions vary (Gu & Dao, section 3.1)."""

    Options = SelectiveCopyOptions
    presets: ClassVar[dict] = {"quick": {"task.seq_len": 32, "task.tokens_to_copy": 4, "task.train_size": 512,
                                         "task.eval_size": 128, "arch.hidden_size": 16,
                                         "trainer.max_steps": 40, "trainer.val_every_steps": 20},
                               "gu_dao": {"task.seq_len": 4096, "task.tokens_to_copy": 16, "task.vocab_size": 18}}

    def __init__(self, options: SelectiveCopyOptions) -> None:
        super().__init__(options)
        if options.seq_len <= 2 * options.tokens_to_copy + 1:
            raise BenchmarkError(f"task 'selective_copy': seq_len={options.seq_len} leaves no blanks for "
                                 f"{options.tokens_to_copy} tokens to copy: set task.seq_len above "
                                 f"{2 * options.tokens_to_copy + 1}")

    def make(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        o = self.options
        count, blank, copy = o.tokens_to_copy, o.vocab_size - 2, o.vocab_size - 1
        spread = o.seq_len - count - 1                      # steps the tokens are scattered over
        steps = torch.rand(size, spread, generator=generator).argsort(1)[:, :count].sort(1).values
        tokens = torch.randint(0, blank, (size, count), generator=generator)
        inputs = torch.full((size, o.seq_len), blank, dtype=torch.long)
        rows = torch.arange(size).unsqueeze(1)
        inputs[rows, steps] = tokens
        inputs[:, spread] = copy
        targets = torch.full((size, o.seq_len), IGNORE_INDEX, dtype=torch.long)
        targets[:, spread + 1:] = tokens
        return inputs, targets, targets != IGNORE_INDEX

    def references(self) -> tuple[Reference, ...]:
        o = self.options
        chance = Reference("chance (accuracy)", 1 / (o.vocab_size - 2), "uniform guess over the tokens")
        if (o.seq_len, o.tokens_to_copy, o.vocab_size) != (4096, 16, 18):
            return (chance,)
        return (chance, Reference("Mamba (S6), 2 layers", 0.998, "Gu & Dao 2023, table 1"),
                Reference("S4, 2 layers", 0.183, "Gu & Dao 2023, table 1"))


# --------------------------------------------------------------------------- compression


def sinusoidal_positions(steps: int, width: int) -> Tensor:
    """(steps, width) sine and cosine position codes (Vaswani et al. 2017, section 3.5)."""
    position = torch.arange(steps, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10_000.0) / width))
    codes = torch.zeros(steps, width)
    codes[:, 0::2] = torch.sin(position * frequency)
    codes[:, 1::2] = torch.cos(position * frequency)[:, :width // 2]
    return codes


class CompressionDecoder(Head):
    """MAD's compression decoder: the encoder's output at the last step (the compression token),
    plus a position code, through a two-layer MLP (LayerNorm, Linear, GELU, twice) to logits for
    the token at that position; the only path from the sequence to its reconstruction."""

    def __init__(self, output_size: int, vocab_size: int, steps: int) -> None:
        super().__init__()
        self.register_buffer("positions", sinusoidal_positions(steps, output_size), persistent=False)
        self.mlp = nn.Sequential(nn.LayerNorm(output_size), nn.Linear(output_size, output_size), nn.GELU(),
                                 nn.LayerNorm(output_size), nn.Linear(output_size, output_size), nn.GELU(),
                                 nn.LayerNorm(output_size))
        self.linear = nn.Linear(output_size, vocab_size)

    def forward(self, encoded: EncoderOutput, batch: Batch) -> HeadOutput:
        code = encoded.final.reshape(len(encoded.final), -1)         # (B, O): every direction's last state
        steps = batch.targets.shape[1]
        logits = self.linear(self.mlp(code.unsqueeze(1) + self.positions[:steps]))
        loss_sum = nn.functional.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(),
                                               ignore_index=IGNORE_INDEX, reduction="sum")
        return HeadOutput(loss_sum, (batch.targets != IGNORE_INDEX).sum(), logits)

    def update_metrics(self, metrics, predictions: Tensor, batch: Batch) -> None:
        metrics.update(predictions, batch.targets, batch.metric_mask, batch.instance_length)


@register_task("compression")
class Compression(AnswerTask):
    """Compression (MAD, Poli et al. 2024): rebuild a random sequence from the last output alone.

    seq_len - 1 random tokens, then the compression token (the last id); a decoder rebuilds every
    token from the encoder's last output (`CompressionDecoder`). The answers are the tokens."""

    requirements = Requirements(structure="sequence")
    presets: ClassVar[dict] = {"quick": {"task.seq_len": 8, "task.train_size": 512, "task.eval_size": 128,
                                         "arch.hidden_size": 16, "trainer.max_steps": 40,
                                         "trainer.val_every_steps": 20}}

    def make(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        o = self.options
        tokens = torch.randint(0, o.vocab_size - 1, (size, o.seq_len - 1), generator=generator)
        inputs = torch.cat([tokens, torch.full((size, 1), o.vocab_size - 1, dtype=torch.long)], dim=1)
        targets = torch.cat([tokens, torch.full((size, 1), IGNORE_INDEX, dtype=torch.long)], dim=1)
        return inputs, targets, targets != IGNORE_INDEX

    def build_head(self, encoder_output_size, embedding, decoder=None):
        return CompressionDecoder(encoder_output_size, self.options.vocab_size, self.options.seq_len)


# --------------------------------------------------------------------------- memorization


@dataclass
class MemorizationOptions(RecallOptions):
    """MAD's memorization setting: 256 tokens (127 keys, 127 values, the insert token) and a
    small training set; the facts are the same for every run."""

    vocab_size: Annotated[int, AtLeast(4)] = 256
    seq_len: Annotated[int, AtLeast(4)] = 32
    train_size: Annotated[int, AtLeast(1)] = 256


FACTS_SEED = 12_345     # the key-value map every memorization run learns


def fact_table(vocab_size: int) -> Tensor:
    """The fixed map from keys (the lower half of all ids but the insert token) to values (the
    upper half): value of key k is table[k]."""
    clean = vocab_size - 1
    generator = torch.Generator().manual_seed(FACTS_SEED)
    values = torch.arange(clean // 2, clean)[torch.randperm(clean - clean // 2, generator=generator)]
    return values[:clean // 2]


@register_task("memorization")
class Memorization(AnswerTask):
    """Memorization (MAD, Poli et al. 2024): write each key's value under a map fixed for the task.

    Pairs of a key and the insert token (the last id); at the insert token the model writes the
    value, learned from the training set into the weights (the test set draws new sequences of
    the same keys)."""

    Options = MemorizationOptions
    presets: ClassVar[dict] = {"quick": {"task.vocab_size": 33, "task.seq_len": 16, "task.train_size": 256,
                                         "task.eval_size": 128, "arch.hidden_size": 16,
                                         "trainer.max_steps": 40, "trainer.val_every_steps": 20}}

    def make(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        o = self.options
        table = fact_table(o.vocab_size)
        pairs = o.seq_len // 2
        keys = torch.randint(0, len(table), (size, pairs), generator=generator)
        inputs = torch.full((size, 2 * pairs), o.vocab_size - 1, dtype=torch.long)
        inputs[:, 0::2] = keys
        targets = torch.full((size, 2 * pairs), IGNORE_INDEX, dtype=torch.long)
        targets[:, 1::2] = table[keys]
        return inputs, targets, targets != IGNORE_INDEX
