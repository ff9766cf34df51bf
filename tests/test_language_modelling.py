import math
import signal

import pytest
import torch
import torch.nn.functional as F

from helpers import QUICK, ctrl_c_at

import rnnbench.training.resume
from rnnbench.core import registry
from rnnbench.training import runner
from rnnbench.cli import main
from rnnbench.training.config import resolve
from rnnbench.core.errors import BenchmarkError
from rnnbench.core.contracts import Batch, SequenceBatch
from rnnbench.training.model import build_model, count_parameters
from rnnbench.store import ResultStore
from rnnbench.toolkit.metrics import Perplexity
from rnnbench.tasks.language_modelling import LanguageModellingOptions, PennTreebank, StreamBatches

pytestmark = pytest.mark.data("ptb")

TINY_PTB = {"task.train_tokens": "3000", "task.eval_tokens": "600", "task.eval_batch_size": "2",
            "arch.hidden_size": "16", "trainer.batch_size": "4", "trainer.max_epochs": "1"}


def _ptb(**options) -> PennTreebank:
    return PennTreebank(LanguageModellingOptions(**options))


# --------------------------------------------------------------------------- data


def test_the_streams_are_mikolovs_split_with_an_end_of_sentence_token_per_line():
    task = _ptb()
    splits = task.splits(batch_size=1, seed=0)
    # words (MANIFEST) + one <eos> per line: 887,521 + 42,068; 70,390 + 3,370; 78,669 + 3,761
    sizes = [split.data.numel() for split in (splits.train, splits.val, splits.test)]
    assert sizes == [929_589, 73_760, 82_430]
    assert len(task.vocabulary) == 10_000
    assert "<eos>" in task.vocabulary and "<unk>" in task.vocabulary
    first_words = "aer banknote berlitz calloway centrust cluett fromstein gitano guterman".split()
    assert task.vocabulary.decode(splits.train.data[0, :9].tolist()) == first_words


def test_stream_batches_continue_each_row_and_shift_the_targets_by_one():
    tokens = torch.arange(103)
    batches = list(StreamBatches(tokens, rows=4, bptt=7))  # rows of 25 tokens: 24 predictions
    assert len(batches) == len(StreamBatches(tokens, rows=4, bptt=7)) == 4
    assert [batch.inputs.values.shape[1] for batch in batches] == [7, 7, 7, 3]
    inputs = torch.cat([batch.inputs.values for batch in batches], dim=1)
    targets = torch.cat([batch.targets for batch in batches], dim=1)
    rows = tokens[:100].view(4, 25)
    assert torch.equal(inputs, rows[:, :-1]) and torch.equal(targets, rows[:, 1:])


def test_perplexity_is_exp_of_the_mean_token_nll_over_everything_seen():
    metric = Perplexity()
    logits = torch.randn(2, 7, 11)
    targets = torch.randint(0, 11, (2, 7))
    metric.update(logits[0], targets[0])
    metric.update(logits[1], targets[1])
    expected = math.exp(F.cross_entropy(logits.flatten(0, 1), targets.flatten()).item())
    assert metric.compute().item() == pytest.approx(expected, rel=1e-6)
    uniform = Perplexity()
    uniform.update(torch.zeros(5, 10_000), torch.randint(0, 10_000, (5,)))
    assert uniform.compute().item() == pytest.approx(10_000, rel=1e-6)


def test_carrying_the_state_across_windows_reads_the_stream_as_one_sequence():
    """The per-window NLL with the state carried equals reading the whole stream at once."""
    torch.manual_seed(0)
    task = _ptb(bptt=5, train_tokens=200)
    architecture = registry.get_architecture("lstm")
    config = resolve(architecture, PennTreebank, {"arch.hidden_size": "8"})
    model = build_model(architecture(), task, config, 8).eval()
    stream = task.splits(batch_size=1, seed=0).train
    with torch.no_grad():
        state, total = None, 0.0
        for batch in stream:
            output, encoded = model(batch, state)
            state, total = encoded.state, total + output.loss_sum.item()
        whole = stream.data
        inputs = SequenceBatch(whole[:, :-1], torch.tensor([whole.shape[1] - 1]))
        single, _ = model(Batch(inputs, whole[:, 1:]))
    assert total == pytest.approx(single.loss_sum.item(), rel=1e-5)


# --------------------------------------------------------------------------- the Zaremba preset


def test_zaremba_small_is_the_published_configuration():
    config = resolve(registry.get_architecture("lstm"), PennTreebank, preset="zaremba-small")
    flat = config.flat()
    expected = {"arch.num_layers": 2, "arch.hidden_size": 200, "arch.dropout": 0.0, "task.bptt": 20,
                "task.tie_weights": False, "trainer.batch_size": 20, "optim.optimizer": "sgd",
                "optim.lr": 1.0, "optim.schedule": "decay", "optim.decay_start": 5,
                "optim.decay_factor": 0.5, "optim.clip_norm": 5.0, "optim.init_scale": 0.1,
                "optim.loss_reduction": "sequence_sum", "trainer.max_epochs": 13,
                "trainer.max_steps": None, "trainer.early_stopping": False}
    assert {key: flat[key] for key in expected} == expected
    # embedding 10k x 200, two LSTM layers 4 x (200 x 400 + 2 x 200), softmax 200 x 10k + 10k
    model = build_model(registry.get_architecture("lstm")(), _ptb(bptt=20), config, 200)
    assert count_parameters(model) == 2_000_000 + 2 * 4 * (200 * 400 + 400) + 2_010_000


def test_the_learning_rate_is_1_for_four_epochs_then_halves_every_epoch():
    config = resolve(registry.get_architecture("lstm"), PennTreebank, preset="zaremba-small")
    model = torch.nn.Linear(2, 2)
    module = runner.TrainingModule.__new__(runner.TrainingModule)
    torch.nn.Module.__init__(module)
    module.config, module.model, module.steps_per_epoch = config, model, 2324
    scheduled = module.configure_optimizers()
    optimizer, scheduler = scheduled["optimizer"], scheduled["lr_scheduler"]["scheduler"]
    assert scheduled["lr_scheduler"]["interval"] == "epoch"
    rates = []
    for _ in range(13):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == [1, 1, 1, 1] + [0.5 ** k for k in range(1, 10)]


def test_weight_tying_shares_the_embedding_with_the_output_layer():
    architecture = registry.get_architecture("lstm")
    config = resolve(architecture, PennTreebank, {"arch.hidden_size": "16", "task.tie_weights": "true"})
    tied = build_model(architecture(), _ptb(tie_weights=True), config, 16)
    untied = build_model(architecture(), _ptb(), config, 16)
    assert tied.head.linear.weight is tied.embedding.weight
    assert count_parameters(untied) - count_parameters(tied) == 10_000 * 16


def test_ptb_needs_a_causal_encoder():
    with pytest.raises(BenchmarkError, match="not causal"):
        runner.prepare("bilstm", "ptb")


# --------------------------------------------------------------------------- end to end


def test_a_tiny_ptb_run_trains_and_reports_perplexity_of_the_whole_split(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    result = runner.run("lstm", "ptb", TINY_PTB, store=store, progress=False)
    metrics = result.metrics
    assert metrics["test/perplexity"] == pytest.approx(math.exp(metrics["test/loss"]), rel=1e-4)
    assert metrics["val/perplexity"] < 10_000 * 0.5  # well below the uniform guess after one epoch
    # rnnbench sample reads the stored run and its checkpoint
    assert main(["sample", result.run_id, "--store", str(store), "--length", "12",
                 "--prime", "the company", "--seed", "3"]) == 0
    first = capsys.readouterr().out.split()
    assert main(["sample", result.run_id, "--store", str(store), "--length", "12",
                 "--prime", "the company", "--seed", "3"]) == 0
    assert capsys.readouterr().out.split() == first
    vocabulary = _ptb().vocabulary
    assert first[:2] == ["the", "company"] and all(word in vocabulary for word in first)
    # a prime word outside the vocabulary is named, not silently read as <unk>
    assert main(["sample", result.run_id[:8], "--store", str(store), "--prime", "The company"]) == 2
    assert "'The' not in the ptb vocabulary" in capsys.readouterr().err.replace("\n", " ")
    assert main(["sample", result.run_id[:8], "--store", str(store), "--length", "3",
                 "--prime", "the <unk> company"]) == 0


def test_sampling_from_a_task_that_is_not_a_language_model_is_refused(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    result = runner.run("lstm", "adding", QUICK, store=store, progress=False)
    assert main(["sample", result.run_id, "--store", str(store)]) == 2
    assert "not a language model" in capsys.readouterr().err


@pytest.mark.parametrize("task, settings", [
    ("copy", {"task.length": "5", "task.train_size": "160", "task.eval_size": "32",
              "arch.hidden_size": "8", "trainer.batch_size": "32", "trainer.max_steps": "10",
              "trainer.val_every_steps": "none", "trainer.early_stopping": "false"}),
    ("ptb", {**TINY_PTB, "trainer.max_epochs": "2"}),
])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_resumes_mid_epoch_from_its_last_checkpoint(task, settings, signum, tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM, which a sweep sends its workers) mid-epoch finishes the batch, writes the
    resume point and stops; the same command again continues at the next batch, with the carried
    state of truncated BPTT, so the result is exactly that of an uninterrupted run."""
    monkeypatch.setattr(rnnbench.training.resume, "CHECKPOINT_EVERY_STEPS", 3)
    reference = runner.run("lstm", task, settings, store=tmp_path / "a" / "r.sqlite", progress=False)
    steps_per_epoch = 5 if task == "copy" else len(_ptb(train_tokens=3000).splits(4, 0).train)
    interrupt_at = steps_per_epoch + 1  # in the second epoch, between two periodic checkpoints
    original = ctrl_c_at(interrupt_at, monkeypatch, signum)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    store = ResultStore(tmp_path / "b" / "r.sqlite")
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run("lstm", task, settings, store=store, progress=False)
        assert signal.getsignal(signal.SIGTERM) == handlers[signal.SIGTERM]   # the run gave it back
    finally:
        for number, handler in handlers.items():   # Lightning ignores SIGINT after a Ctrl-C
            signal.signal(number, handler)
    assert store.status_of(reference.run_id) == "interrupted"
    assert "SystemExit" not in store.get(reference.run_id).error
    rounds_before = {epoch for epoch, *_ in store.history(reference.run_id)}
    assert rounds_before == {0}

    trained = []
    def counted(self, batch, index):
        trained.append(self.global_step)
        return original(self, batch, index)

    monkeypatch.setattr(runner.TrainingModule, "training_step", counted)
    resumed = runner.run("lstm", task, settings, store=store, progress=False)
    assert resumed.status == "completed"
    assert trained[0] == interrupt_at + 1  # the interrupted batch was finished, nothing replayed
    assert {epoch for epoch, *_ in store.history(resumed.run_id)} == {0, 1}
    assert resumed.metrics == pytest.approx(reference.metrics, rel=1e-6)


@pytest.mark.slow
def test_zaremba_small_reaches_the_published_test_perplexity(tmp_path):
    """The headline: within 5% of 114.5 (about 35 minutes of an idle 2-core CPU, longer when shared)."""
    result = runner.run("lstm", "ptb", preset="zaremba-small", store=tmp_path / "r.sqlite", progress=False)
    assert result.metrics["test/perplexity"] == pytest.approx(114.5, rel=0.05)
