"""The plugin contract is declared, not duck-typed: what the runner, the sampler and the CLI use of
a head or a task is an attribute or method of `Head` / `Task`, documented there."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from rnnbench.core import registry
from rnnbench.cli import _draws_images
from rnnbench.training.config import resolve
from rnnbench.core.contracts import Architecture, Capabilities, EncoderOutput, Requirements, SequenceBatch, Task
from rnnbench.core.errors import BenchmarkError
from rnnbench.toolkit.heads import (Head, HeadOutput, PerPixelBernoulli, PerStepClassifier, PerStepRegressor,
                            PooledClassifier, PooledRegressor)
from rnnbench.training.model import build_model
from rnnbench.toolkit.pooling import pool
from rnnbench.training.module import TrainingModule
from rnnbench.training.prepare import PreparedRun, prepare
from rnnbench.training.readout import fit_closed_form_readout
from rnnbench.training.trained import TrainedModel
from rnnbench.training.sampling import sample_text

SMALL_ADDING = {"arch.hidden_size": "20", "task.length": "8", "task.train_size": "64",
                "task.eval_size": "16", "trainer.batch_size": "32", "optim.optimizer": "ridge"}


# --------------------------------------------------------------------------- heads


def test_head_declares_readout_and_predict():
    for member in ("readout", "predict", "update_metrics"):
        assert member in vars(Head) and member in Head.__doc__
    assert Head.readout.__doc__ and Head.predict.__doc__
    assert Head().readout is None
    with pytest.raises(BenchmarkError, match="does not predict"):
        Head().predict(torch.zeros(1, 2, 3))
    for head in (PerStepClassifier(4, 3), PooledClassifier(4, 3), PooledRegressor(4), PerStepRegressor(4)):
        assert isinstance(head.readout, nn.Linear) and head.readout is head.linear
    assert PerPixelBernoulli(4).readout is None
    outputs = torch.randn(2, 5, 4)
    assert PerStepClassifier(4, 3).predict(outputs).shape == (2, 5, 3)


class RenamedReadoutHead(Head):
    """A regression head whose readout is not called `linear`."""

    def __init__(self, output_size: int) -> None:
        super().__init__()
        self.out = nn.Linear(output_size, 1)

    @property
    def readout(self) -> nn.Linear:
        return self.out

    def forward(self, encoded: EncoderOutput, batch) -> HeadOutput:
        prediction = self.out(encoded.final.reshape(encoded.final.shape[0], -1)).squeeze(-1)
        loss = ((prediction - batch.targets) ** 2).sum()
        return HeadOutput(loss, torch.tensor(batch.batch_size), prediction)


class UndeclaredReadoutHead(RenamedReadoutHead):
    """Has a `linear` attribute but declares no readout: ridge must not guess."""

    def __init__(self, output_size: int) -> None:
        super().__init__(output_size)
        self.linear = self.out

    readout = Head.readout


def _ridge_module(head_cls: type[Head]) -> tuple[TrainingModule, object]:
    prepared = prepare("esn", "adding", SMALL_ADDING)
    task = prepared.task(prepared.config.task_options)
    torch.manual_seed(0)
    model = build_model(prepared.architecture(), task, prepared.config, 20)
    model.head = head_cls(model.encoder.output_size)
    module = TrainingModule(model, task, prepared.config, steps_per_epoch=2)
    return module, task.splits(32, seed=0).train


def test_ridge_fits_the_head_declared_readout_whatever_its_name():
    module, train = _ridge_module(RenamedReadoutHead)
    before = module.model.head.out.weight.clone()
    fit_closed_form_readout(module, train, SimpleNamespace(train_seconds=0.0))
    assert not torch.equal(before, module.model.head.out.weight)


def test_ridge_refuses_a_head_that_declares_no_readout():
    module, train = _ridge_module(UndeclaredReadoutHead)
    with pytest.raises(BenchmarkError, match="declares a linear readout"):
        fit_closed_form_readout(module, train, SimpleNamespace(train_seconds=0.0))


def test_a_bad_pooling_is_a_benchmark_error():
    with pytest.raises(BenchmarkError, match="unknown pooling 'median'"):
        PooledClassifier(4, 2, pooling="median")
    with pytest.raises(BenchmarkError, match="unknown pooling 'median'"):
        PooledRegressor(4, pooling="median")
    encoded = EncoderOutput(torch.zeros(1, 3, 4), torch.zeros(1, 1, 4), None)
    with pytest.raises(BenchmarkError, match="unknown pooling 'median'"):
        pool(encoded, SequenceBatch(torch.zeros(1, 3, 4), torch.tensor([3])), "median")


# --------------------------------------------------------------------------- tasks


def test_text_generation_is_declared_on_the_task():
    assert vars(Task)["generates_text"] is False and "generates_text" in Task.__doc__
    assert Task.encode.__doc__ and Task.decode.__doc__
    assert registry.get_task("ptb").generates_text
    assert registry.get_task("ptb-char").generates_text
    assert not any(cls.generates_text for name, cls in registry.tasks().items() if name not in ("ptb", "ptb-char"))

    class Undeclared(registry.get_task("copy")):
        """Has encode and decode but does not declare generates_text."""

        def encode(self, text):
            return torch.tensor([1])

        def decode(self, ids):
            return "x"

    trained = TrainedModel("r", Undeclared(None), None, None)
    with pytest.raises(BenchmarkError, match="not a language model"):
        sample_text(trained, "a", 3)
    with pytest.raises(BenchmarkError, match="does not read text"):
        registry.get_task("copy")(None).encode("the")


def test_image_sampling_is_declared_on_the_task(monkeypatch):
    assert vars(Task)["draws_images"] is False and "draws_images" in Task.__doc__
    assert _draws_images("binarized_fmnist") and not _draws_images("copy")

    class OverridesSampleOnly(registry.get_task("copy")):
        def sample(self, model, count, generator):
            return torch.zeros(count, 1, 2, 2)

    monkeypatch.setitem(registry._tasks, "sampler", OverridesSampleOnly)
    assert not _draws_images("sampler")     # the declaration decides, not the override
    monkeypatch.setitem(registry._tasks, "sampler",
                        type("Declared", (OverridesSampleOnly,), {"draws_images": True}))
    assert _draws_images("sampler")


def test_state_carrying_is_declared_once_in_the_requirements():
    assert "carries_state" not in vars(Task)
    assert "carries_state" in Requirements.__doc__
    with pytest.raises(BenchmarkError, match="declare it in its requirements"):
        type("Old", (Task,), {"carries_state": True})

    copy = registry.get_task("copy")
    carrying = type("CarryingCopy", (copy,), {
        "requirements": Requirements("sequence", causal=True, carries_state=True)})
    prepared = prepare("lstm", "copy", {"arch.hidden_size": "8", "task.length": "5",
                                        "task.train_size": "8", "trainer.batch_size": "4"})
    for task_cls, carries in ((copy, False), (carrying, True)):
        task = task_cls(prepared.config.task_options)
        model = build_model(prepared.architecture(), task, prepared.config, 8)
        module = TrainingModule(model, task, prepared.config, steps_per_epoch=2)
        module._step(next(iter(task.splits(4, seed=0).train)), training=True)
        assert (module._train_state is not None) is carries


def test_a_task_ranks_together_only_settings_it_has():
    with pytest.raises(BenchmarkError, match="'task.batchin', which is not one of its settings.*task.batching"):
        type("Typo", (registry.get_task("pos"),), {"ranked_together": ("task.batchin",)})
    assert registry.get_task("ner").ranked_together == ("task.output_layer", "task.batching")


# --------------------------------------------------------------------------- declarations


def test_prepare_returns_a_named_frozen_record_and_keeps_run_ids():
    prepared = prepare("lstm", "copy")
    assert isinstance(prepared, PreparedRun)
    assert [f.name for f in dataclasses.fields(PreparedRun)] == [
        "architecture", "task", "config", "run_id", "config_id"]
    assert prepared.architecture is registry.get_architecture("lstm")
    assert prepared.task is registry.get_task("copy")
    assert prepared.run_id == "af5172e53010a2a7"     # unchanged since before PreparedRun
    with pytest.raises(dataclasses.FrozenInstanceError):
        prepared.run_id = "x"


def test_every_capability_and_the_output_size_are_documented():
    for field in dataclasses.fields(Capabilities):
        assert f"{field.name}:" in Capabilities.__doc__, field.name
    for field in dataclasses.fields(Requirements):
        assert f"{field.name}:" in Requirements.__doc__, field.name
    assert "output_size" in vars(Architecture) and "bidirectional" in Architecture.output_size.__doc__


def test_resolve_still_accepts_the_prepared_classes():
    prepared = prepare("rnn", "adding")
    assert resolve(prepared.architecture, prepared.task).flat() == prepared.config.flat()
