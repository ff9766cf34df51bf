"""Deep residual stack: the equations, dropout placement, and depth 8 with and without skips."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnbench.plugins.deep_rnn import DeepResidualRNN, DeepRNNOptions
from rnnbench.core.contracts import SequenceBatch
from rnnbench.core.errors import BenchmarkError
from rnnbench.tasks.probes import make_adding


def _encoder(**options):
    return DeepResidualRNN().build(3, 8, DeepRNNOptions(**options))


def _batch(items: int = 4, steps: int = 9, features: int = 3) -> SequenceBatch:
    values = torch.randn(items, steps, features, generator=torch.Generator().manual_seed(0))
    return SequenceBatch(values, torch.full((items,), steps))


@pytest.mark.parametrize("cell, module", [("rnn", nn.RNN), ("gru", nn.GRU), ("lstm", nn.LSTM)])
def test_without_residuals_equals_the_fused_stack(cell: str, module: type[nn.RNNBase]) -> None:
    torch.manual_seed(0)
    encoder = _encoder(cell=cell, num_layers=3, residual=False).eval()
    fused = module(3, 8, num_layers=3, batch_first=True)
    with torch.no_grad():
        for depth, layer in enumerate(encoder.layers):
            for name, weight in layer.named_parameters():
                getattr(fused, name.replace("_l0", f"_l{depth}")).copy_(weight)
        batch = _batch()
        expected, _ = fused(batch.values)
        torch.testing.assert_close(encoder(batch).outputs, expected)


def test_residual_adds_each_layer_input_from_the_second_layer_on() -> None:
    torch.manual_seed(0)
    encoder = _encoder(cell="gru", num_layers=3).eval()
    batch = _batch()
    with torch.no_grad():
        first, _ = encoder.layers[0](batch.values)
        second = encoder.layers[1](first)[0] + first
        third = encoder.layers[2](second)[0] + second
        out = encoder(batch)
    torch.testing.assert_close(out.outputs, third)
    torch.testing.assert_close(out.final[:, 0], third[:, -1])


def _inputs_of_second_layer(encoder, batch: SequenceBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(what layer 2 received, what layer 1 produced) in one training-mode forward pass."""
    seen = {}

    def record_input(module, args) -> None:
        seen["input"] = args[0]

    def record_output(module, args, out) -> None:
        seen["output"] = out[0]

    encoder.layers[1].register_forward_pre_hook(record_input)
    encoder.layers[0].register_forward_hook(record_output)
    encoder.train()(batch)
    return seen["input"], seen["output"]


def test_variational_dropout_shares_one_mask_across_time() -> None:
    torch.manual_seed(0)
    received, produced = _inputs_of_second_layer(_encoder(num_layers=2, dropout=0.5, variational=True),
                                                 _batch(steps=12))
    dropped = received == 0
    assert 0.2 < dropped.float().mean() < 0.8
    assert (dropped == dropped[:, :1]).all(), "the mask differs between time steps"
    torch.testing.assert_close(received[~dropped], produced[~dropped] * 2.0)


def test_plain_dropout_draws_a_new_mask_every_step() -> None:
    torch.manual_seed(0)
    received, _ = _inputs_of_second_layer(_encoder(num_layers=2, dropout=0.5), _batch(steps=12))
    dropped = received == 0
    assert not (dropped == dropped[:, :1]).all()


def test_no_dropout_on_the_input_or_the_recurrence() -> None:
    """A one-layer stack has no connection between layers, so dropout must not change it."""
    torch.manual_seed(0)
    encoder = _encoder(num_layers=1, dropout=0.5, variational=True)
    batch = _batch()
    with torch.no_grad():
        torch.testing.assert_close(encoder.train()(batch).outputs, encoder.eval()(batch).outputs)


def test_carried_state_has_one_entry_per_layer() -> None:
    out = _encoder(cell="lstm", num_layers=3)(_batch())
    assert len(out.state) == 3 and all(len(layer_state) == 2 for layer_state in out.state)


@pytest.mark.parametrize("options", [{"num_layers": 0}, {"dropout": 1.0}, {"dropout": -0.1}])
def test_bad_options_raise(options: dict) -> None:
    with pytest.raises(BenchmarkError, match="arch\\."):
        _encoder(**options)


def _depth8(residual: bool, seed: int = 0):
    torch.manual_seed(seed)
    return DeepResidualRNN().build(2, 32, DeepRNNOptions(cell="rnn", num_layers=8, residual=residual))


@pytest.mark.parametrize("seed", [0, 1])
def test_depth8_tanh_gradient_reaches_the_input_only_with_residuals(seed: int) -> None:
    inputs, _ = make_adding(64, 10, torch.Generator().manual_seed(0))
    norms = {}
    for residual in (True, False):
        values = inputs.clone().requires_grad_(True)
        _depth8(residual, seed)(SequenceBatch(values, torch.full((64,), 10))).final.sum().backward()
        norms[residual] = values.grad.norm().item()
    assert norms[True] > 10 * norms[False], norms


def _train_on_adding(residual: bool, steps: int = 500, length: int = 10) -> float:
    """Validation MSE of a depth-8 tanh stack after `steps` Adam steps on the adding problem."""
    encoder = _depth8(residual)
    head = nn.Linear(32, 1)
    parameters = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=3e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        inputs, targets = make_adding(64, length, generator)
        out = encoder(SequenceBatch(inputs, torch.full((64,), length)))
        loss = ((head(out.final[:, 0]).squeeze(-1) - targets) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
    inputs, targets = make_adding(512, length, torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = encoder(SequenceBatch(inputs, torch.full((512,), length)))
        return ((head(out.final[:, 0]).squeeze(-1) - targets) ** 2).mean().item()


@pytest.mark.slow
def test_depth8_tanh_stack_trains_with_residuals_and_not_without() -> None:
    """Adding problem, T = 10: predicting the mean scores 1/6 = 0.167."""
    with_skips, without = _train_on_adding(True), _train_on_adding(False)
    assert with_skips < 0.03, with_skips
    assert without > 0.12, without
