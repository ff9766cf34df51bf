"""ptb-char: character-level Penn Treebank from the word-level files, scored in bits per character."""

import math

import pytest
import torch
import torch.nn.functional as F

from rnnbench.core import registry

from rnnbench.training import runner
from rnnbench.cli import main
from rnnbench.training.config import resolve
from rnnbench.core.errors import BenchmarkError
from rnnbench.toolkit.metrics import BitsPerCharacter
from rnnbench.tasks.language_modelling import (CharacterModellingOptions, PennTreebank,
                                               PennTreebankCharacters, StreamBatches)

LOG2 = math.log(2)
# the first two lines of ptb.train.txt, and the start of the third
FIRST_LINE = ("aer banknote berlitz calloway centrust cluett fromstein gitano guterman hydro-quebec "
              "ipo kia memotec mlx nahb punts rake regatta rubens sim snack-food ssangyong swapo wachter")
SECOND_LINE = "pierre <unk> N years old will join the board as a nonexecutive director nov. N"
THIRD_START = "mr. <unk> is chairman"


def _chars(**options) -> PennTreebankCharacters:
    return PennTreebankCharacters(CharacterModellingOptions(**options))


def _symbols(line: str, unknown_as_one: bool) -> list[str]:
    """Hand-made: the symbols of one line, `_` between words, `<eos>` at the end."""
    symbols = []
    for position, word in enumerate(line.split()):
        if position:
            symbols.append("_")
        symbols.extend([word] if (word == "<unk>" and unknown_as_one) else list(word))
    return symbols + ["<eos>"]


# --------------------------------------------------------------------------- the character stream


@pytest.mark.data("ptb")
@pytest.mark.parametrize("unknown", ["characters", "symbol"])
def test_the_stream_spells_the_words_with_underscores_and_ends_each_sentence(unknown):
    one = unknown == "symbol"
    task = _chars(unknown=unknown, train_tokens=400)
    train = task.splits(batch_size=1, seed=0).train
    expected = _symbols(FIRST_LINE, one) + _symbols(SECOND_LINE, one) + _symbols(THIRD_START, one)[:-1]
    names = task.vocabulary.decode(train.data[0, :len(expected)].tolist())
    assert names == expected
    assert train.data.numel() == 400
    # <unk>: five characters of the alphabet, or one symbol of its own
    assert ("<unk>" in task.vocabulary) is one
    assert ("<" in task.vocabulary) is (not one) and (">" in task.vocabulary) is (not one)
    assert " " not in task.vocabulary and "\n" not in task.vocabulary


@pytest.mark.data("ptb")
def test_the_whole_streams_have_one_line_end_per_sentence_and_a_50_symbol_alphabet():
    spelled, single = _chars(eval_batch_size=1), _chars(eval_batch_size=1, unknown="symbol")
    streams = {name: task.splits(batch_size=1, seed=0) for name, task in
               (("characters", spelled), ("symbol", single))}
    sizes = {name: [split.data.numel() for split in (s.train, s.val, s.test)] for name, s in streams.items()}
    # characters of the words + one `_` between words + one <eos> per line (42,068 / 3,370 / 3,761 lines)
    assert sizes["characters"] == [5_017_482, 393_042, 442_423]
    # 45,020 / 3,485 / 4,794 <unk> become one symbol instead of five
    assert sizes["symbol"] == [5_017_482 - 4 * 45_020, 393_042 - 4 * 3_485, 442_423 - 4 * 4_794]
    assert len(spelled.vocabulary) == 50 and len(single.vocabulary) == 49
    train = streams["characters"].train.data
    assert (train == spelled.vocabulary.index["<eos>"]).sum().item() == 42_068
    assert (train == spelled.vocabulary.index["_"]).sum().item() == 887_521 - 42_068
    # the same words the word-level task reads, from the same files
    words = spelled.decode(train[0, :20_000]).split()[:-1]   # the last one may be cut
    word_level = PennTreebank(PennTreebank.Options(train_tokens=10_000))
    assert len(words) > 3_000
    assert words == word_level.decode(word_level.splits(1, 0).train.data[0]).split()[:len(words)]


def test_the_task_reuses_the_word_level_stream_batching_with_the_state_carried():
    assert registry.get_task("ptb-char") is PennTreebankCharacters
    requirements = PennTreebankCharacters.requirements
    assert requirements.carries_state and requirements.causal
    assert PennTreebankCharacters.generates_text and PennTreebankCharacters.primary_metric == "bpc"
    assert PennTreebankCharacters.direction == "min"
    assert PennTreebank.version == 1 and PennTreebank.primary_metric == "perplexity"


@pytest.mark.data("ptb")
def test_splits_are_stream_batches_of_bptt_characters():
    task = _chars(train_tokens=1_000, eval_tokens=300, bptt=30)
    splits = task.splits(batch_size=4, seed=0)
    assert all(isinstance(split, StreamBatches) for split in (splits.train, splits.val, splits.test))
    assert splits.train.data.shape == (4, 250) and splits.val.data.shape == (10, 30)
    first = next(iter(splits.train))
    assert first.inputs.values.shape == (4, 30)
    assert torch.equal(first.targets[:, :-1], first.inputs.values[:, 1:])


# --------------------------------------------------------------------------- text in and out


@pytest.mark.data("ptb")
@pytest.mark.parametrize("unknown", ["characters", "symbol"])
def test_decode_turns_underscores_into_spaces_and_line_ends_into_newlines(unknown):
    task = _chars(unknown=unknown)
    text = "the <unk> company said\nit has N shares\n"
    ids = task.encode(text)
    assert task.decode(ids) == text
    assert len(ids) == len(text) - (4 if unknown == "symbol" else 0)
    assert task.decode(task.encode("<eos>new_york")) == "\nnew york"  # the default prime of sample
    vocabulary = task.vocabulary
    assert task.encode("a b\n").tolist() == [vocabulary.index[s] for s in ("a", "_", "b", "<eos>")]
    with pytest.raises(BenchmarkError, match="lower case"):
        task.encode("The company")


# --------------------------------------------------------------------------- the metric


def test_bpc_of_uniform_predictions_is_log2_of_the_alphabet():
    for size in (2, 50, 49):
        metric = BitsPerCharacter()
        metric.update(torch.zeros(37, size), torch.randint(0, size, (37,)))
        assert metric.compute().item() == pytest.approx(math.log2(size), rel=1e-6)


def test_bpc_is_the_mean_negative_log2_probability_by_hand():
    # p = (1/4, 3/4) from logits (0, ln 3); targets 0, 1, 1: bits 2, log2(4/3), log2(4/3)
    logits = torch.tensor([[0.0, math.log(3)]] * 3)
    metric = BitsPerCharacter()
    metric.update(logits, torch.tensor([0, 1, 1]))
    assert metric.compute().item() == pytest.approx((2 + 2 * math.log2(4 / 3)) / 3, rel=1e-6)


def test_bpc_over_several_batches_equals_bpc_over_one():
    torch.manual_seed(0)
    logits, targets = torch.randn(100, 50) * 3, torch.randint(0, 50, (100,))
    whole = BitsPerCharacter()
    whole.update(logits, targets)
    pieces = BitsPerCharacter()
    for start, stop in ((0, 7), (7, 60), (60, 100)):   # unequal batches: a mean of means would differ
        pieces.update(logits[start:stop], targets[start:stop])
    assert pieces.compute().item() == pytest.approx(whole.compute().item(), rel=1e-6)
    mean_of_means = sum(F.cross_entropy(logits[a:b], targets[a:b]).item() for a, b in
                        ((0, 7), (7, 60), (60, 100))) / 3 / LOG2
    assert mean_of_means != pytest.approx(whole.compute().item(), rel=1e-3)   # what it must not be
    expected = F.cross_entropy(logits, targets).item() / LOG2
    assert whole.compute().item() == pytest.approx(expected, rel=1e-6)
    pieces.reset()
    pieces.update(logits[:7], targets[:7])
    assert pieces.compute().item() == pytest.approx(F.cross_entropy(logits[:7], targets[:7]).item() / LOG2,
                                                    rel=1e-6)


# --------------------------------------------------------------------------- settings and references


def test_the_defaults_and_the_quick_preset_resolve():
    lstm = registry.get_architecture("lstm")
    flat = resolve(lstm, PennTreebankCharacters).flat()
    expected = {"optim.optimizer": "adam", "optim.lr": 2e-3, "optim.clip_norm": 1.0, "task.bptt": 100,
                "task.unknown": "characters", "arch.hidden_size": 256, "trainer.batch_size": 64}
    assert {key: flat[key] for key in expected} == expected
    quick = resolve(lstm, PennTreebankCharacters, preset="quick").flat()
    assert quick["task.train_tokens"] <= 20_000 and quick["arch.hidden_size"] <= 64
    assert quick["trainer.max_epochs"] <= 2
    with pytest.raises(BenchmarkError):
        resolve(lstm, PennTreebankCharacters, {"task.unknown": "word"})


def test_references_are_the_published_test_bpc_with_the_unk_treatment():
    spelled = _chars().references()
    assert [(ref.value, ref.source) for ref in spelled] == [
        (1.38, "Cooijmans et al. 2017"), (1.32, "Cooijmans et al. 2017"),
        (1.27, "Krueger et al. 2017"), (1.175, "Merity et al. 2018")]
    assert all("<unk>" in ref.note for ref in spelled)
    assert all("not comparable" in ref.note for ref in _chars(unknown="symbol").references())


# --------------------------------------------------------------------------- end to end


@pytest.mark.data("ptb")
def test_a_quick_run_reports_bpc_of_the_whole_split_and_samples_text(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    settings = {"task.train_tokens": "4000", "task.eval_tokens": "800", "optim.lr": "0.01"}
    result = runner.run("lstm", "ptb-char", settings, preset="quick", store=store, progress=False)
    assert result.status == "completed"
    metrics = result.metrics
    assert metrics["test/bpc"] == pytest.approx(metrics["test/loss"] / LOG2, rel=1e-5)
    assert metrics["val/bpc"] < math.log2(50) - 0.5   # it learned something beyond a uniform guess

    command = ["sample", result.run_id, "--store", str(store), "--length", "60",
               "--prime", "the company", "--seed", "3"]
    assert main(command) == 0
    first = capsys.readouterr().out
    assert main(command) == 0
    assert capsys.readouterr().out == first   # the same seed, the same text
    assert first.startswith("the company") and len(first) == len("the company") + 60 + 1
    alphabet = set(_chars().decode(torch.arange(50)))
    assert set(first) <= alphabet and "_" not in first
    assert main(["sample", result.run_id, "--store", str(store), "--length", "20"]) == 0  # prime <eos>
    assert capsys.readouterr().out.startswith("\n")


def test_sample_help_says_what_a_token_is_for_each_language_model(capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    help_text = "".join(capsys.readouterr().out.split())     # argparse wraps lines, at hyphens too
    assert "tokenstogenerate:words(ptb)orcharacters(ptb-char)" in help_text
