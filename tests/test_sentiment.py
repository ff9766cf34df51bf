import pytest
import torch

from rnnbench.core import registry

from rnnbench.training import runner
from rnnbench.core.contracts import IGNORE_INDEX, TreeBatch
from rnnbench.core.errors import BenchmarkError
from rnnbench.tasks.sentiment import (SequenceSentimentOptions, SentimentOptions, SSTBinary, SSTFine, SSTTreeBinary,
                             SSTTreeFine, parse_tree, read_trees)

# --------------------------------------------------------------------------- trees


def test_a_tree_is_read_in_post_order_with_spans_heights_and_labels():
    tree = parse_tree("(3 (2 The) (4 (3 (2 very) (4 good)) (2 film)))")
    assert tree.words == ["The", "very", "good", "film"]
    assert tree.labels == [2, 2, 4, 3, 2, 4, 3]
    assert tree.left == [-1, -1, -1, 1, -1, 3, 0] and tree.right == [-1, -1, -1, 2, -1, 4, 5]
    assert tree.span == [(0, 1), (1, 2), (2, 3), (1, 3), (3, 4), (1, 4), (0, 4)]
    assert tree.height == [0, 0, 0, 1, 0, 2, 3]
    assert tree.word == [0, 1, 2, -1, 3, -1, -1]
    assert tree.label == 3


def test_a_word_may_hold_a_no_break_space():
    assert parse_tree("(2 (2 nearly) (2 2\u00a01\\/2))").words == ["nearly", "2\u00a01\\/2"]


@pytest.mark.parametrize("text, problem", [
    ("(3 (2 a) (2 b)", "unbalanced '\\('"),
    ("(3 (2 a) (2 b)))", "text after the root"),
    (")(3 (2 a) (2 b))", "unbalanced '\\)'"),
    ("(3 (2 a) (2 b) (2 c))", "two children"),
    ("(x (2 a) (2 b))", "expected a label"),
    ("(2 a b)", "unexpected word"),
])
def test_a_malformed_tree_is_refused_with_the_reason(text, problem):
    with pytest.raises(BenchmarkError, match=problem):
        parse_tree(text)


@pytest.mark.data("sst")
def test_sst_has_the_published_sentence_counts_and_binary_drops_the_neutral_ones(data_dir):
    counts = {split: len(read_trees(data_dir / "sst" / f"{split}.txt")) for split in ("train", "dev", "test")}
    assert counts == {"train": 8_544, "dev": 1_101, "test": 2_210}
    fine = SSTFine(SequenceSentimentOptions()).splits(batch_size=64, seed=0)
    binary = SSTBinary(SequenceSentimentOptions()).splits(batch_size=64, seed=0)
    assert sum(batch.batch_size for batch in fine.test) == 2_210
    assert sum(batch.batch_size for batch in binary.test) == 1_821  # 2,210 - 389 neutral
    labels = torch.cat([batch.targets for batch in binary.test])
    assert set(labels.tolist()) == {0, 1} and int(labels.sum()) == 909  # 510 + 399 positive


@pytest.mark.data("sst")
def test_training_on_phrases_uses_every_labelled_node_of_the_training_trees():
    options = SequenceSentimentOptions(train_on="phrases", train_sentences=50, eval_sentences=10)
    task = SSTFine(options)
    trees = task.trees()["train"]
    texts, labels = task.examples("train")
    assert len(texts) == sum(len(tree.labels) for tree in trees)
    assert texts[-1] == trees[-1].words and labels[-1] == trees[-1].label
    binary = SSTBinary(SequenceSentimentOptions(train_on="phrases", train_sentences=50, eval_sentences=10))
    _, binary_labels = binary.examples("train")
    neutral = sum(label == 2 for tree in trees for label in tree.labels)
    assert len(binary_labels) == len(texts) - neutral and set(binary_labels) <= {0, 1}
    assert len(task.examples("test")[0]) == 10  # evaluation stays on sentences


@pytest.mark.data("sst")
def test_tree_batches_put_children_before_parents_and_supervise_roots_or_every_node():
    for train_on, supervised in (("sentences", "roots"), ("phrases", "nodes")):
        task = SSTTreeFine(SentimentOptions(train_on=train_on, train_sentences=30, eval_sentences=10))
        batch = next(iter(task.splits(batch_size=8, seed=0).train))
        inputs = batch.inputs
        assert isinstance(inputs, TreeBatch) and inputs.batch_size == 8
        internal = inputs.left >= 0
        nodes = torch.arange(len(inputs.values))
        assert (inputs.left[internal] < nodes[internal]).all()
        assert (inputs.right[internal] < nodes[internal]).all()
        assert (inputs.tree_index[inputs.left[internal]] == inputs.tree_index[internal]).all()
        children = inputs.height[inputs.left[internal]], inputs.height[inputs.right[internal]]
        expected_height = 1 + torch.maximum(*children)
        assert torch.equal(inputs.height[internal], expected_height) and (inputs.height[~internal] == 0).all()
        assert (inputs.values[internal] == 0).all()
        labelled = batch.targets != IGNORE_INDEX
        if supervised == "roots":
            assert torch.equal(nodes[labelled], inputs.roots.sort().values)
        else:
            assert labelled.all()


@pytest.mark.data("sst")
@pytest.mark.parametrize("cell", ["tanh", "treelstm"])
def test_unk_gets_no_gradient_from_a_tree_of_known_words(cell):
    """Internal nodes have no input (Tai et al. 2015): they must not read (and train) the
    embedding of id 0, which is `<unk>`."""
    prepared = runner.prepare(
        "recursive", "sst-tree-binary", {"task.train_sentences": "40", "task.eval_sentences": "10",
                                         "task.min_frequency": "1", "arch.cell": cell, "arch.hidden_size": "8",
                                         "arch.embedding_size": "8"})
    architecture, task_cls, config = prepared.architecture, prepared.task, prepared.config
    task = task_cls(config.task_options)
    assert task.words.tokens[0] == "<unk>"
    model, _ = runner.initial_model(architecture(), task, config, seed=0)
    batches = [batch for batch in task.splits(batch_size=1, seed=0).train
               if (batch.inputs.values[batch.inputs.left < 0] != 0).all()]  # every leaf a known word
    assert batches and (batches[0].inputs.left >= 0).any()
    output, _ = model(batches[0])
    output.loss_sum.backward()
    gradient = model.embedding.weight.grad
    assert gradient[batches[0].inputs.values[batches[0].inputs.left < 0]].abs().sum() > 0  # leaves learn
    assert torch.count_nonzero(gradient[0]) == 0, "internal nodes read the <unk> embedding"


# --------------------------------------------------------------------------- end to end


# every labelled phrase of 1,000 training sentences; 300 evaluation sentences (251 in binary)
TINY_SST = {"task.train_sentences": "1000", "task.eval_sentences": "300", "task.train_on": "phrases",
            "arch.hidden_size": "16", "arch.embedding_size": "16", "trainer.batch_size": "50",
            "trainer.max_epochs": "2", "optim.lr": "0.01"}


def _majority_and_prior_entropy(architecture: str, task: str, settings: dict) -> tuple[float, float]:
    """What the best constant predictor scores on the test slice: (accuracy, cross-entropy)."""
    prepared = runner.prepare(architecture, task, settings)
    task_cls, config = prepared.task, prepared.config
    labels = []
    for batch in task_cls(config.task_options).splits(batch_size=64, seed=0).test:
        roots = batch.inputs.roots if isinstance(batch.inputs, TreeBatch) else slice(None)
        labels.append(batch.targets[roots])
    frequencies = torch.bincount(torch.cat(labels)).double()
    frequencies = frequencies[frequencies > 0] / frequencies.sum()
    return float(frequencies.max()), float(-(frequencies * frequencies.log()).sum())


# Measured once (seed 0, one thread): test accuracy / loss, beside the best constant predictor's
# accuracy (majority class) / loss (entropy of the test labels) on the same slice:
#   lstm sst-binary mean       0.781 / 0.488   majority 0.542 / 0.690
#   bilstm sst-fine last       0.353 / 1.461   majority 0.287 / 1.547
#   recursive sst-tree-binary  0.693 / 0.714   majority 0.542 / 0.690  (6 epochs of batches of 25)
# The margins are about half the measured gains: an untrained model or a constant predictor fails.
@pytest.mark.data("sst")
@pytest.mark.parametrize("architecture, task, settings, accuracy_margin, loss_margin", [
    ("lstm", "sst-binary", {"task.pooling": "mean"}, 0.15, 0.1),
    ("bilstm", "sst-fine", {"task.pooling": "last"}, 0.03, 0.04),
    ("recursive", "sst-tree-binary", {"trainer.batch_size": "25", "trainer.max_epochs": "6"}, 0.08, None),
])
def test_sentiment_trains_end_to_end_and_beats_the_majority_class(architecture, task, settings,
                                                                   accuracy_margin, loss_margin, tmp_path):
    if architecture not in registry.architectures():
        pytest.skip(f"architecture '{architecture}' is not installed")
    settings = {**TINY_SST, **settings}
    result = runner.run(architecture, task, settings, store=tmp_path / "r.sqlite", progress=False)
    majority, prior_entropy = _majority_and_prior_entropy(architecture, task, settings)
    assert result.metrics["test/accuracy"] > majority + accuracy_margin
    if loss_margin is not None:
        assert result.metrics["test/loss"] < prior_entropy - loss_margin


def test_a_bad_sentiment_option_is_refused():
    with pytest.raises(BenchmarkError, match="task.pooling must be one of last, mean, max"):
        runner.prepare("lstm", "sst-fine", {"task.pooling": "median"})
    with pytest.raises(BenchmarkError, match="unknown setting 'task.pooling'"):
        runner.prepare("recursive", "sst-tree-fine", {"task.pooling": "mean"})
    with pytest.raises(BenchmarkError, match="reads sequence, task gives tree"):
        runner.prepare("lstm", "sst-tree-binary")
    assert SSTTreeBinary.requirements.structure == "tree" and SSTBinary.requirements.structure == "sequence"
