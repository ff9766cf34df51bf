"""Sentence sentiment on the Stanford Sentiment Treebank, fine-grained and binary; test accuracy.

Socher et al. 2013: fine-grained has 5 classes (0 very negative .. 4 very positive); binary drops
the neutral sentences (0-1 negative, 3-4 positive). The metric is accuracy on the test sentences.

The files hold binarized PTB-style trees with a label on every node, e.g. `(3 (2 The) (2 Rock))`.
Training uses the sentences by default; `task.train_on=phrases` trains on every labelled phrase
(node) of the training trees, as Tai, Socher & Manning 2015 do (in binary, neutral phrases are
left out). Validation and test are always whole sentences.

Two forms of the same data:
- sst-fine / sst-binary (structure "sequence"): the words in order; the encoder's outputs are
  pooled (`task.pooling`: last state of every direction, mean or max over the words) into a
  softmax classifier.
- sst-tree-fine / sst-tree-binary (structure "tree"): the gold binary trees as a
  `rnnbench.core.contracts.TreeBatch`; the classifier reads every node's state, is trained on the roots
  (or on every node with train_on=phrases) and scored on the roots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnbench import (Baseline, Batch, BenchmarkError, EncoderOutput, Head, HeadOutput, IGNORE_INDEX,
                      InputSpec, PooledClassifier, Reference, Requirements, SequenceBatch,
                      Splits, Task, TreeBatch, register_task)
from rnnbench.toolkit.baselines import majority_class
from rnnbench.toolkit.datasets import require
from rnnbench.toolkit.pooling import Pooling
from rnnbench.toolkit.text import BucketBatches, TextOptions, Vocabulary, pad, read_once, spread

if TYPE_CHECKING:
    from torchmetrics import MetricCollection

UNKNOWN = "<unk>"
NEUTRAL = 2
SST_FILES = {"train": "train.txt", "val": "dev.txt", "test": "test.txt"}
# ASCII whitespace only: a few words hold a no-break space, e.g. "2\xa01\\/2" (two and a half)
_TOKEN = re.compile(r"\(|\)|[^ \t\r\n()]+")


# --------------------------------------------------------------------------- reading trees


@dataclass
class SentimentTree:
    """One binarized tree, nodes in post-order (children before parents, the root last).

    left / right: child node indices, -1 for leaves; word: the word position of a leaf, -1 for
    internal nodes; span: the (start, end) word positions each node covers.
    """

    words: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)
    right: list[int] = field(default_factory=list)
    word: list[int] = field(default_factory=list)
    height: list[int] = field(default_factory=list)
    span: list[tuple[int, int]] = field(default_factory=list)

    @property
    def label(self) -> int:
        return self.labels[-1]


def parse_tree(text: str) -> SentimentTree:
    """Parse `(label (label word) (label ...))`; every internal node must have two children."""
    tree = SentimentTree()
    open_nodes: list[list] = []  # [label, child indices, word]
    tokens = _TOKEN.findall(text)
    position = 0
    while position < len(tokens):
        token = tokens[position]
        if token == "(":
            if position + 1 >= len(tokens) or not tokens[position + 1].isdigit():
                raise BenchmarkError(f"SST tree: expected a label 0-4 after '(' in {text[:80]!r}")
            open_nodes.append([int(tokens[position + 1]), [], None])
            position += 2
            continue
        if token == ")":
            if not open_nodes:
                raise BenchmarkError(f"SST tree: unbalanced ')' in {text[:80]!r}")
            label, children, word = open_nodes.pop()
            index = len(tree.labels)
            if word is not None and not children:
                tree.word.append(len(tree.words))
                tree.span.append((len(tree.words), len(tree.words) + 1))
                tree.words.append(word)
                tree.left.append(-1)
                tree.right.append(-1)
                tree.height.append(0)
            elif word is None and len(children) == 2:
                left, right = children
                tree.word.append(-1)
                tree.span.append((tree.span[left][0], tree.span[right][1]))
                tree.left.append(left)
                tree.right.append(right)
                tree.height.append(1 + max(tree.height[left], tree.height[right]))
            else:
                raise BenchmarkError(f"SST tree: a node must be a word or have two children, in "
                                     f"{text[:80]!r}: is this the binarized PTB-format SST?")
            tree.labels.append(label)
            if open_nodes:
                open_nodes[-1][1].append(index)
            elif position != len(tokens) - 1:
                raise BenchmarkError(f"SST tree: text after the root in {text[:80]!r}")
            position += 1
            continue
        if not open_nodes or open_nodes[-1][2] is not None:
            raise BenchmarkError(f"SST tree: unexpected word {token!r} in {text[:80]!r}")
        open_nodes[-1][2] = token
        position += 1
    if open_nodes or not tree.labels:
        raise BenchmarkError(f"SST tree: unbalanced '(' in {text[:80]!r}")
    return tree


@read_once
def read_trees(path: Path) -> list[SentimentTree]:
    with open(path, encoding="utf-8") as lines:
        return [parse_tree(line) for line in lines if line.strip()]


# --------------------------------------------------------------------------- options and heads


@dataclass
class SentimentOptions(TextOptions):
    """train_on: sentences (the root labels) or phrases (every labelled node of the training trees,
        Tai et al. 2015). The vocabulary and slicing options are `rnnbench.toolkit.text.TextOptions`
        (a sentence here is a tree)."""

    train_on: Literal["sentences", "phrases"] = "sentences"


@dataclass
class SequenceSentimentOptions(SentimentOptions):
    """pooling: last (the final state of every direction: both for a bidirectional encoder), mean
    or max over the words."""

    pooling: Pooling = "last"


class NodeClassifier(Head):
    """A softmax over every tree node's state. Trained on the nodes whose target is not
    IGNORE_INDEX; metrics read the roots."""

    def __init__(self, output_size: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(output_size, num_classes)

    def forward(self, encoded: EncoderOutput, batch: Batch) -> HeadOutput:
        logits = self.linear(encoded.outputs)
        loss_sum = F.cross_entropy(logits, batch.targets, ignore_index=IGNORE_INDEX, reduction="sum")
        return HeadOutput(loss_sum, (batch.targets != IGNORE_INDEX).sum(), logits)

    def update_metrics(self, metrics, predictions: Tensor, batch: Batch) -> None:
        roots = batch.inputs.roots
        metrics.update(predictions[roots], batch.targets[roots])


# --------------------------------------------------------------------------- tasks


class _SentimentTask(Task):
    head_kind = "classification"
    primary_metric = "accuracy"
    direction = "max"
    defaults = {"optim.optimizer": "adam", "optim.lr": 1e-3, "optim.clip_norm": 5.0,
                "arch.hidden_size": 128, "arch.embedding_size": 100, "trainer.batch_size": 25,
                "trainer.max_steps": None, "trainer.max_epochs": 10, "trainer.patience": 3}
    presets = {"quick": {"task.train_sentences": 800, "task.eval_sentences": 200,
                         "arch.hidden_size": 32, "arch.embedding_size": 32, "trainer.max_epochs": 2}}
    binary: ClassVar[bool]
    Options = SentimentOptions
    ranked_together = ("task.batching",)

    def __init__(self, options: SentimentOptions) -> None:
        super().__init__(options)
        if options.min_frequency < 1:
            raise BenchmarkError(f"task.min_frequency must be at least 1, got {options.min_frequency}")
        self._trees: dict[str, list[SentimentTree]] | None = None
        self._words: Vocabulary | None = None

    @property
    def num_classes(self) -> int:
        return 2 if self.binary else 5

    def label(self, sentiment: int) -> int:
        """0-4 -> the class, or IGNORE_INDEX for a neutral node in binary."""
        if not self.binary:
            return sentiment
        return IGNORE_INDEX if sentiment == NEUTRAL else int(sentiment > NEUTRAL)

    def trees(self) -> dict[str, list[SentimentTree]]:
        """Each split's trees, cut to train_sentences / eval_sentences; in binary, the evaluation
        splits (and the training split when trained on sentences) drop neutral sentences."""
        if self._trees is None:
            folder = require("sst")
            options = self.options
            limits = {"train": options.train_sentences, "val": options.eval_sentences,
                      "test": options.eval_sentences}
            self._trees = {}
            for split, name in SST_FILES.items():
                trees = spread(read_trees(folder / name), limits[split])
                keep_neutral = split == "train" and options.train_on == "phrases"
                if self.binary and not keep_neutral:
                    trees = [tree for tree in trees if tree.label != NEUTRAL]
                self._trees[split] = trees
        return self._trees

    @property
    def words(self) -> Vocabulary:
        if self._words is None:
            self._words = Vocabulary.from_corpus(
                (tree.words for tree in self.trees()["train"]), min_frequency=self.options.min_frequency,
                lowercase=self.options.lowercase, unknown=UNKNOWN)
        return self._words

    def input_spec(self) -> InputSpec:
        return InputSpec(vocab_size=len(self.words))

    def metrics(self) -> MetricCollection:
        from torchmetrics import MetricCollection
        from torchmetrics.classification import MulticlassAccuracy

        return MetricCollection({"accuracy": MulticlassAccuracy(self.num_classes, average="micro")})

    def baselines(self, splits: Splits) -> tuple[Baseline, ...]:
        """The training sentences' most frequent label (whatever the runs train on, it is the
        sentences that are tested)."""
        labels = [self.label(tree.label) for tree in self.trees()["train"]]
        labels = torch.tensor([label for label in labels if label != IGNORE_INDEX], dtype=torch.long)
        return (majority_class("majority_class", torch.bincount(labels, minlength=self.num_classes)),)

    def references(self) -> tuple[Reference, ...]:
        column = 1 if self.binary else 0
        rows = (("RNTN (recursive)", (0.457, 0.854), "Socher et al. 2013"),
                ("LSTM", (0.464, 0.849), "Tai et al. 2015"),
                ("BiLSTM", (0.491, 0.875), "Tai et al. 2015"),
                ("2-layer LSTM", (0.460, 0.863), "Tai et al. 2015"),
                ("Constituency Tree-LSTM", (0.510, 0.880), "Tai et al. 2015"))
        note = ("trained on all phrases with pretrained GloVe vectors; sentence-only training from "
                "scratch scores lower")
        return tuple(Reference(model, values[column], source, note) for model, values, source in rows)


class _SequenceSentiment(_SentimentTask):
    item_unit = "sequences"
    requirements = Requirements(structure="sequence", causal=False)
    Options = SequenceSentimentOptions

    def examples(self, split: str) -> tuple[list[list[str]], list[int]]:
        """(word lists, labels): sentences, or every labelled phrase for train_on=phrases."""
        texts, labels = [], []
        phrases = split == "train" and self.options.train_on == "phrases"
        for tree in self.trees()[split]:
            nodes = range(len(tree.labels)) if phrases else [len(tree.labels) - 1]
            for node in nodes:
                label = self.label(tree.labels[node])
                if label != IGNORE_INDEX:
                    start, end = tree.span[node]
                    texts.append(tree.words[start:end])
                    labels.append(label)
        return texts, labels

    def splits(self, batch_size: int, seed: int) -> Splits:
        def batches(split: str) -> BucketBatches:
            texts, labels = self.examples(split)
            inputs = [self.words.encode(words) for words in texts]
            targets = torch.tensor(labels, dtype=torch.long)

            def make_batch(indices: Tensor) -> Batch:
                values, lengths = pad([inputs[i] for i in indices], 0)
                return Batch(SequenceBatch(values, lengths), targets[indices])

            lengths = torch.tensor([len(words) for words in texts])
            return BucketBatches(lengths, batch_size, make_batch, shuffle=split == "train", seed=seed,
                                 batching=self.options.batching)

        return Splits(train=batches("train"), val=batches("val"), test=batches("test"))

    def build_head(self, encoder_output_size, embedding, decoder=None):
        return PooledClassifier(encoder_output_size, self.num_classes, pooling=self.options.pooling)


class _TreeSentiment(_SentimentTask):
    item_unit = "labelled tree nodes"
    # version 2: internal nodes have no input (x = 0), they no longer read and train the `<unk>`
    # embedding (their id 0 is filler, see TreeBatch); runs of version 1 are not comparable
    version = 2
    requirements = Requirements(structure="tree", causal=False)

    def _tensors(self, tree: SentimentTree, every_node: bool) -> dict[str, Tensor]:
        word_ids = self.words.encode(tree.words)
        word = torch.tensor(tree.word)
        values = torch.where(word >= 0, word_ids[word.clamp(min=0)], 0)  # internal: filler 0, unread
        labels = torch.tensor([self.label(label) for label in tree.labels])
        if not every_node:
            labels[:-1] = IGNORE_INDEX
        return {"values": values, "left": torch.tensor(tree.left), "right": torch.tensor(tree.right),
                "height": torch.tensor(tree.height), "targets": labels}

    def splits(self, batch_size: int, seed: int) -> Splits:
        def batches(split: str) -> BucketBatches:
            every_node = split == "train" and self.options.train_on == "phrases"
            trees = [self._tensors(tree, every_node) for tree in self.trees()[split]]

            def make_batch(indices: Tensor) -> Batch:
                chosen = [trees[i] for i in indices]
                sizes = torch.tensor([len(tree["values"]) for tree in chosen])
                offsets = torch.cumsum(sizes, 0) - sizes
                shifted = {side: torch.cat([torch.where(tree[side] >= 0, tree[side] + offset, -1)
                                            for tree, offset in zip(chosen, offsets)])
                           for side in ("left", "right")}
                inputs = TreeBatch(values=torch.cat([tree["values"] for tree in chosen]),
                                   left=shifted["left"], right=shifted["right"],
                                   height=torch.cat([tree["height"] for tree in chosen]),
                                   roots=offsets + sizes - 1,
                                   tree_index=torch.repeat_interleave(torch.arange(len(chosen)), sizes))
                return Batch(inputs, torch.cat([tree["targets"] for tree in chosen]))

            sizes = torch.tensor([len(tree["values"]) for tree in trees])
            return BucketBatches(sizes, batch_size, make_batch, shuffle=split == "train", seed=seed,
                                 batching=self.options.batching)

        return Splits(train=batches("train"), val=batches("val"), test=batches("test"))

    def build_head(self, encoder_output_size, embedding, decoder=None):
        return NodeClassifier(encoder_output_size, self.num_classes)


@register_task("sst-fine")
class SSTFine(_SequenceSentiment):
    """SST fine-grained (5 classes), words in order; test-sentence accuracy."""

    binary = False


@register_task("sst-binary")
class SSTBinary(_SequenceSentiment):
    """SST binary (neutral dropped), words in order; test-sentence accuracy."""

    binary = True


@register_task("sst-tree-fine")
class SSTTreeFine(_TreeSentiment):
    """SST fine-grained (5 classes) on the gold binary trees; test-sentence accuracy."""

    binary = False


@register_task("sst-tree-binary")
class SSTTreeBinary(_TreeSentiment):
    """SST binary (neutral dropped) on the gold binary trees; test-sentence accuracy."""

    binary = True
