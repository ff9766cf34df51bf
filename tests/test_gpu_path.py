"""The GPU path, verified on a CPU: fused (cuDNN) recurrences with packed sequences, mixed
precision, host syncs per training step, DDP, and one run per GPU in sweeps."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence

from helpers import QUICK
from rnnbench.core import registry
from rnnbench.training import runner
from rnnbench.training.model import build_model
from rnnbench.training.module import LOG_EVERY
from rnnbench.sweeps import workers
from rnnbench.training.prepare import prepare
from rnnbench.core.contracts import Architecture, Capabilities, Encoder, EncoderOutput, SequenceBatch
from rnnbench.core.errors import BenchmarkError, DivergedError
from rnnbench.store import ResultStore

FUSED = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "bilstm": torch.nn.LSTM}


def _padded_batch(device: str = "cpu") -> SequenceBatch:
    return SequenceBatch(torch.randn(3, 5, 4, device=device), torch.tensor([5, 2, 3], device=device))


def _encoder(name: str):
    return registry.get_architecture(name)().build(4, 6, registry.get_architecture(name).Options())


@pytest.mark.parametrize("name", sorted(FUSED))
def test_the_fused_module_runs_packed_on_a_padded_batch(name):
    encoder = _encoder(name)
    assert type(encoder.rnn) is FUSED[name]   # the module cuDNN runs on a GPU
    seen: list[object] = []
    encoder.rnn.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    output = encoder(_padded_batch())
    assert isinstance(seen[-1], PackedSequence)
    assert torch.all(output.outputs[1, 2:] == 0)   # padding never reached the state
    encoder(SequenceBatch(torch.randn(3, 5, 4), torch.tensor([5, 5, 5])))
    assert isinstance(seen[-1], torch.Tensor)      # a batch without padding is not packed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (cuDNN): none here")
@pytest.mark.parametrize("name", sorted(FUSED))
def test_the_fused_modules_run_on_cuda_with_cudnn(name):
    assert torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled
    encoder = _encoder(name).cuda()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        output = encoder(_padded_batch("cuda"))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert output.outputs.is_cuda and torch.isfinite(output.outputs).all()


# ---- precision

@pytest.mark.skipif(torch.cuda.is_available(), reason="16-mixed is refused on a CPU only")
def test_16_mixed_on_a_cpu_is_refused_in_one_line(tmp_path):
    with pytest.raises(BenchmarkError, match="trainer.precision=bf16-mixed") as caught:
        runner.run("rnn", "copy", {**QUICK, "trainer.precision": "16-mixed"},
                   store=tmp_path / "r.sqlite", progress=False)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "r.sqlite").exists()


BF16_TOLERANCE = 0.02   # relative difference of the final validation loss, bf16-mixed vs fp32


@pytest.mark.parametrize("name", ["rnn", "lstm", "esn"])
def test_bf16_mixed_trains_close_to_fp32(name, tmp_path):
    settings = {**QUICK, "trainer.max_steps": "30", "trainer.val_every_steps": "30",
                "arch.hidden_size": "16", "optim.lr": "0.01"}
    results = {precision: runner.run(name, "copy", {**settings, "trainer.precision": precision},
                                     store=tmp_path / f"{precision}.sqlite", progress=False, check=False)
               for precision in ("32-true", "bf16-mixed")}
    half = results["bf16-mixed"]
    assert all(math.isfinite(value) for value in half.metrics.values())
    history = ResultStore(tmp_path / "bf16-mixed.sqlite").history(half.run_id)
    first_loss = min(step for _, step, metric, _ in history if metric == "train/loss")
    first = [value for _, step, metric, value in history if metric == "train/loss" and step == first_loss][0]
    assert half.metrics["val/loss"] < first                      # it learned
    full = results["32-true"].metrics["val/loss"]
    assert abs(half.metrics["val/loss"] - full) <= BF16_TOLERANCE * full


# ---- host syncs per training step

SYNCS = ("item", "__bool__", "__float__", "__int__", "__index__", "tolist", "cpu", "numpy")
HOT_PATH = (str(Path(runner.__file__).parent), "pytorch_lightning", "lightning_fabric",
            "lightning_utilities", "torchmetrics")


def test_the_training_loop_syncs_with_the_host_once_per_log_window(tmp_path, monkeypatch):
    """Counts the calls that read a tensor back to the host made by the runner, its callbacks
    and Lightning's loop during 100 steady-state steps (the model's own are its plugin's; torch's
    optimisers keep their step counters on the host by design)."""
    calls: list[str] = []
    counting = [False]

    def counted(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            if counting[0]:
                caller = sys._getframe(1).f_code.co_filename
                if any(part in caller for part in HOT_PATH):
                    calls.append(f"{name} from {caller}")
            return original(self, *args, **kwargs)
        return wrapper

    for name in SYNCS:
        monkeypatch.setattr(torch.Tensor, name, counted(name))

    class Window(runner.Callback):
        def on_train_batch_start(self, trainer, module, batch, index):
            counting[0] = 10 <= trainer.global_step < 110

    built = runner.pl.Trainer

    def trainer(*args, callbacks=(), **kwargs):
        return built(*args, callbacks=[*callbacks, Window()], **kwargs)

    monkeypatch.setattr(runner.pl, "Trainer", trainer)
    runner.run("rnn", "copy", {**QUICK, "trainer.max_steps": "120", "trainer.val_every_steps": "1000",
                               "task.train_size": "640", "arch.hidden_size": "16"},
               store=tmp_path / "r.sqlite", progress=True, check=False)
    assert len(calls) <= 100 // LOG_EVERY, calls


class LateNaNEncoder(Encoder):
    """Finite for two training steps, then NaN."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.linear = torch.nn.Linear(input_size, hidden_size)
        self.output_size, self.calls = hidden_size, 0

    def forward(self, inputs, state=None):
        self.calls += self.training
        outputs = self.linear(inputs.values.float().unsqueeze(-1) if inputs.values.dim() == 2 else inputs.values)
        if self.calls > 2:
            outputs = outputs * float("nan")
        return EncoderOutput(outputs, outputs[:, -1:], None)


@registry.register_architecture("test-late-nan")
class LateNaNArchitecture(Architecture):
    """NaN outputs from the third training step, to test that no checkpoint follows."""
    capabilities = Capabilities(causal=True, structures=("sequence",))

    def build(self, input_size, hidden_size, options):
        return LateNaNEncoder(input_size, hidden_size)


def test_a_nan_between_checks_is_diverged_before_any_checkpoint(tmp_path):
    store = tmp_path / "r.sqlite"
    with pytest.raises(DivergedError):
        runner.run("test-late-nan", "adding", {**QUICK, "trainer.val_every_steps": "3"},
                   store=store, progress=False, check=False)
    assert list(ResultStore(store).runs_frame().status) == ["diverged"]
    assert not list((tmp_path / "checkpoints").rglob("*.ckpt"))


# ---- DDP

def test_several_devices_train_with_ddp_on_gloo_here():
    strategy = runner._strategy(2)
    assert isinstance(strategy, runner.DDPStrategy)
    assert strategy._process_group_backend == ("nccl" if torch.cuda.is_available() else "gloo")
    assert runner._strategy(1) == "auto"


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_records_one_run(tmp_path):
    store = tmp_path / "r.sqlite"
    settings = [f"{key}={value}" for key, value in {**QUICK, "trainer.devices": "2"}.items()]
    command = [sys.executable, "-m", "rnnbench.cli", "run", "rnn", "copy", "--no-progress", "--no-check",
               "--store", str(store)] + [part for item in settings for part in ("--set", item)]
    env = {key: value for key, value in os.environ.items() if key not in ("LOCAL_RANK", "NODE_RANK")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    frame = ResultStore(store).runs_frame()
    assert list(frame.status) == ["completed"]
    row = frame.iloc[0]
    assert row.config["trainer.devices"] == 2
    assert all(math.isfinite(value) for value in row.metrics.values())
    assert 0.0 <= row.metrics["test/accuracy"] <= 1.0 and row.items_per_second > 0
    assert [path.name for path in (tmp_path / "checkpoints").rglob("*.ckpt")] == ["best.ckpt"]


# ---- one run per GPU in sweeps

@pytest.mark.parametrize("gpus, asked, expected", [(0, 4, 4), (2, 4, 2), (8, 3, 3)])
def test_a_sweep_runs_at_most_one_worker_per_gpu(gpus, asked, expected, tmp_path, monkeypatch):
    monkeypatch.setattr(workers, "_gpu_count", lambda: gpus)
    driver = workers.Driver(ResultStore(tmp_path / "r.sqlite"), workers=asked, progress=False)
    assert driver.workers == expected


def test_a_single_device_leaves_the_run_ids_recorded_before_trainer_devices_existed():
    """trainer.devices came after run ids were published: at 1 it is left out of the identity
    (stores and published leaderboards keep their ids), any other value changes it."""
    one = prepare("lstm", "copy")
    two = prepare("lstm", "copy", {"trainer.devices": "2"})
    assert one.run_id == "af5172e53010a2a7" and one.config.flat()["trainer.devices"] == 1
    assert two.run_id != one.run_id and two.config_id != one.config_id


def test_batches_are_moved_to_a_device_and_left_alone_on_the_cpu(tmp_path, monkeypatch):
    """On the CPU, where tasks build their batches, the runner's module hands a batch on as it is
    (Lightning's default copies every field of the nested dataclasses on every step); to another
    device every tensor of it moves (the meta device stands in for a GPU here)."""
    from pytorch_lightning.core import hooks as lightning_hooks

    walks: list[torch.device] = []
    original = lightning_hooks.move_data_to_device

    def counted(batch, device):
        walks.append(device)
        return original(batch, device)

    monkeypatch.setattr(lightning_hooks, "move_data_to_device", counted)
    runner.run("rnn", "copy", {**QUICK, "trainer.max_steps": "5", "arch.hidden_size": "8"},
               store=tmp_path / "r.sqlite", progress=False, check=False)
    assert walks == []

    prepared = prepare("rnn", "copy", QUICK)
    task = prepared.task(prepared.config.task_options)
    model = build_model(prepared.architecture(), task, prepared.config, 8)
    module = runner.TrainingModule(model, task, prepared.config, steps_per_epoch=1)
    batch = next(iter(task.splits(4, seed=0).train))
    assert module.transfer_batch_to_device(batch, torch.device("cpu"), 0) is batch
    moved = module.transfer_batch_to_device(batch, torch.device("meta"), 0)
    assert moved.inputs.values.device.type == "meta" and moved.targets.device.type == "meta"
    assert walks == [torch.device("meta")]
