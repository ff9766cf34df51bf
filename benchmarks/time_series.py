"""Mackey-Glass prediction: the suite's echo-state network beside reservoirpy on the same series.

Both sides get the series of the suite's `mackey_glass` task (tau = 17, scaled to [-1, 1]), the
same training stretch, the same reservoir hyper-parameters (100 units, 10% connectivity, input
scaling 1, ridge 1e-6, and two settings of spectral radius and leak rate: the suite's defaults,
and those of reservoirpy's Mackey-Glass tutorial; the random draws differ) and the same
evaluation: one-step NRMSE over the test stretch cut into the task's streams, each from an empty
state with its first `washout` steps left out, and the free-run NRMSE after `free_run_steps`
fed-back steps from the task's windows. Times: the suite's whole run (fit, validation and test
through the runner) beside reservoirpy's fit plus its evaluation.

reservoirpy is a peer for this comparison only, never a dependency of the suite: without it the
peer's rows are skipped with a note (`nox -s bench` installs it).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnbench.core import registry
from rnnbench.training.runner import run
from rnnbench.toolkit.metrics import NormalisedRMSE
from rnnbench.tasks.time_series import MackeyGlass

UNITS, DENSITY, INPUT_SCALING, RIDGE = 100, 0.1, 1.0, 1e-6
SETTINGS = {"suite defaults (radius 0.9, leak 1)": (0.9, 1.0),
            "reservoirpy tutorial (radius 1.25, leak 0.3)": (1.25, 0.3)}
STREAMS = 8      # the task's evaluation streams (trainer.batch_size)


@dataclass
class Outcome:
    name: str
    nrmse: float
    free_run_nrmse: float
    seconds: float


def suite_settings(spectral_radius: float, leak_rate: float) -> dict[str, str]:
    return {"optim.optimizer": "ridge", "arch.hidden_size": str(UNITS),
            "arch.spectral_radius": str(spectral_radius), "arch.leak_rate": str(leak_rate),
            "arch.density": str(DENSITY), "arch.input_scaling": str(INPUT_SCALING),
            "arch.ridge": str(RIDGE), "trainer.batch_size": str(STREAMS)}


def suite_esn(spectral_radius: float, leak_rate: float) -> Outcome:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = run("esn", "mackey_glass", suite_settings(spectral_radius, leak_rate),
                     store=Path(folder) / "bench.sqlite", progress=False)
        seconds = time.perf_counter() - started
    return Outcome("rnnbench esn (ridge readout)", result.metrics["test/nrmse"],
                   result.metrics["test/free_run_nrmse"], seconds)


def reservoirpy_esn(task: MackeyGlass, spectral_radius: float, leak_rate: float) -> Outcome:
    from reservoirpy.nodes import Reservoir, Ridge

    options = task.options
    train_inputs, train_targets = (t.numpy().astype(np.float64) for t in task.split_series("train"))
    test_inputs, test_targets = (t.numpy().astype(np.float64) for t in task.split_series("test"))
    started = time.perf_counter()
    reservoir = Reservoir(UNITS, lr=leak_rate, sr=spectral_radius, input_scaling=INPUT_SCALING,
                          rc_connectivity=DENSITY, input_connectivity=DENSITY, seed=0)
    model = reservoir >> Ridge(ridge=RIDGE)
    model.fit(train_inputs, train_targets, warmup=options.washout)

    metric = NormalisedRMSE()
    per_stream = test_inputs.shape[0] // STREAMS
    for stream in range(STREAMS):
        piece = slice(stream * per_stream, (stream + 1) * per_stream)
        reservoir.reset()
        predicted = model.run(test_inputs[piece])
        metric.update(torch.from_numpy(predicted[options.washout:]),
                      torch.from_numpy(test_targets[piece][options.washout:]))

    warmups, last_targets, truth = task.free_run_windows("test")
    finals = []
    for warmup in warmups.numpy().astype(np.float64):
        reservoir.reset()
        prediction = model.run(warmup)[-1]
        for _ in range(options.free_run_steps - 1):
            prediction = model.step(prediction)
        finals.append(float(np.asarray(prediction).reshape(-1)[0]))
    error = np.asarray(finals) - last_targets.numpy().astype(np.float64)
    free_run = float(np.sqrt(np.mean(error ** 2)) / truth.double().std().item())
    return Outcome("reservoirpy Reservoir >> Ridge", float(metric.compute()), free_run,
                   time.perf_counter() - started)


def main() -> dict:
    task = MackeyGlass(MackeyGlass.Options())
    options = task.options
    print(f"Mackey-Glass tau=17 scaled to [-1, 1]: train {options.train_steps}, test "
          f"{options.test_steps} steps in {STREAMS} streams (washout {options.washout}); free run "
          f"{options.free_run_steps} steps after {options.free_run_warmup} read, "
          f"{options.free_run_windows} windows")
    print(f"reservoir: {UNITS} units, density {DENSITY}, input scaling {INPUT_SCALING}, ridge {RIDGE}")
    has_esn = "esn" in registry.architectures()
    if not has_esn:
        print("the suite's esn architecture is not registered: its rows are skipped")
    try:
        import reservoirpy  # noqa: F401
        has_peer = True
    except ImportError:
        has_peer = False
        print("reservoirpy is not installed: the peer's rows are skipped "
              "(pip install reservoirpy, or run `nox -s bench`, which installs it)")
    figures: dict = {"units": UNITS, "density": DENSITY, "input_scaling": INPUT_SCALING, "ridge": RIDGE,
                     "settings": {}}
    for heading, (spectral_radius, leak_rate) in SETTINGS.items():
        outcomes = []
        if has_esn:
            outcomes.append(suite_esn(spectral_radius, leak_rate))
        if has_peer:
            outcomes.append(reservoirpy_esn(task, spectral_radius, leak_rate))
        print(f"\n{heading:<46}{'1-step NRMSE':>14}{'free-run NRMSE':>16}{'seconds':>10}")
        for outcome in outcomes:
            print(f"  {outcome.name:<44}{outcome.nrmse:>14.5f}{outcome.free_run_nrmse:>16.4f}"
                  f"{outcome.seconds:>10.2f}")
        figures["settings"][heading] = [outcome.__dict__ for outcome in outcomes]
    return figures


if __name__ == "__main__":
    main()
