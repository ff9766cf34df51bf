import itertools
import math

import pytest
import torch

from rnnbench.training import runner
from rnnbench.core.contracts import IGNORE_INDEX
from rnnbench.toolkit.crf import ConditionalRandomField
from rnnbench.core.errors import BenchmarkError
from rnnbench.toolkit.metrics import EntityScore, TokenAccuracy
from rnnbench.tasks.tagging import (CoNLL2003NER, TaggingOptions, UniversalPOS,
                           iob1_to_iob2, read_conll2003, read_conllu)

TINY_TAGGING = {"task.train_sentences": "300", "task.eval_sentences": "60", "arch.hidden_size": "16",
                "arch.embedding_size": "16", "trainer.batch_size": "16", "trainer.max_epochs": "2",
                "optim.lr": "0.01"}


# --------------------------------------------------------------------------- reading


CONLLU_FIXTURE = """# sent_id = fixture-1
# text = I don't know.
1	I	I	PRON	PRP	_	3	nsubj	_	_
2-3	don't	_	_	_	_	_	_	_	_
2	do	do	AUX	VBP	_	4	aux	_	_
3	n't	not	PART	RB	_	4	advmod	_	_
4	know	know	VERB	VB	_	0	root	_	SpaceAfter=No
4.1	knew	know	VERB	VBD	_	_	_	4:conj	CopyOf=4
5	.	.	PUNCT	.	_	4	punct	_	_

"""


def test_conllu_reading_tags_syntactic_words_and_skips_ranges_and_empty_nodes(tmp_path):
    path = tmp_path / "fixture.conllu"
    path.write_text(CONLLU_FIXTURE)
    assert read_conllu(path) == [(["I", "do", "n't", "know", "."], ["PRON", "AUX", "PART", "VERB", "PUNCT"])]


@pytest.mark.data("ud_english_ewt")
def test_ud_english_ewt_has_the_published_sentence_and_word_counts(data_dir):
    counts = {}
    for split in ("train", "dev", "test"):
        sentences = read_conllu(data_dir / "ud_english_ewt" / f"en_ewt-ud-{split}.conllu")
        counts[split] = (len(sentences), sum(len(words) for words, _ in sentences))
    assert counts == {"train": (12_544, 204_577), "dev": (2_001, 25_147), "test": (2_077, 25_094)}
    task = UniversalPOS(TaggingOptions())
    assert len(task.tags) == 17  # the UPOS tag set


def test_iob1_becomes_iob2():
    assert iob1_to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-ORG"]) == \
        ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-ORG"]


@pytest.mark.data("conll2003")
def test_conll2003_has_the_published_counts_and_valid_iob2_tags(data_dir):
    counts = {}
    for split in ("train", "valid", "test"):
        sentences = read_conll2003(data_dir / "conll2003" / f"{split}.txt")
        counts[split] = (len(sentences), sum(len(words) for words, _ in sentences))
        for _, tags in sentences:
            for previous, tag in zip(["O"] + tags, tags):
                assert not tag.startswith("I-") or previous[2:] == tag[2:]
    assert counts == {"train": (14_041, 203_621), "valid": (3_250, 51_362), "test": (3_453, 46_435)}
    task = CoNLL2003NER(TaggingOptions())
    entity_tags = [f"{prefix}-{kind}" for prefix in "BI" for kind in ("PER", "LOC", "ORG", "MISC")]
    assert sorted(task.tags.tokens) == sorted(["O"] + entity_tags)


def test_a_malformed_conll2003_line_is_reported_with_its_place(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("EU NNP B-NP B-ORG\nrejects VBZ\n")
    with pytest.raises(BenchmarkError, match="bad.txt:2: expected 4 columns"):
        read_conll2003(path)


# --------------------------------------------------------------------------- metrics


# word gold predicted, as fed to conlleval; blank lines end sentences
CONLLEVAL_FIXTURE = """\
EU B-ORG B-ORG
rejects O O
German B-MISC B-MISC
call O O
British B-MISC I-MISC
lamb O O

Peter B-PER B-PER
Blackburn I-PER I-PER

The O O
European B-ORG I-ORG
Commission I-ORG I-ORG
on O O
Thursday O B-MISC
German B-MISC B-LOC

France B-LOC B-LOC
and O O
Britain B-LOC I-LOC
backed O I-LOC
Fischler B-PER B-PER

Rabinovich B-PER I-PER
is O O

Welsh B-ORG B-ORG
National I-ORG I-ORG
Farmers I-ORG B-ORG
Union I-ORG I-ORG

John B-PER B-PER
Smith I-PER I-LOC
said O O
"""


def test_entity_scores_equal_conllevals_on_a_fixture_with_a_known_answer():
    """conlleval (2004-01-26) on this text prints: 12 phrases, found 15, correct 8;
    precision 53.33%, recall 66.67%, FB1 59.26 (8/15, 8/12, 16/27)."""
    sentences = [[line.split() for line in block.splitlines()] for block in CONLLEVAL_FIXTURE.split("\n\n")]
    tags = sorted({tag for sentence in sentences for _, *pair in sentence for tag in pair})
    index = {tag: i for i, tag in enumerate(tags)}
    length = max(len(sentence) for sentence in sentences)
    gold = torch.full((len(sentences), length), IGNORE_INDEX)
    predicted = torch.zeros((len(sentences), length), dtype=torch.long)
    for row, sentence in enumerate(sentences):
        for column, (_, gold_tag, predicted_tag) in enumerate(sentence):
            gold[row, column], predicted[row, column] = index[gold_tag], index[predicted_tag]
    scores = {}
    for name in ("precision", "recall", "f1"):
        metric = EntityScore(tags, name)
        metric.update(predicted[:3], gold[:3])  # two batches: counts add up over the split
        metric.update(predicted[3:], gold[3:])
        scores[name] = metric.compute().item()
    assert scores["precision"] == pytest.approx(8 / 15)
    assert scores["recall"] == pytest.approx(8 / 12)
    assert scores["f1"] == pytest.approx(16 / 27)
    assert round(100 * scores["f1"], 2) == 59.26


def test_token_accuracy_ignores_padding_and_reads_scores_or_ids():
    targets = torch.tensor([[1, 2, IGNORE_INDEX], [0, 0, 1]])
    ids = torch.tensor([[1, 0, 2], [0, 0, 0]])
    metric = TokenAccuracy()
    metric.update(ids, targets)
    assert metric.compute().item() == pytest.approx(3 / 5)
    scores = TokenAccuracy()
    scores.update(torch.nn.functional.one_hot(ids, 3).float(), targets)
    assert scores.compute().item() == pytest.approx(3 / 5)


# --------------------------------------------------------------------------- CRF


@torch.no_grad()
def _brute_force(crf: ConditionalRandomField, emissions: torch.Tensor) -> tuple[float, list[int]]:
    """log Z and the best path by enumerating every tag sequence of one sentence."""
    steps, tags = emissions.shape
    scores = {}
    for path in itertools.product(range(tags), repeat=steps):
        score = crf.start[path[0]] + crf.end[path[-1]] + sum(emissions[t, path[t]] for t in range(steps))
        score = score + sum(crf.transitions[path[t - 1], path[t]] for t in range(1, steps))
        scores[path] = float(score)
    best = max(scores, key=scores.get)
    return math.log(sum(math.exp(value) for value in scores.values())), list(best)


def test_the_crf_normaliser_and_viterbi_path_equal_brute_force_with_padding():
    torch.manual_seed(1)
    crf = ConditionalRandomField(3)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.normal_()
    emissions = torch.randn(2, 4, 3)
    lengths = torch.tensor([4, 2])
    mask = torch.arange(4).unsqueeze(0) < lengths.unsqueeze(1)
    tags = torch.tensor([[0, 2, 1, 1], [2, 0, IGNORE_INDEX, IGNORE_INDEX]])
    with torch.no_grad():
        log_likelihood = crf.log_likelihood(emissions, tags, mask)
        decoded = crf.decode(emissions, mask)
    for row, length in enumerate(lengths.tolist()):
        log_partition, best = _brute_force(crf, emissions[row, :length])
        gold = tags[row, :length].tolist()
        gold_score = (crf.start[gold[0]].detach() + crf.end[gold[-1]].detach()
                      + sum(emissions[row, t, gold[t]] for t in range(length))
                      + sum(crf.transitions[gold[t - 1], gold[t]].detach() for t in range(1, length)))
        assert log_likelihood[row].item() == pytest.approx(float(gold_score) - log_partition, abs=1e-4)
        assert decoded[row, :length].tolist() == best
        assert (decoded[row, length:] == IGNORE_INDEX).all()


# --------------------------------------------------------------------------- end to end


@pytest.mark.data("ud_english_ewt")
def test_pos_trains_end_to_end_on_a_slice(tmp_path):
    result = runner.run("bilstm", "pos", TINY_TAGGING, store=tmp_path / "r.sqlite", progress=False)
    # measured once (seed 0, one thread): 0.4875; the commonest tag (NOUN) is 0.143 of this slice
    assert result.metrics["test/accuracy"] > 0.3


# 2,000 training sentences, 200 evaluation sentences (2,836 test tokens)
NER_SLICE = {**TINY_TAGGING, "task.output_layer": "crf", "task.train_sentences": "2000",
             "task.eval_sentences": "200", "trainer.batch_size": "32", "trainer.max_epochs": "3",
             "optim.lr": "0.02"}


@pytest.mark.data("conll2003")
def test_ner_with_a_crf_trains_end_to_end_and_finds_entities(tmp_path):
    result = runner.run("bilstm", "ner", NER_SLICE, store=tmp_path / "r.sqlite", progress=False)
    metrics = result.metrics
    # measured once (seed 0, one thread): F1 0.487 (precision 0.632, recall 0.396), loss 0.297
    # nats per token. Tagging everything O (0.830 of the tokens) scores F1 0, and the entropy of
    # the tags on this slice is 0.776: a model that learnt nothing from the words fails both.
    assert metrics["test/f1"] > 0.3
    assert metrics["test/loss"] < 0.5
    precision, recall = metrics["test/precision"], metrics["test/recall"]
    assert metrics["test/f1"] == pytest.approx(2 * precision * recall / (precision + recall), rel=1e-4)


def test_a_bad_tagging_option_is_refused():
    with pytest.raises(BenchmarkError, match="task.output_layer must be one of softmax, crf"):
        runner.prepare("bilstm", "ner", {"task.output_layer": "hmm"})
    with pytest.raises(BenchmarkError, match="min_frequency must be at least 1"):
        UniversalPOS(TaggingOptions(min_frequency=0))


# --------------------------------------------------------------------------- vocabulary and batching


def test_the_vocabulary_counts_the_training_split_only_and_maps_unknown_words():
    from rnnbench.toolkit.text import Vocabulary
    training = [["The", "cat", "sat"], ["the", "cat", "ran"], ["a", "cat"]]
    vocabulary = Vocabulary.from_corpus(training, min_frequency=2, lowercase=True, unknown="<unk>")
    assert vocabulary.tokens == ["<unk>", "cat", "the"]  # reserved first, then by frequency
    assert vocabulary.encode(["THE", "dog", "cat"]).tolist() == [2, 0, 1]
    cased = Vocabulary.from_corpus(training, unknown="<unk>")
    assert "The" in cased and "the" in cased and len(cased) == 7
    labels = Vocabulary.from_corpus([["B-PER", "O"]], unknown=None)
    with pytest.raises(BenchmarkError, match="'I-XYZ' is not one of the 2 known labels"):
        labels.encode(["I-XYZ"])


def test_length_buckets_cover_every_example_once_with_little_padding():
    from rnnbench.core.contracts import Batch, SequenceBatch
    from rnnbench.toolkit.text import BucketBatches, spread
    lengths = torch.randint(1, 50, (103,), generator=torch.Generator().manual_seed(0))
    seen = []

    def make_batch(indices):
        seen.append(indices)
        return Batch(SequenceBatch(torch.zeros(len(indices), 1), lengths[indices]), indices)

    batches = BucketBatches(lengths, 10, make_batch, shuffle=True, seed=3)
    first = [batch.targets.tolist() for batch in batches]
    assert len(first) == len(batches) == 11
    assert sorted(index for batch in first for index in batch) == list(range(103))
    spans = [int(lengths[batch].max() - lengths[batch].min()) for batch in map(torch.tensor, first)]
    assert max(spans) <= 10  # neighbours in length order: a few steps of padding at most
    second = [batch.targets.tolist() for batch in batches]
    assert second != first  # reshuffled every pass...
    replay = BucketBatches(lengths, 10, make_batch, shuffle=True, seed=3)
    assert [batch.targets.tolist() for batch in replay] == first  # ...reproducibly
    assert spread(list(range(10)), 3) == [0, 3, 6] and spread([1, 2], None) == [1, 2]
