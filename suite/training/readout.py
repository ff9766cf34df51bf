"""optim.optimizer=ridge: an echo-state network's readout fitted in closed form (no gradients)."""

from __future__ import annotations

import time
from typing import Any

import torch

from rnnbench.core.contracts import SequenceBatch
from rnnbench.core.errors import BenchmarkError
from rnnbench.toolkit.heads import Head
from rnnbench.training.callbacks import RecordProgress
from rnnbench.training.module import TrainingModule

def fit_closed_form_readout(module: TrainingModule, train: Any, recorder: RecordProgress) -> None:
    """optim.optimizer=ridge: one pass over the training split without gradients, feeding the
    inputs of the head's declared linear readout (`Head.readout`) and the targets to the
    encoder's `fit_readout`, which sets the readout in closed form. Rows are the supervised items:
    those of `batch.metric_mask` if the task gives one, else the real steps of per-step sequence
    targets, else one per item."""
    model = module.model
    readout = model.head.readout if isinstance(model.head, Head) else None
    if not isinstance(readout, torch.nn.Linear):
        raise BenchmarkError(f"optim.optimizer=ridge needs a head that declares a linear readout "
                             f"(`Head.readout`, as rnnbench.toolkit.heads.PooledRegressor does); "
                             f"{type(model.head).__name__} has none: use adam instead")
    captured: list[torch.Tensor] = []

    def pairs():
        for batch in train:
            captured.clear()
            output = module._step(batch, training=True)
            features = captured[0].reshape(-1, readout.in_features)
            targets = batch.targets.reshape(features.shape[0], -1)
            rows = batch.metric_mask
            if rows is None and isinstance(batch.inputs, SequenceBatch):
                rows = batch.inputs.mask()  # per-step targets: the real steps
                rows = rows if rows.numel() == features.shape[0] else None
            if rows is not None:
                if rows.numel() != features.shape[0]:
                    raise BenchmarkError(f"optim.optimizer=ridge: the task's metric_mask has "
                                         f"{rows.numel()} entries for {features.shape[0]} readout "
                                         f"rows; it must mark the supervised items")
                rows = rows.reshape(-1).to(features.device)
                features, targets = features[rows], targets[rows]
            module.items_trained = module.items_trained + output.count.cpu()
            if features.shape[0] > 0:   # a chunk may hold only warm-up steps (time-series washout)
                yield features, targets

    hook = readout.register_forward_hook(lambda layer, args, output: captured.append(args[0]))
    started = time.perf_counter()
    model.eval()
    try:
        with torch.no_grad():
            model.encoder.fit_readout(pairs(), readout)
    finally:
        hook.remove()
    recorder.train_seconds += time.perf_counter() - started
