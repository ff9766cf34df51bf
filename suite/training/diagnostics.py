"""Gradient flow, the vanishing-gradient story measured.

For an architecture on a sequence task: the norm of the gradient of the loss at the last step T
with respect to the encoder's input at step t, ||dL_T / dx_t||, as a function of the distance
T - t, averaged over a batch of test items. By the chain rule it carries the product of the
Jacobians dh_k / dh_{k-1} for k = t+1..T; for a vanilla RNN their norms are bounded by
||W_hh|| max|tanh'|, so it shrinks exponentially with the distance when that bound is below one
(Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013, section 2), while the LSTM's
additive cell path c_t = f_t c_{t-1} + ... decays only as the forget gates' product (Hochreiter &
Schmidhuber 1997). Measured at the encoder's inputs (embedded tokens or features), it needs only
the encoder contract, so fused and custom encoders are measured alike.

Measured twice per run, on the model as initialised and on the trained model (its best
checkpoint), and stored with the run as the curves `grad_norm/init` and `grad_norm/trained`
(x = distance, y = mean norm).
"""

from __future__ import annotations

import dataclasses
import os

import torch
from torch import Tensor, nn

from rnnbench.core.contracts import Batch, SequenceBatch
from rnnbench.core.errors import BenchmarkError
from rnnbench.training.model import initial_model
from rnnbench.training.prepare import prepare
from rnnbench.training.runner import run
from rnnbench.training.trained import load_trained
from rnnbench.store import ResultStore

PHASES = ("init", "trained")


@dataclasses.dataclass
class MeasuredGradients:
    """The curves `diagnose_gradients` measured and stored (`rnnbench.reports.gradient_flow` reads
    them back for plots and pages)."""

    run_id: str
    init: Tensor
    trained: Tensor


def last_step_gradient_norms(model: nn.Module, batch: Batch) -> Tensor:
    """(T,) mean over the batch of ||dL_T / dx_t||, indexed by the distance d = T - t (so entry
    0 is the last step itself). The loss of the earlier steps is cut off by detaching the encoder
    outputs before the last step; pooled heads read the final state, which is the last step's."""
    if not isinstance(batch.inputs, SequenceBatch):
        raise BenchmarkError("the gradient-flow diagnostic needs a sequence task (it measures "
                             "the gradient at each input step)")
    lengths = batch.inputs.lengths
    if bool((lengths != lengths[0]).any()):
        raise BenchmarkError("the gradient-flow diagnostic needs equal-length sequences, so that "
                             "every item's last step is the same step; use a probe task")
    embedded = model.embed(batch.inputs)
    values = embedded.values.detach().requires_grad_(True)
    encoded = model.encoder(dataclasses.replace(embedded, values=values), None)
    outputs = encoded.outputs
    last_only = torch.cat([outputs[:, :-1].detach(), outputs[:, -1:]], dim=1)
    loss = model.head(encoded._replace(outputs=last_only), batch).loss_sum
    (gradient,) = torch.autograd.grad(loss, values)
    per_step = gradient.flatten(2).norm(dim=-1).mean(dim=0)          # (T,) by input step
    return per_step.flip(0).detach()


def diagnose_gradients(architecture: str, task: str, overrides: dict[str, str] | None = None, *,
                       preset: str | None = None, seed: int = 0,
                       store: ResultStore | str | os.PathLike = "runs/rnnbench.sqlite",
                       progress: bool = False) -> MeasuredGradients:
    """Measure (training the run first if the store has not got it completed) and store the
    curves. The batch is the first test batch of the run's own settings."""
    store = store if isinstance(store, ResultStore) else ResultStore(store)
    prepared = prepare(architecture, task, overrides, preset, seed)
    run_id = prepared.run_id
    if store.status_of(run_id) != "completed":
        run(architecture, task, overrides, preset=preset, seed=seed, store=store, progress=progress)
    trained = load_trained(store, run_id)
    batch = next(iter(trained.task.splits(trained.config.trainer.batch_size, seed).test))
    initial, _ = initial_model(prepared.architecture(), trained.task, trained.config, seed)
    curves = {"init": last_step_gradient_norms(initial.eval(), batch),
              "trained": last_step_gradient_norms(trained.model, batch)}
    for phase, norms in curves.items():
        store.set_curve(run_id, f"grad_norm/{phase}", list(enumerate(norms.tolist())))
    return MeasuredGradients(run_id, curves["init"], curves["trained"])
