"""How a training step's time grows with sequence length T, hidden size and batch size, for every
registered architecture that reads sequences (pixelrnn, which reads images, has no T: left out).

The step is that of `benchmarks.architectures` (forward, squared error on a linear readout of the
final state, backward, Adam step) on random sequences of 8 features, each architecture with its
default options, one thread, timed by `benchmarks.timing.time_steps` (warm-up, median of windows).
Three sweeps, each varying one size with the others at their defaults (T = 100, hidden 64, batch
32): T = 50, 100, 200, 400, 800; hidden 32, 64, 128, 256; batch 8, 32, 128.

Linearity in T: the least-squares line of step time against T over the T sweep, with its slope
(ms per step of T), intercept (ms) and R^2; "linear" when R^2 >= 0.99 and the time at the longest
T is within 25% of the line's value there (a recurrence whose per-step cost grows with T, e.g.
quadratic attention over the past, fails both).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks.architectures import build_encoder, sequence_architectures, summary, training_step
from benchmarks.timing import Table, Windows, linear_fit, size, time_steps, torch_threads
from rnnbench.core.contracts import SequenceBatch

FEATURES = 8
DEFAULTS = {"length": 100, "hidden": 64, "batch": 32}
SWEEPS = {"length": size([50, 100, 200, 400, 800], [10, 20, 40]),
          "hidden": size([32, 64, 128, 256], [16, 32]),
          "batch": size([8, 32, 128], [4, 8])}
WINDOWS = size(Windows(1, 3, 2), Windows(1, 1, 1))
R2_LINEAR, LAST_POINT_TOLERANCE = 0.99, 0.25


def step_seconds(architecture: str, length: int, hidden: int, batch: int) -> float:
    generator = torch.Generator().manual_seed(0)
    inputs = SequenceBatch(torch.randn(batch, length, FEATURES, generator=generator), torch.full((batch,), length))
    torch.manual_seed(0)
    encoder = build_encoder(architecture, FEATURES, hidden)
    return time_steps(training_step(encoder, summary(encoder, inputs), torch.zeros(batch)), WINDOWS)


def linearity(lengths: list[int], seconds: list[float]) -> dict[str, Any]:
    fit = linear_fit(lengths, [s * 1e3 for s in seconds])
    predicted_last = fit["slope"] * lengths[-1] + fit["intercept"]
    off = abs(seconds[-1] * 1e3 - predicted_last) / predicted_last if predicted_last > 0 else float("inf")
    return {"slope_ms_per_step": fit["slope"], "intercept_ms": fit["intercept"], "r2": fit["r2"],
            "last_point_off": off, "linear": fit["r2"] >= R2_LINEAR and off <= LAST_POINT_TOLERANCE}


def main() -> dict[str, Any]:
    architectures = sequence_architectures()
    with torch_threads(1):
        print(f"training step time (ms), one thread, default options, {FEATURES} features; each point: "
              f"{WINDOWS.describe()}; the others at T={DEFAULTS['length']}, hidden {DEFAULTS['hidden']}, "
              f"batch {DEFAULTS['batch']}", flush=True)
        figures: dict[str, Any] = {"threads": 1, "windows": WINDOWS.as_dict(), "defaults": DEFAULTS,
                                   "sweeps": SWEEPS, "step_s": {}}
        for architecture in architectures:
            started = time.perf_counter()
            per_sweep: dict[str, list[float]] = {}
            for varied, values in SWEEPS.items():
                per_sweep[varied] = [step_seconds(architecture, **{**DEFAULTS, varied: value}) for value in values]
            figures["step_s"][architecture] = per_sweep
            print(f"  {architecture}: {time.perf_counter() - started:.1f} s", flush=True)
    lengths = SWEEPS["length"]
    figures["linear_in_length"] = {name: linearity(lengths, per_sweep["length"])
                                   for name, per_sweep in figures["step_s"].items()}
    report(figures)
    return figures


def report(figures: dict[str, Any]) -> None:
    lengths = SWEEPS["length"]
    table = Table(f"\nstep time against T (ms), and the least-squares line ms = slope x T + intercept "
                  f"(linear: R^2 >= {R2_LINEAR} and T={lengths[-1]} within {LAST_POINT_TOLERANCE:.0%} of it)",
                  [("architecture", ""), *[(f"T={t}", ".1f") for t in lengths],
                   (f"T={lengths[-1]}/T={lengths[0]}", ".1f"), ("slope ms/step", ".4f"), ("intercept ms", ".2f"),
                   ("R^2", ".4f"), ("linear", "")])
    for name, per_sweep in figures["step_s"].items():
        fit = figures["linear_in_length"][name]
        times = per_sweep["length"]
        table.add(name, *[t * 1e3 for t in times], times[-1] / times[0], fit["slope_ms_per_step"],
                  fit["intercept_ms"], fit["r2"], "yes" if fit["linear"] else "NO")
    table.print()
    for varied, label in (("hidden", "hidden size"), ("batch", "batch size")):
        values = SWEEPS[varied]
        table = Table(f"\nstep time against {label} (ms; ratio: largest / smallest)",
                      [("architecture", ""), *[(f"{varied} {v}", ".1f") for v in values],
                       (f"{values[-1]}/{values[0]}", ".2f")])
        for name, per_sweep in figures["step_s"].items():
            times = per_sweep[varied]
            table.add(name, *[t * 1e3 for t in times], times[-1] / times[0])
        table.print()
