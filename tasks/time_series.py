"""Chaotic and nonlinear time series for echo-state networks (and any causal encoder that carries
its state): Mackey-Glass one-step and free-running prediction, NARMA-10 system identification.

Mackey & Glass (1977), with tau = 17 (chaotic), integrated as a delay-differential equation:
    dx/dt = beta x(t - tau) / (1 + x(t - tau)^n) - gamma x(t),  beta = 0.2, gamma = 0.1, n = 10,
by fourth-order Runge-Kutta with step 0.1 and a constant history x = 1.2 for t <= 0, sampled
every time unit after a transient, then scaled to [-1, 1]. The input at step t is x(t), the
target x(t + 1).

NARMA-10 (Atiya & Parlos 2000), driven by u(t) ~ U(0, 0.5):
    y(t+1) = 0.3 y(t) + 0.05 y(t) sum_{i=0..9} y(t-i) + 1.5 u(t-9) u(t) + 0.1.
The input at step t is u(t), the target y(t + 1).

Metric: NRMSE = RMSE / standard deviation of the target, both over the evaluated steps of the
split (Jaeger & Haas 2004); predicting the mean scores 1. Each split is one contiguous stretch
of the series (train, then validation, then test), cut into `batch_size` parallel streams read
`bptt` steps at a time with the encoder state carried from one chunk to the next; the first
`washout` steps of every stream warm the state up and are left out of the metrics (and of a
closed-form readout's fit; the `loss` column and gradient training count every step).

Free running (Mackey-Glass only, as `free_run_nrmse`): from `free_run_windows` start points
evenly spread over the split, the model reads `free_run_warmup` true values, then runs
`free_run_steps` steps on its own, each prediction fed back as the next input through the
carried state; the NRMSE of the last of those steps over the windows is reported, as Jaeger &
Haas (2004) report NRMSE84. NARMA-10 is driven by its input u, so it has no free run.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
import torch
from torch import Tensor, nn

from rnnbench import (AtLeast, Baseline, Batch, BenchmarkError, InputSpec, NonNegative, PerStepRegressor,
                      Reference, Requirements, SequenceBatch, Splits, Task, register_task)
from rnnbench.toolkit.baselines import fit_linear_on_lags, in_order, predict_on_lags

if TYPE_CHECKING:
    from torchmetrics import MetricCollection

NARMA_SEED = 10


# --------------------------------------------------------------------------- series


@functools.lru_cache(maxsize=4)
def mackey_glass(samples: int, tau: float = 17.0, beta: float = 0.2, gamma: float = 0.1,
                 exponent: int = 10, history: float = 1.2, dt: float = 0.1,
                 sample_every: float = 1.0, transient: int = 1_000) -> np.ndarray:
    """`samples` values of the Mackey-Glass series (unscaled), one per `sample_every` time units,
    after `transient` samples are discarded. RK4 on the delay equation: the delayed value at a
    half step is the mean of the two stored neighbours (tau must be a multiple of dt)."""
    lag = round(tau / dt)
    per_sample = round(sample_every / dt)
    if not math.isclose(lag * dt, tau) or not math.isclose(per_sample * dt, sample_every):
        raise BenchmarkError(f"tau ({tau}) and sample_every ({sample_every}) must be multiples "
                             f"of the integration step dt ({dt})")

    def slope(x: float, delayed: float) -> float:
        return beta * delayed / (1.0 + delayed ** exponent) - gamma * x

    total = (transient + samples) * per_sample
    path = [history] * (lag + 1)           # path[k + lag] is x at time k * dt; k <= 0 is history
    x = history
    for k in range(total):                 # a delay equation is sequential in time
        d0, d1 = path[k], path[k + 1]
        dm = 0.5 * (d0 + d1)
        k1 = slope(x, d0)
        k2 = slope(x + 0.5 * dt * k1, dm)
        k3 = slope(x + 0.5 * dt * k2, dm)
        k4 = slope(x + dt * k3, d1)
        x += dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        path.append(x)
    sampled = np.asarray(path[lag + per_sample::per_sample], dtype=np.float64)
    return sampled[transient:transient + samples]


def scale_to_unit_interval(series: np.ndarray) -> np.ndarray:
    """Affine map of the series onto [-1, 1]."""
    low, high = series.min(), series.max()
    return 2.0 * (series - low) / (high - low) - 1.0


@functools.lru_cache(maxsize=4)
def narma10(samples: int, seed: int = NARMA_SEED, transient: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(u, y): the driving input u(t) ~ U(0, 0.5) and the NARMA-10 output y(t), `samples` each,
    after `transient` steps from y = 0 are discarded. The recursion is sequential in time."""
    total = samples + transient
    u = np.random.default_rng(seed).uniform(0.0, 0.5, total)
    y = np.zeros(total)
    for t in range(9, total - 1):
        y[t + 1] = (0.3 * y[t] + 0.05 * y[t] * y[t - 9:t + 1].sum()
                    + 1.5 * u[t - 9] * u[t] + 0.1)
    if not np.isfinite(y).all():
        raise BenchmarkError(f"NARMA-10 diverged for seed {seed}; choose another series length")
    return u[transient:], y[transient:]


# --------------------------------------------------------------------------- batches


class ChunkedStreams:
    """A series cut into `streams` parallel contiguous streams (rows), read `bptt` steps at a time
    in order, so that the state carried from one chunk continues into the next. Steps before
    `washout` in each stream are left out of the metrics."""

    def __init__(self, inputs: Tensor, targets: Tensor, streams: int, bptt: int, washout: int) -> None:
        per_stream = inputs.shape[0] // streams
        if per_stream <= washout:
            raise BenchmarkError(f"a split of {inputs.shape[0]} steps cut into {streams} streams "
                                 f"leaves {per_stream} steps each, not more than the washout of "
                                 f"{washout}: lower trainer.batch_size or task.washout, or "
                                 f"lengthen the split")
        self.inputs = inputs[:streams * per_stream].reshape(streams, per_stream, -1)
        self.targets = targets[:streams * per_stream].reshape(streams, per_stream, -1)
        self.bptt, self.washout = bptt, washout

    def __len__(self) -> int:
        return -(-self.inputs.shape[1] // self.bptt)

    def __iter__(self):
        streams, steps = self.inputs.shape[:2]
        counted = torch.arange(steps) >= self.washout
        for start in range(0, steps, self.bptt):
            stop = min(start + self.bptt, steps)
            lengths = torch.full((streams,), stop - start, dtype=torch.long)
            yield Batch(SequenceBatch(self.inputs[:, start:stop], lengths), self.targets[:, start:stop],
                        metric_mask=counted[start:stop].expand(streams, stop - start))


# --------------------------------------------------------------------------- tasks


@dataclass
class SeriesOptions:
    """train_steps / val_steps / test_steps: lengths of the three contiguous stretches;
    bptt: steps per chunk (gradients flow back this far); washout: steps at the start of every
    stream, read from an empty state, that are left out of the metrics (and out of a closed-form
    readout's fit on the training streams)."""

    train_steps: Annotated[int, AtLeast(1)] = 6_000
    val_steps: Annotated[int, AtLeast(1)] = 2_000
    test_steps: Annotated[int, AtLeast(1)] = 2_000
    bptt: Annotated[int, AtLeast(1)] = 100
    washout: Annotated[int, NonNegative] = 100


BASELINE_LAGS = 30   # the linear baseline's inputs: the current one and the 29 before it


class SeriesPrediction(Task):
    """Shared by the time-series tasks: `series()` gives the whole (inputs, targets), (N, 1) each."""
    item_unit = "steps"

    requirements = Requirements(structure="sequence", causal=True, carries_state=True)
    head_kind = "regression"
    primary_metric = "nrmse"
    direction = "min"
    defaults = {"optim.optimizer": "adam", "optim.lr": 3e-3, "optim.clip_norm": 1.0,
                "arch.hidden_size": 64, "trainer.batch_size": 8, "trainer.max_steps": 1_000,
                "trainer.val_every_steps": 100, "trainer.patience": 5}
    presets = {"quick": {"task.train_steps": 1_000, "task.val_steps": 400, "task.test_steps": 400,
                         "task.washout": 20, "task.bptt": 50, "trainer.batch_size": 4,
                         "trainer.max_steps": 40, "trainer.val_every_steps": 20,
                         "arch.hidden_size": 32}}

    def series(self) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def input_spec(self) -> InputSpec:
        return InputSpec(features=1)

    def split_series(self, split: str) -> tuple[Tensor, Tensor]:
        """(inputs, targets) of 'train', 'val' or 'test': consecutive stretches of the series."""
        options = self.options
        for key in ("train_steps", "val_steps", "test_steps", "bptt"):
            if getattr(options, key) <= 0:
                raise BenchmarkError(f"task.{key} must be positive, got {getattr(options, key)}")
        inputs, targets = self.series()
        bounds = {"train": (0, options.train_steps),
                  "val": (options.train_steps, options.train_steps + options.val_steps),
                  "test": (options.train_steps + options.val_steps,
                           options.train_steps + options.val_steps + options.test_steps)}
        start, stop = bounds[split]
        return inputs[start:stop], targets[start:stop]

    def total_steps(self) -> int:
        return self.options.train_steps + self.options.val_steps + self.options.test_steps

    def splits(self, batch_size: int, seed: int) -> Splits:
        def streams(split: str, washout: int) -> ChunkedStreams:
            return ChunkedStreams(*self.split_series(split), batch_size, self.options.bptt, washout)

        washout = self.options.washout
        return Splits(train=streams("train", washout), val=streams("val", washout),
                      test=streams("test", washout))

    def build_head(self, encoder_output_size, embedding, decoder=None):
        return PerStepRegressor(encoder_output_size, out_features=1)

    def baselines(self, splits: Splits) -> tuple[Baseline, ...]:
        """A linear model on the last 30 inputs (ridge regression fitted on the training stretch),
        read out over the test streams as the models are: a model that does no better has learned
        nothing a linear filter could not."""
        inputs, targets = self.split_series("train")
        weights = fit_linear_on_lags(inputs, targets, BASELINE_LAGS)
        test_inputs, _ = self.split_series("test")
        predicted = predict_on_lags(test_inputs, weights, BASELINE_LAGS)
        test = splits.test
        chunks = ChunkedStreams(test_inputs, predicted, test.inputs.shape[0], test.bptt, test.washout)
        return (in_order(f"linear_on_{BASELINE_LAGS}_lags", (batch.targets for batch in chunks)),)

    def metrics(self) -> MetricCollection:
        from torchmetrics import MeanSquaredError, MetricCollection

        from rnnbench.toolkit.metrics import NormalisedRMSE

        return MetricCollection({"nrmse": NormalisedRMSE(), "rmse": MeanSquaredError(squared=False)})


@dataclass
class MackeyGlassOptions(SeriesOptions):
    """free_run_windows / free_run_warmup / free_run_steps: see the module docstring."""

    free_run_windows: Annotated[int, AtLeast(1)] = 32
    free_run_warmup: Annotated[int, AtLeast(1)] = 200
    free_run_steps: Annotated[int, AtLeast(1)] = 84


@register_task("mackey_glass")
class MackeyGlass(SeriesPrediction):
    """Mackey-Glass (tau = 17) next-step prediction and free run; NRMSE."""

    Options = MackeyGlassOptions
    presets = {"quick": {**SeriesPrediction.presets["quick"], "task.free_run_windows": 8,
                         "task.free_run_warmup": 50, "task.free_run_steps": 20}}

    def series(self) -> tuple[Tensor, Tensor]:
        values = scale_to_unit_interval(mackey_glass(self.total_steps() + 1))
        values = torch.from_numpy(values).float().unsqueeze(-1)
        return values[:-1], values[1:]

    def splits(self, batch_size: int, seed: int) -> Splits:
        for split in ("val", "test"):            # refuse a bad free run before training, not after
            self.free_run_windows(split)
        return super().splits(batch_size, seed)

    def free_run_windows(self, split: str) -> tuple[Tensor, Tensor, Tensor]:
        """(warm-up inputs (W, warmup, 1), the true value the last free-run step predicts (W,),
        all targets of the split (N,)) for the free run on `split`."""
        options = self.options
        inputs, targets = self.split_series(split)            # inputs[i] = x(i), targets[i] = x(i + 1)
        truth = targets[:, 0]
        warmup, steps, count = options.free_run_warmup, options.free_run_steps, options.free_run_windows
        if min(warmup, steps, count) <= 0 or warmup + steps > truth.shape[0]:
            raise BenchmarkError(f"the free run needs positive task.free_run_warmup, "
                                 f"task.free_run_steps and task.free_run_windows with warmup + steps "
                                 f"<= task.{split}_steps ({truth.shape[0]}), got warmup {warmup}, "
                                 f"steps {steps}, windows {count}")
        starts = torch.linspace(0, truth.shape[0] - warmup - steps, count).long()
        windows = starts.unsqueeze(1) + torch.arange(warmup)
        # prediction k after reading inputs[s .. s + warmup - 1] is of targets[s + warmup - 1 + k]
        return inputs[windows], truth[starts + warmup + steps - 2], truth

    def evaluate_model(self, model: nn.Module, split: Literal["val", "test"]) -> dict[str, float]:
        warmup, last_target, truth = self.free_run_windows(split)
        predicted = free_run(model, warmup, self.options.free_run_steps)     # (W, steps)
        error = predicted[:, -1].double() - last_target.to(predicted.device).double()
        return {"free_run_nrmse": float(error.pow(2).mean().sqrt() / truth.double().std())}

    def references(self) -> tuple[Reference, ...]:
        spread = float(torch.std(self.series()[1].double()))
        return (Reference("100-unit ESN, 1-step", 0.0020 / spread, "reservoirpy documentation",
                          f"published as RMSE 0.0020 on the series scaled to [-1, 1]; divided "
                          f"here by our series' std {spread:.3f}"),
                Reference("predict the mean", 1.0, "NRMSE definition"),
                Reference("1000-unit ESN, free run (free_run_nrmse at 84 steps)", 10 ** -4.2,
                          "Jaeger & Haas 2004", "free-running metric, not the one-step primary"))


def free_run(model: nn.Module, warmup: Tensor, steps: int) -> Tensor:
    """Teacher-force `warmup` (W, T, 1) through the model, then feed each prediction back as the
    next input for `steps` steps through the carried state; (W, steps) predictions, the first of
    which is the one made after the last warm-up value."""
    device = next(model.parameters()).device
    warmup = warmup.to(device)
    batch = warmup.shape[0]
    one_step = torch.ones(batch, dtype=torch.long, device=device)
    encoded = model.encoder(model.embed(SequenceBatch(warmup, one_step * warmup.shape[1])), None)
    prediction = model.head.predict(encoded.outputs[:, -1:])             # (W, 1, 1)
    state, predictions = encoded.state, [prediction]
    for _ in range(steps - 1):
        encoded = model.encoder(model.embed(SequenceBatch(prediction, one_step)), state)
        prediction = model.head.predict(encoded.outputs)
        state = encoded.state
        predictions.append(prediction)
    return torch.cat(predictions, dim=1)[..., 0]


@register_task("narma10")
class Narma10(SeriesPrediction):
    """NARMA-10 system identification (Atiya & Parlos 2000); NRMSE."""

    Options = SeriesOptions

    def series(self) -> tuple[Tensor, Tensor]:
        u, y = narma10(self.total_steps() + 1)
        return (torch.from_numpy(u[:-1]).float().unsqueeze(-1),
                torch.from_numpy(y[1:]).float().unsqueeze(-1))

    def references(self) -> tuple[Reference, ...]:
        return (Reference("predict the mean", 1.0, "NRMSE definition"),)
