"""The tricks of the trade as uniform settings, applied where they make sense and refused elsewhere:
forget-gate bias (`arch.forget_bias`), orthogonal recurrent matrices (`arch.recurrent_init`),
clipping by norm or by value (`optim.clip_norm`, `optim.clip_value`), dropout between layers with
one mask per sequence (deep_rnn's `arch.variational`), weight tying (`task.tie_weights`), and
bucketing by length against random batches (`task.batching`, with `train/padding_share`)."""

from __future__ import annotations

import pytest
import torch

from helpers import QUICK, at_batch_end
from rnnbench.core import registry
from rnnbench.training import runner
from rnnbench.core.contracts import Encoder, SequenceBatch
from rnnbench.core.errors import BenchmarkError
from rnnbench.training.model import _encoders

SMALL = {"arch.hidden_size": "8"}
STACK = {**SMALL, "arch.num_layers": "2"}
RECURRENT = {"rnn": STACK, "gru": STACK, "lstm": STACK, "bilstm": STACK, "deep_rnn": STACK,
             "jordan": SMALL, "leaky_rnn": SMALL, "skip_rnn": {**SMALL, "arch.delays": "1+2+4"}}


def _model(architecture: str, task: str, settings: dict[str, str], seed: int = 0):
    prepared = runner.prepare(architecture, task, settings, seed=seed)
    task_instance = prepared.task(prepared.config.task_options)
    return runner.initial_model(prepared.architecture(), task_instance, prepared.config, seed)[0]


def _task_for(architecture: str) -> str:
    return "sequential_digits" if registry.get_architecture(architecture).capabilities.causal is False \
        else "copy"


# --------------------------------------------------------------------------- run ids


def test_the_new_settings_at_their_defaults_keep_every_run_id():
    plain = runner.prepare("lstm", "copy")
    explicit = runner.prepare("lstm", "copy", {"arch.forget_bias": "none", "arch.recurrent_init": "default",
                                               "optim.clip_value": "none"})
    assert explicit.run_id == plain.run_id == "af5172e53010a2a7"
    assert runner.prepare("lstm", "pos", {"task.batching": "bucketed"}).run_id == \
        runner.prepare("lstm", "pos").run_id
    for changed in ({"arch.forget_bias": "1"}, {"arch.recurrent_init": "orthogonal"},
                    {"optim.clip_value": "0.5", "optim.clip_norm": "none"}):
        assert runner.prepare("lstm", "copy", changed).run_id != plain.run_id
    assert runner.prepare("lstm", "pos", {"task.batching": "random"}).run_id != \
        runner.prepare("lstm", "pos").run_id
    flat = plain.config.flat()   # recorded with every run all the same
    assert flat["arch.forget_bias"] is None and flat["arch.recurrent_init"] == "default"
    assert flat["optim.clip_value"] is None


# --------------------------------------------------------------------------- forget-gate bias


@pytest.mark.parametrize("architecture,settings", [
    ("lstm", STACK), ("lstm", {**STACK, "arch.dropout": "0.2"}),    # one fused module / one per layer
    ("bilstm", STACK), ("deep_rnn", {**STACK, "arch.cell": "lstm"})])
def test_the_forget_gate_bias_sums_to_the_value_and_nothing_else_moves(architecture, settings):
    task = "sequential_digits" if architecture == "bilstm" else "copy"
    default = _model(architecture, task, settings)
    model = _model(architecture, task, {**settings, "arch.forget_bias": "1.5"})
    layers = {"lstm": 2, "bilstm": 4, "deep_rnn": 2}[architecture]
    groups = model.encoder.forget_gate_biases()
    assert len(groups) == layers and all(len(group) == 2 for group in groups)
    hidden = 8
    for name, parameter in model.encoder.named_parameters():
        before = dict(default.encoder.named_parameters())[name]
        if "bias" in name:
            forget = parameter[hidden:2 * hidden]
            assert torch.equal(forget, torch.full((hidden,), 0.75))       # b_ih + b_hh = 1.5
            rest = torch.cat([parameter[:hidden], parameter[2 * hidden:]])
            assert torch.equal(rest, torch.cat([before[:hidden], before[2 * hidden:]]))
        else:
            assert torch.equal(parameter, before)


def test_the_forget_gate_bias_is_set_after_init_scale_and_in_the_decoder_too():
    model = _model("lstm", "copy", {**SMALL, "optim.init_scale": "0.1", "arch.forget_bias": "1"})
    bias_ih, bias_hh = model.encoder.rnn.bias_ih_l0, model.encoder.rnn.bias_hh_l0
    assert torch.equal((bias_ih + bias_hh)[8:16], torch.ones(8))
    assert float(bias_ih[:8].detach().abs().max()) <= 0.1
    seq2seq = _model("lstm", "reverse", {**SMALL, "arch.forget_bias": "1", "task.train_size": "20",
                                        "task.eval_size": "5"})
    encoders = _encoders(seq2seq)
    assert len(encoders) == 2 and encoders[0] is seq2seq.encoder   # the source encoder and the decoder
    for encoder in encoders:
        for group in encoder.forget_gate_biases():
            assert torch.equal(sum(group), torch.ones(8))


@pytest.mark.parametrize("architecture,task,settings,reason", [
    ("gru", "copy", {}, "'gru' has no forget gate"),
    ("rnn", "copy", {}, "'rnn' has no forget gate"),
    ("jordan", "copy", {}, "'jordan' has no forget gate"),
    ("esn", "copy", {}, "'esn' has no forget gate"),
    ("deep_rnn", "copy", {"arch.cell": "gru"}, "'deep_rnn' with .*cell='gru'.* has no forget gate"),
    ("recursive", "sst-tree-binary", {}, "'recursive' has no forget gate"),
    ("lstm", "reverse", {"task.decoder": "gru"}, "the decoder 'gru' has no forget gate.*task.decoder=lstm"),
])
def test_a_forget_gate_bias_is_refused_without_a_forget_gate(architecture, task, settings, reason):
    with pytest.raises(BenchmarkError, match=reason) as error:
        runner.prepare(architecture, task, {**settings, "arch.forget_bias": "1"})
    assert "\n" not in str(error.value) and "drop arch.forget_bias" in str(error.value)


# --------------------------------------------------------------------------- orthogonal recurrence


@pytest.mark.parametrize("architecture", sorted(RECURRENT))
def test_orthogonal_init_makes_every_recurrent_matrix_orthogonal(architecture):
    settings = {**RECURRENT[architecture], "arch.recurrent_init": "orthogonal"}
    task = _task_for(architecture)
    model = _model(architecture, task, settings)
    matrices = model.encoder.recurrent_matrices()
    expected = {"rnn": 2, "gru": 6, "lstm": 8, "bilstm": 16, "deep_rnn": 8, "jordan": 2,
                "leaky_rnn": 1, "skip_rnn": 3}[architecture]
    assert len(matrices) == expected
    for matrix in matrices:
        assert matrix.shape == (8, 8)
        torch.testing.assert_close(matrix @ matrix.T, torch.eye(8), atol=1e-5, rtol=0)
    default = _model(architecture, task, RECURRENT[architecture])
    assert not any(torch.allclose(m @ m.T, torch.eye(8), atol=1e-3)
                   for m in default.encoder.recurrent_matrices())
    # the rest is untouched: the draws come after the build
    for (name, parameter), before in zip(model.encoder.named_parameters(), default.encoder.parameters()):
        if not any(part in name for part in ("weight_hh", "feedback", "output_projection", "recurrent.")):
            assert torch.equal(parameter, before), name


def test_orthogonal_init_is_deterministic_per_seed():
    first = _model("gru", "copy", {**SMALL, "arch.recurrent_init": "orthogonal"}, seed=4)
    second = _model("gru", "copy", {**SMALL, "arch.recurrent_init": "orthogonal"}, seed=4)
    other = _model("gru", "copy", {**SMALL, "arch.recurrent_init": "orthogonal"}, seed=5)
    assert torch.equal(first.encoder.rnn.weight_hh_l0, second.encoder.rnn.weight_hh_l0)
    assert not torch.equal(first.encoder.rnn.weight_hh_l0, other.encoder.rnn.weight_hh_l0)


@pytest.mark.parametrize("architecture,task,reason", [
    ("esn", "copy", "'esn' declares none.*never trained"),
    ("recursive", "sst-tree-binary", "'recursive' declares none"),
    ("pixelrnn", "binarized_fmnist", "'pixelrnn' declares none"),
])
def test_orthogonal_init_is_refused_without_trained_recurrent_matrices(architecture, task, reason):
    with pytest.raises(BenchmarkError, match=reason) as error:
        runner.prepare(architecture, task, {"arch.recurrent_init": "orthogonal"})
    assert "arch.recurrent_init=default" in str(error.value)


def test_an_encoder_that_lists_a_non_square_matrix_is_a_plugin_error():
    class Broken(Encoder):
        output_size = 4

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(4, 3))

        def recurrent_matrices(self):
            return [self.weight]

    from rnnbench.training.model import initialise
    prepared = runner.prepare("rnn", "copy", {"arch.recurrent_init": "orthogonal"})
    holder = torch.nn.Module()
    holder.encoder = Broken()
    with pytest.raises(BenchmarkError, match=r"\(4, 3\) matrix; each must be square"):
        initialise(holder, prepared.config)


# --------------------------------------------------------------------------- clipping


def _largest_gradient_entry(trainer, module, batch_index) -> float:
    return max(float(p.grad.abs().max()) for p in module.parameters() if p.grad is not None)


def _gradient_norm(trainer, module, batch_index) -> float:
    return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in module.parameters()
                                                       if p.grad is not None])))


def test_clipping_by_value_bounds_every_gradient_entry(tmp_path, monkeypatch):
    seen = at_batch_end(monkeypatch, _largest_gradient_entry)
    settings = {**QUICK, "optim.clip_norm": "none", "trainer.max_steps": "4"}
    runner.run("lstm", "copy", settings, store=tmp_path / "a.sqlite", progress=False, check=False)
    unclipped, seen[:] = list(seen), []
    assert max(unclipped) > 1e-3
    bound = 2.0 ** -10          # exact in float32
    result = runner.run("lstm", "copy", {**settings, "optim.clip_value": str(bound)},
                        store=tmp_path / "b.sqlite", progress=False, check=False)
    assert len(seen) == 4 and max(seen) == bound   # every entry within it, the largest ones at it
    assert result.status == "completed"


def test_clipping_by_norm_bounds_the_gradients_global_norm(tmp_path, monkeypatch):
    seen = at_batch_end(monkeypatch, _gradient_norm)
    settings = {**QUICK, "optim.clip_norm": "none", "trainer.max_steps": "4"}
    runner.run("lstm", "copy", settings, store=tmp_path / "a.sqlite", progress=False, check=False)
    bound = min(seen) / 4
    seen.clear()
    runner.run("lstm", "copy", {**settings, "optim.clip_norm": str(bound)}, store=tmp_path / "b.sqlite",
               progress=False, check=False)
    # torch scales by bound / (norm + 1e-6): the clipped norm is the bound to about 1e-6 relative
    assert len(seen) == 4 and seen == pytest.approx([bound] * 4, rel=1e-5), (seen, bound)


def test_clipping_by_norm_and_by_value_at_once_is_refused():
    with pytest.raises(BenchmarkError, match="would clip twice: clip by value with optim.clip_norm=none"):
        runner.prepare("lstm", "copy", {"optim.clip_value": "0.5"})   # copy clips by norm 1 by default
    with pytest.raises(BenchmarkError, match=r"optim.clip_value must be positive \(greater than 0\), got 0.0"):
        runner.prepare("lstm", "copy", {"optim.clip_value": "0", "optim.clip_norm": "none"})


# --------------------------------------------------------------------------- dropout, tying


def test_one_dropout_mask_per_sequence_is_deep_rnns_and_refused_on_the_fused_stacks():
    model = _model("deep_rnn", "copy", {**STACK, "arch.dropout": "0.5", "arch.variational": "true",
                                        "arch.residual": "false"})
    encoder = model.encoder.train()
    dropped = encoder._drop(torch.ones(3, 7, 8))
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))      # the same mask at every step
    for architecture in ("rnn", "gru", "lstm", "bilstm"):
        with pytest.raises(BenchmarkError, match="arch.variational .* does not apply to architecture "
                                                 f"'{architecture}'.*offered by deep_rnn"):
            runner.prepare(architecture, "pos", {"arch.variational": "true"})
    with pytest.raises(BenchmarkError, match="arch.dropout .* does not apply to architecture 'jordan'"):
        runner.prepare("jordan", "copy", {"arch.dropout": "0.1"})


@pytest.mark.data("ptb")
def test_weight_tying_applies_to_both_language_models():
    settings = {"task.tie_weights": "true", "arch.hidden_size": "16", "arch.embedding_size": "16",
                "task.train_tokens": "2000", "task.eval_tokens": "200"}
    for task in ("ptb", "ptb-char"):
        model = _model("lstm", task, settings)
        assert model.head.linear.weight is model.embedding.weight
    with pytest.raises(BenchmarkError, match="weight tying needs the encoder output size"):
        _model("lstm", "ptb-char", {**settings, "arch.embedding_size": "8"})


@pytest.mark.parametrize("task", ["copy", "pos", "sst-binary", "scan", "mackey_glass"])
def test_weight_tying_is_refused_outside_language_modelling(task):
    with pytest.raises(BenchmarkError, match="task.tie_weights .* does not apply to task .*language "
                                             "modelling"):
        runner.prepare("lstm", task, {"task.tie_weights": "true"})


# --------------------------------------------------------------------------- bucketing


def _padding_share(batches) -> float:
    real = total = 0
    for batch in batches:
        lengths = batch.inputs.lengths
        real += int(lengths.sum())
        total += lengths.shape[0] * batch.inputs.values.shape[1]
    return 1 - real / total


@pytest.mark.data("ud_english_ewt")
def test_bucketing_lowers_the_padding_share_on_a_real_slice_of_pos():
    shares = {}
    for batching in ("bucketed", "random"):
        prepared = runner.prepare("lstm", "pos", {"task.batching": batching, "task.train_sentences": "800"})
        task = prepared.task(prepared.config.task_options)
        train = task.splits(32, seed=0).train
        shares[batching] = _padding_share(train)
        assert sum(batch.batch_size for batch in train) == 800   # every sentence once a pass
    # measured once (seed 0): bucketed 0.124 (short sentences pad by a token or two in three),
    # random 0.673 (a batch pads to its longest sentence)
    assert shares["bucketed"] < 0.2 and shares["random"] > 0.5


def test_the_padding_share_and_throughput_are_recorded_with_every_run(tmp_path):
    settings = {"task.train_size": "256", "task.eval_size": "16", "arch.hidden_size": "8",
                "arch.embedding_size": "8", "trainer.batch_size": "32", "trainer.max_steps": "8",
                "trainer.val_every_steps": "8"}
    results = {batching: runner.run("gru", "reverse", {**settings, "task.batching": batching},
                                    preset="quick", store=tmp_path / "r.sqlite", progress=False,
                                    check=False)
               for batching in ("bucketed", "random")}
    shares = {name: result.metrics["train/padding_share"] for name, result in results.items()}
    # a pass is 8 batches: the same examples either way, source and decoder inputs both counted
    prepared = runner.prepare("gru", "reverse", {**settings, "task.batching": "random"}, preset="quick")
    train = prepared.task(prepared.config.task_options).splits(32, seed=0).train
    real = total = 0
    for batch in train:
        for sequences in (batch.inputs, batch.decoder_inputs):
            real += int(sequences.lengths.sum())
            total += sequences.values.shape[0] * sequences.values.shape[1]
    assert shares["random"] == pytest.approx(1 - real / total)
    assert shares["bucketed"] < shares["random"]
    assert all(result.items_per_second > 0 for result in results.values())
    fixed = runner.run("gru", "copy", QUICK, store=tmp_path / "r.sqlite", progress=False, check=False)
    assert fixed.metrics["train/padding_share"] == 0.0


@pytest.mark.parametrize("task", ["pos", "ner", "sst-fine", "sst-binary", "sst-tree-fine",
                                  "sst-tree-binary", "scan", "reverse"])
def test_every_variable_length_task_offers_bucketing_or_random_batches(task):
    architecture = "recursive" if "tree" in task else "lstm"
    config = runner.prepare(architecture, task, {"task.batching": "random"}).config
    assert config.task_options.batching == "random"
    assert runner.prepare(architecture, task).config.task_options.batching == "bucketed"
    with pytest.raises(BenchmarkError, match="task.batching must be one of bucketed, random"):
        runner.prepare(architecture, task, {"task.batching": "sorted"})


@pytest.mark.parametrize("task", ["copy", "adding", "ptb", "sequential_digits", "mackey_glass",
                                  "binarized_fmnist"])
def test_bucketing_is_refused_where_every_sequence_has_the_same_length(task):
    architecture = "pixelrnn" if task == "binarized_fmnist" else "lstm"
    with pytest.raises(BenchmarkError, match=f"task.batching .* does not apply to task '{task}'.*drop "
                                             "the setting") as error:
        runner.prepare(architecture, task, {"task.batching": "random"})
    assert "\n" not in str(error.value)


def test_random_batches_keep_every_example_and_evaluation_in_split_order():
    from rnnbench.core.contracts import Batch
    from rnnbench.toolkit.text import BucketBatches
    lengths = torch.randint(1, 50, (103,), generator=torch.Generator().manual_seed(0))

    def make_batch(indices):
        return Batch(SequenceBatch(torch.zeros(len(indices), int(lengths[indices].max())),
                                   lengths[indices]), indices)

    train = BucketBatches(lengths, 10, make_batch, shuffle=True, seed=3, batching="random")
    first = [index for batch in train for index in batch.targets.tolist()]
    assert sorted(first) == list(range(103)) and first != list(range(103))
    evaluation = BucketBatches(lengths, 10, make_batch, shuffle=False, batching="random")
    assert [index for batch in evaluation for index in batch.targets.tolist()] == list(range(103))
    bucketed = BucketBatches(lengths, 10, make_batch, shuffle=True, seed=3)
    assert _padding_share(bucketed) < _padding_share(train)
