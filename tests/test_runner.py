import signal
import subprocess
import sys
import time

import pytest
import torch

from helpers import QUICK
from rnnbench.core import registry
from rnnbench.training import runner
from rnnbench.core.contracts import Architecture, Capabilities, EncoderOutput, Encoder
from rnnbench.core.errors import BenchmarkError, DivergedError
from rnnbench.training.runner import run
from rnnbench.store import ResultStore


def test_a_run_is_recorded_completely(tmp_path):
    result = run("gru", "copy", QUICK, store=tmp_path / "r.sqlite", progress=False, seed=3)
    store = ResultStore(tmp_path / "r.sqlite")
    frame = store.runs_frame()
    row = frame.iloc[0]
    assert row.status == "completed" and row.seed == 3
    assert {"test/accuracy", "test/loss", "val/accuracy"} <= set(row.metrics)
    assert row.parameters == result.parameters > 0
    assert row.items_per_second > 0 and row.wall_time_s > 0 and row.peak_memory_mb > 0
    assert row.environment["torch"] == torch.__version__
    assert row.config["arch.hidden_size"] == 8
    names = {name for _, _, name, _ in store.history(result.run_id)}
    assert {"val/accuracy", "val/loss", "train/loss"} <= names


def test_cpu_runs_are_deterministic(tmp_path):
    first = run("lstm", "adding", QUICK, store=tmp_path / "a.sqlite", progress=False)
    second = run("lstm", "adding", QUICK, store=tmp_path / "b.sqlite", progress=False)
    assert first.run_id == second.run_id
    assert first.metrics == second.metrics


def test_the_run_id_changes_with_the_seed_and_settings(tmp_path):
    base = run("rnn", "adding", QUICK, store=tmp_path / "r.sqlite", progress=False)
    other_seed = run("rnn", "adding", QUICK, store=tmp_path / "r.sqlite", progress=False, seed=1)
    other_lr = run("rnn", "adding", {**QUICK, "optim.lr": "0.01"}, store=tmp_path / "r.sqlite",
                   progress=False)
    assert len({base.run_id, other_seed.run_id, other_lr.run_id}) == 3


def test_a_parameter_budget_picks_each_hidden_size_within_five_percent(tmp_path):
    budget = 20_000
    sizes = {}
    for name in ("rnn", "lstm"):
        settings = {**QUICK, "trainer.max_steps": "1", "arch.params": str(budget)}
        result = run(name, "copy", settings, store=tmp_path / "r.sqlite", progress=False)
        assert abs(result.parameters - budget) <= 0.05 * budget
        sizes[name] = result.hidden_size
    assert sizes["rnn"] > sizes["lstm"]


def test_an_incompatible_pair_is_refused_before_anything_is_stored(tmp_path):
    with pytest.raises(BenchmarkError, match="not causal"):
        run("bilstm", "copy", QUICK, store=tmp_path / "r.sqlite", progress=False)
    assert not (tmp_path / "r.sqlite").exists()


class NaNEncoder(Encoder):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.linear = torch.nn.Linear(input_size, hidden_size)
        self.output_size = hidden_size

    def forward(self, inputs, state=None):
        outputs = self.linear(inputs.values) * float("nan")
        return EncoderOutput(outputs, outputs[:, -1:], None)


@registry.register_architecture("test-nan")
class NaNArchitecture(Architecture):
    """Produces NaN outputs, to test divergence handling."""
    capabilities = Capabilities(causal=True, structures=("sequence",))

    def build(self, input_size, hidden_size, options):
        return NaNEncoder(input_size, hidden_size)


def test_a_nan_loss_is_recorded_as_diverged(tmp_path):
    with pytest.raises(DivergedError, match="lower optim.lr"):
        run("test-nan", "adding", QUICK, store=tmp_path / "r.sqlite", progress=False, check=False)
    frame = ResultStore(tmp_path / "r.sqlite").runs_frame()
    assert list(frame.status) == ["diverged"]


def test_ctrl_c_records_the_run_as_interrupted(tmp_path):
    store_path = tmp_path / "r.sqlite"
    process = subprocess.Popen(
        [sys.executable, "-m", "rnnbench.cli", "run", "lstm", "copy", "--no-progress", "--store",
         str(store_path), "--set", "trainer.max_steps=100000", "--set", "task.length=50"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if store_path.exists() and len(ResultStore(store_path).runs_frame()) == 1:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert list(ResultStore(store_path).runs_frame().status) == ["interrupted"]


def test_wandb_logs_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    result = run("gru", "adding", QUICK, store=tmp_path / "r.sqlite", progress=False, wandb=True)
    assert result.status == "completed"
    assert list((tmp_path / "wandb").glob("offline-run-*")), "no offline wandb run was written"


def test_the_best_checkpoint_keeps_model_checkpoints_state_key_and_refuses_saving_between_validations():
    """A resumed run finds the best score under the key ModelCheckpoint wrote it with; the per-batch
    hook it skips could only save with every_n_train_steps or train_time_interval, refused here."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    from rnnbench.training.callbacks import BestCheckpoint

    options = {"monitor": "val/accuracy", "mode": "max", "save_top_k": 1, "filename": "best"}
    assert BestCheckpoint(**options).state_key == ModelCheckpoint(**options).state_key
    with pytest.raises(ValueError, match="validations only"):
        BestCheckpoint(**options, every_n_train_steps=10)


def test_the_module_stores_attributes_as_nn_module_does():
    """`TrainingModule.__setattr__` stores plain values directly: parameters, buffers and
    modules are still registered, and None still unregisters them."""
    prepared = runner.prepare("rnn", "copy", QUICK)
    task = prepared.task(prepared.config.task_options)
    model, _ = runner.initial_model(prepared.architecture(), task, prepared.config, 0)
    module = runner.TrainingModule(model, task, prepared.config, steps_per_epoch=4)
    module._current_fx_name = "training_step"
    assert module._current_fx_name == "training_step" and "_current_fx_name" not in module._parameters
    module.scale = torch.nn.Parameter(torch.ones(()))
    module.register_buffer("count", torch.zeros(()))
    module.extra = torch.nn.Linear(2, 2)
    assert "scale" in dict(module.named_parameters()) and "count" in dict(module.named_buffers())
    assert "extra" in dict(module.named_children())
    module.scale, module.count, module.extra = None, None, None
    assert "scale" not in dict(module.named_parameters()) and "scale" in module._parameters
    assert "count" not in dict(module.named_buffers()) and "extra" not in dict(module.named_children())
    module.note = 3
    module.note = torch.nn.Linear(2, 2)   # a plain attribute becomes a submodule
    assert "note" in dict(module.named_children()) and "note" not in module.__dict__
