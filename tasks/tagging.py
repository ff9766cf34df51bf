"""Sequence tagging: UPOS on UD English-EWT (accuracy), CoNLL-2003 NER (entity F1, conlleval).

pos reports token accuracy; ner reports entity-level precision, recall and F1 as conlleval computes
them.

pos: the words are the treebank's syntactic words: a multi-word token such as "don't" (range
19-20) is tagged as its words "do" and "n't", the range line itself is skipped, and empty nodes
(ids like 8.1, enhanced graphs only) are skipped. Accuracy = correct tags / words.

ner: the files use IOB1 (an entity starts with I- unless it directly follows one of the same type);
tags are converted to IOB2 (every entity starts with B-). An entity is an exact span with its
type; precision = correct / predicted entities, recall = correct / gold entities,
F1 = 2PR / (P + R), summed over the whole split (Tjong Kim Sang & De Meulder 2003; conlleval's
chunking, as seqeval reproduces it, is applied to each sentence).

Both read words from a vocabulary of the training split (unknown words -> <unk>, optional
lowercasing and minimum frequency) and take a softmax or a CRF output layer (`rnnbench.toolkit.crf`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from rnnbench import (Baseline, Batch, BenchmarkError, IGNORE_INDEX, InputSpec, PerStepClassifier,
                      Reference, Requirements, SequenceBatch, Splits, Task, register_task)
from rnnbench.toolkit.baselines import label_counts, majority_class, most_frequent_label_per_token
from rnnbench.toolkit.crf import CRFTagger
from rnnbench.toolkit.datasets import require
from rnnbench.toolkit.text import BucketBatches, TextOptions, Vocabulary, pad, read_once, spread

if TYPE_CHECKING:
    from torchmetrics import MetricCollection

UNKNOWN = "<unk>"
CONLLU_FIELDS = ("id", "form", "lemma", "upos")  # the columns the tagger reads
Sentence = tuple[list[str], list[str]]  # words, tags


# --------------------------------------------------------------------------- reading


@read_once
def read_conllu(path: Path) -> list[Sentence]:
    """(words, UPOS tags) of every sentence: syntactic words only (integer ids), so multi-word
    token ranges and empty nodes are left out. Only the first four columns are parsed."""
    import conllu

    sentences = []
    with open(path, encoding="utf-8") as lines:
        for sentence in conllu.parse_incr(lines, fields=CONLLU_FIELDS):
            words = [token for token in sentence if isinstance(token["id"], int)]
            sentences.append(([token["form"] for token in words], [token["upos"] for token in words]))
    return sentences


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """I-X that does not continue an X entity (after O, or after another type) opens one: B-X."""
    converted = []
    for position, tag in enumerate(tags):
        if tag.startswith("I-"):
            previous = tags[position - 1] if position else "O"
            if previous == "O" or previous[2:] != tag[2:]:
                tag = "B-" + tag[2:]
        converted.append(tag)
    return converted


@read_once
def read_conll2003(path: Path) -> list[Sentence]:
    """(words, IOB2 NER tags) per sentence of a 4-column CoNLL-2003 file; -DOCSTART- lines and
    blank lines separate sentences."""
    sentences, words, tags = [], [], []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                if words:
                    sentences.append((words, iob1_to_iob2(tags)))
                words, tags = [], []
                continue
            if len(fields) != 4:
                raise BenchmarkError(f"{path}:{number}: expected 4 columns (word POS chunk NER), "
                                     f"got {len(fields)}; is this the CoNLL-2003 English file?")
            words.append(fields[0])
            tags.append(fields[3])
    if words:
        sentences.append((words, iob1_to_iob2(tags)))
    return sentences


# --------------------------------------------------------------------------- output layers


class SoftmaxTagger(PerStepClassifier):
    """Independent softmax per token; metrics get (B, T, C) logits and (B, T) targets per
    sentence (entity metrics need the sentence boundaries)."""

    def update_metrics(self, metrics, predictions: Tensor, batch: Batch) -> None:
        metrics.update(predictions, batch.targets)


# --------------------------------------------------------------------------- tasks


@dataclass
class TaggingOptions(TextOptions):
    """output_layer: softmax (independent per token) or crf (linear-chain CRF, Viterbi decoding).
    The vocabulary and slicing options are `rnnbench.toolkit.text.TextOptions`."""

    output_layer: Literal["softmax", "crf"] = "softmax"


_TAGGING_DEFAULTS = {"optim.optimizer": "adam", "optim.lr": 2e-3, "optim.clip_norm": 5.0,
                     "arch.hidden_size": 128, "arch.embedding_size": 100, "trainer.batch_size": 32,
                     "trainer.max_steps": None, "trainer.max_epochs": 20, "trainer.patience": 3}
_TAGGING_QUICK = {"task.train_sentences": 600, "task.eval_sentences": 200, "arch.hidden_size": 32,
                  "arch.embedding_size": 32, "trainer.max_epochs": 2}


class _TaggingTask(Task):
    item_unit = "tokens"
    requirements = Requirements(structure="sequence", causal=False)
    head_kind = "tagging"
    direction = "max"
    defaults = _TAGGING_DEFAULTS
    presets = {"quick": _TAGGING_QUICK}
    Options = TaggingOptions
    ranked_together = ("task.output_layer", "task.batching")
    dataset: str
    files: dict[str, str]

    def __init__(self, options: TaggingOptions) -> None:
        super().__init__(options)
        if options.min_frequency < 1:
            raise BenchmarkError(f"task.min_frequency must be at least 1, got {options.min_frequency}")
        self._data: dict[str, list[Sentence]] | None = None  # every sentence of every split
        self._words: Vocabulary | None = None
        self._tags: Vocabulary | None = None

    def read(self, path: Path) -> list[Sentence]:
        raise NotImplementedError

    def _read_all(self) -> dict[str, list[Sentence]]:
        if self._data is None:
            folder = require(self.dataset)
            self._data = {split: self.read(folder / name) for split, name in self.files.items()}
        return self._data

    def data(self) -> dict[str, list[Sentence]]:
        """Each split's sentences, cut to train_sentences / eval_sentences (`rnnbench.toolkit.text.spread`)."""
        limits = {"train": self.options.train_sentences, "val": self.options.eval_sentences,
                  "test": self.options.eval_sentences}
        return {split: spread(sentences, limits[split]) for split, sentences in self._read_all().items()}

    @property
    def words(self) -> Vocabulary:
        if self._words is None:
            self._words = Vocabulary.from_corpus(
                (words for words, _ in self.data()["train"]), min_frequency=self.options.min_frequency,
                lowercase=self.options.lowercase, unknown=UNKNOWN)
        return self._words

    @property
    def tags(self) -> Vocabulary:
        """The tag set of the full training split (a slice could miss a rare tag)."""
        if self._tags is None:
            self._tags = Vocabulary.from_corpus((tags for _, tags in self._read_all()["train"]),
                                                unknown=None)
        return self._tags

    def input_spec(self) -> InputSpec:
        return InputSpec(vocab_size=len(self.words))

    def splits(self, batch_size: int, seed: int) -> Splits:
        data = self.data()

        def batches(split: str) -> BucketBatches:
            sentences = data[split]
            inputs = [self.words.encode(words) for words, _ in sentences]
            targets = [self.tags.encode(tags) for _, tags in sentences]
            lengths = torch.tensor([len(words) for words, _ in sentences])

            def make_batch(indices: Tensor) -> Batch:
                values, lengths_ = pad([inputs[i] for i in indices], 0)
                labels, _ = pad([targets[i] for i in indices], IGNORE_INDEX)
                return Batch(SequenceBatch(values, lengths_), labels)

            return BucketBatches(lengths, batch_size, make_batch, shuffle=split == "train", seed=seed,
                                 batching=self.options.batching)

        return Splits(train=batches("train"), val=batches("val"), test=batches("test"))

    def baselines(self, splits: Splits) -> tuple[Baseline, ...]:
        """Each word's most frequent training tag (an unknown word: the <unk> token's, as the
        models see it), and the most frequent tag everywhere."""
        tags = len(self.tags)
        return (most_frequent_label_per_token("most_frequent_tag_per_word", splits.train, len(self.words), tags),
                majority_class("most_frequent_tag", label_counts(splits.train, tags)))

    def build_head(self, encoder_output_size, embedding, decoder=None):
        if self.options.output_layer == "crf":
            return CRFTagger(encoder_output_size, len(self.tags))
        return SoftmaxTagger(encoder_output_size, len(self.tags))


@register_task("pos")
class UniversalPOS(_TaggingTask):
    """UPOS tagging on UD English-EWT; token accuracy."""

    primary_metric = "accuracy"
    dataset = "ud_english_ewt"
    files = {"train": "en_ewt-ud-train.conllu", "val": "en_ewt-ud-dev.conllu",
             "test": "en_ewt-ud-test.conllu"}

    def read(self, path: Path) -> list[Sentence]:
        return read_conllu(path)

    def metrics(self) -> MetricCollection:
        from torchmetrics import MetricCollection

        from rnnbench.toolkit.metrics import TokenAccuracy

        return MetricCollection({"accuracy": TokenAccuracy()})

    def references(self) -> tuple[Reference, ...]:
        return (Reference("BiLSTM-CNN-CRF, WSJ Penn tags", 0.9755, "Ma & Hovy 2016",
                          "not comparable: other treebank (WSJ) and tag set (PTB, 45 tags)"),)


@register_task("ner")
class CoNLL2003NER(_TaggingTask):
    """CoNLL-2003 English named entities; entity-level F1 (conlleval)."""

    primary_metric = "f1"
    dataset = "conll2003"
    files = {"train": "train.txt", "val": "valid.txt", "test": "test.txt"}

    def read(self, path: Path) -> list[Sentence]:
        return read_conll2003(path)

    def metrics(self) -> MetricCollection:
        from torchmetrics import MetricCollection

        from rnnbench.toolkit.metrics import EntityScore

        tags = self.tags.tokens
        return MetricCollection({score: EntityScore(tags, score) for score in ("precision", "recall", "f1")})

    def references(self) -> tuple[Reference, ...]:
        note = "with pretrained word embeddings and character features; word-only models score lower"
        return (Reference("BiLSTM-CNN-CRF", 0.9121, "Ma & Hovy 2016", note),
                Reference("LSTM-CRF", 0.9094, "Lample et al. 2016", note),
                Reference("BiLSTM-CRF", 0.9010, "Huang et al. 2015", note))
