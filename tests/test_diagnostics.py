import pytest
import torch
from torch import nn

from rnnbench.cli import main
from rnnbench.core.contracts import Batch, Encoder, EncoderOutput, GridBatch, SequenceBatch
from rnnbench.reports.gradient_flow import decay_per_step
from rnnbench.training.diagnostics import diagnose_gradients, last_step_gradient_norms
from rnnbench.core.errors import BenchmarkError
from rnnbench.toolkit.heads import PerStepRegressor, PooledRegressor
from rnnbench.training.model import BenchmarkModel
from rnnbench.store import ResultStore

QUICK_COPY = {"task.length": "12", "task.train_size": "256", "task.eval_size": "64",
              "trainer.batch_size": "32", "trainer.max_steps": "8", "trainer.val_every_steps": "8",
              "arch.hidden_size": "16"}


class LinearRecurrence(Encoder):
    """h_t = a h_{t-1} + x_t: dh_T / dx_t = a^(T - t), so the gradient's norm is known."""

    output_size = 1

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = a

    def forward(self, inputs: SequenceBatch, state=None) -> EncoderOutput:
        values = inputs.values
        hidden = torch.zeros(values.shape[0], 1)
        outputs = []
        for step in range(values.shape[1]):
            hidden = self.a * hidden + values[:, step]
            outputs.append(hidden)
        outputs = torch.stack(outputs, dim=1)
        return EncoderOutput(outputs, hidden.unsqueeze(1), hidden)


def _batch(steps: int, per_step_targets: bool) -> Batch:
    values = torch.randn(4, steps, 1, generator=torch.Generator().manual_seed(0))
    targets = torch.randn(4, steps, 1) if per_step_targets else torch.randn(4)
    return Batch(SequenceBatch(values, torch.full((4,), steps)), targets)


def test_the_gradient_norm_decays_as_the_recurrence_weight_to_the_distance():
    model = BenchmarkModel(None, LinearRecurrence(0.8), PooledRegressor(1))
    norms = last_step_gradient_norms(model, _batch(15, per_step_targets=False))
    assert norms.shape == (15,)
    assert torch.allclose(norms / norms[0], 0.8 ** torch.arange(15.0), rtol=1e-4)
    assert decay_per_step(norms) == pytest.approx(0.8, rel=1e-4)


def test_only_the_last_steps_loss_is_differentiated_with_a_per_step_head():
    model = BenchmarkModel(None, LinearRecurrence(0.9), PerStepRegressor(1))
    batch = _batch(10, per_step_targets=True)
    norms = last_step_gradient_norms(model, batch)
    values = batch.inputs.values.clone().requires_grad_(True)
    encoded = model.encoder(SequenceBatch(values, batch.inputs.lengths))
    last_loss = ((model.head.predict(encoded.outputs[:, -1:]) - batch.targets[:, -1:]) ** 2).sum()
    (expected,) = torch.autograd.grad(last_loss, values)
    assert torch.allclose(norms, expected.norm(dim=-1).mean(dim=0).flip(0), rtol=1e-5)


def test_underflowed_gradients_are_left_out_of_the_decay_fit():
    norms = torch.tensor([1.0, 0.5, 0.25, 0.125, 0.0, 0.0])
    assert decay_per_step(norms) == pytest.approx(0.5)


def test_a_grid_task_is_refused():
    batch = Batch(GridBatch(torch.zeros(1, 1, 4, 4)), torch.zeros(1, 1, 4, 4))
    with pytest.raises(BenchmarkError, match="sequence task"):
        last_step_gradient_norms(BenchmarkModel(None, nn.Identity(), nn.Identity()), batch)


def test_diagnosis_trains_the_run_stores_both_curves_and_shows_rnn_decay(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    flow = diagnose_gradients("rnn", "copy", QUICK_COPY, store=store)
    assert store.status_of(flow.run_id) == "completed"
    steps = 12 + 20
    for phase in ("init", "trained"):
        points = store.curve(flow.run_id, f"grad_norm/{phase}")
        assert [x for x, _ in points] == list(range(steps))
        assert torch.allclose(torch.tensor([y for _, y in points]), getattr(flow, phase))
    # a vanilla tanh RNN at initialisation: exponential decay with distance
    assert flow.init[20] < 1e-3 * flow.init[0]


def test_rnnbench_diagnose_gradients_plots_one_curve_per_architecture(tmp_path, capsys):
    output = tmp_path / "gradients.png"
    argv = ["diagnose", "gradients", "rnn,lstm", "copy", "--store", str(tmp_path / "r.sqlite"),
            "--output", str(output), "--no-progress"]
    for key, value in QUICK_COPY.items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 0
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "rnn" in printed and "lstm" in printed and "per step" in printed


def test_at_initialisation_the_rnn_gradient_vanishes_far_faster_than_the_lstms():
    from rnnbench.training.model import initial_model
    from rnnbench.training.prepare import prepare

    norms = {}
    for name in ("rnn", "lstm"):
        prepared = prepare(name, "copy", {**QUICK_COPY, "task.length": "50"})
        architecture, task, config = prepared.architecture, prepared.task, prepared.config
        task = task(config.task_options)
        model, _ = initial_model(architecture(), task, config, seed=0)
        batch = next(iter(task.splits(32, seed=0).test))
        norms[name] = last_step_gradient_norms(model.eval(), batch)
    assert norms["rnn"][50] / norms["rnn"][0] < 1e-10          # exponential: ~0.5 per step
    assert norms["lstm"][50] / norms["lstm"][0] > 1e4 * norms["rnn"][50] / norms["rnn"][0]
    assert decay_per_step(norms["rnn"]) < decay_per_step(norms["lstm"])
