"""The modern recurrences: each parallel path against its own step-by-step loop, and each
architecture's training step against nn.LSTM at the same parameter count.

1. Parallel against sequential: `encoder(inputs)` (the scan, convolution or chunkwise form)
   against `encoder.forward_recurrent(inputs)` (the loop of the equations), forward only under
   no_grad, at T = 256, 1024 and 4096, batch 4, hidden 64, one thread; each the median of windows
   (`benchmarks.timing.time_steps`). The goal the suite sets itself: at T = 1024 the parallel path
   at least 10 times faster than its loop for the diagonal recurrences (mingru, minlstm, lru,
   rglru, s4d, mamba), and its time linear in T. mLSTM's parallel form is quadratic in T (its
   4096 point is left out: a (T x T) matrix per head and item).
2. Against nn.LSTM: a training step (forward, squared error on a readout of the final state,
   backward, Adam) at T = 256, batch 32, 8 features, each architecture at the hidden size whose
   parameter count is closest to nn.LSTM(8, 64)'s, one thread; the ratio of step times.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from benchmarks.architectures import FusedSequence, summary, training_step
from benchmarks.timing import Table, Windows, linear_fit, ratio, size, time_steps, torch_threads
from rnnbench.core import registry
from rnnbench.core.contracts import SequenceBatch

FEATURES, HIDDEN, BATCH = 8, 64, 4
DIAGONAL = ("mingru", "minlstm", "lru", "rglru", "s4d", "mamba")
PARALLEL = (*DIAGONAL, "deltanet", "gated_deltanet", "mlstm")
TRAINED = (*PARALLEL, "slstm", "indrnn")
LENGTHS = size([256, 1024, 4096], [16, 32])
QUADRATIC_UP_TO = 1024      # mLSTM's parallel form: (T x T) per head
GOAL_LENGTH, GOAL = size(1024, 32), 10.0
WINDOWS = size(Windows(1, 3, 2), Windows(1, 1, 1))
STEP_LENGTH, STEP_BATCH = size(256, 16), size(32, 4)


def _encoder(name: str, hidden: int) -> nn.Module:
    cls = registry.get_architecture(name)
    torch.manual_seed(0)
    return cls().build(FEATURES, hidden, cls.Options())


def _inputs(batch: int, length: int) -> SequenceBatch:
    generator = torch.Generator().manual_seed(0)
    return SequenceBatch(torch.randn(batch, length, FEATURES, generator=generator), torch.full((batch,), length))


def parallel_against_sequential() -> dict[str, dict[int, dict[str, float]]]:
    figures: dict[str, dict[int, dict[str, float]]] = {}
    for name in PARALLEL:
        encoder, figures[name] = _encoder(name, HIDDEN).eval(), {}
        for length in LENGTHS:
            if name == "mlstm" and length > QUADRATIC_UP_TO:
                continue
            inputs = _inputs(BATCH, length)
            with torch.no_grad():
                parallel = time_steps(lambda: encoder(inputs), WINDOWS)
                sequential = time_steps(lambda: encoder.forward_recurrent(inputs), WINDOWS)
            figures[name][length] = {"parallel_s": parallel, "sequential_s": sequential,
                                     "speedup": ratio(sequential, parallel)}
        print(f"  {name}: " + ", ".join(f"T={t} x{f['speedup']:.1f}" for t, f in figures[name].items()), flush=True)
    return figures


def _matched_hidden(name: str, target: int) -> tuple[int, int]:
    """(hidden size, parameters) of the encoder whose parameter count is closest to `target`."""
    cls = registry.get_architecture(name)
    counts = {hidden: cls().estimate_parameters(FEATURES, hidden, cls.Options()) for hidden in range(8, 1025, 8)}
    hidden = min(counts, key=lambda size_: abs(counts[size_] - target))
    return hidden, counts[hidden]


def against_lstm() -> dict[str, dict[str, float]]:
    inputs, targets = _inputs(STEP_BATCH, STEP_LENGTH), torch.zeros(STEP_BATCH)
    lstm = FusedSequence(nn.LSTM(FEATURES, HIDDEN, batch_first=True))
    lstm_parameters = sum(p.numel() for p in lstm.parameters())
    lstm_s = time_steps(training_step(lstm, lambda: lstm(inputs), targets), WINDOWS)
    figures = {"nn.LSTM": {"hidden": HIDDEN, "parameters": lstm_parameters, "step_s": lstm_s, "ratio": 1.0}}
    for name in TRAINED:
        hidden, parameters = _matched_hidden(name, lstm_parameters)
        encoder = _encoder(name, hidden)
        seconds = time_steps(training_step(encoder, summary(encoder, inputs), targets), WINDOWS)
        figures[name] = {"hidden": hidden, "parameters": parameters, "step_s": seconds,
                         "ratio": ratio(seconds, lstm_s), "items_per_s": STEP_BATCH * STEP_LENGTH / seconds}
        print(f"  {name}: hidden {hidden}, {parameters} parameters, {seconds * 1e3:.1f} ms", flush=True)
    return figures


def main() -> dict[str, Any]:
    with torch_threads(1):
        print(f"parallel path against its loop (forward, no_grad), batch {BATCH}, hidden {HIDDEN}, one thread; "
              f"each: {WINDOWS.describe()}", flush=True)
        scan = parallel_against_sequential()
        print(f"training step against nn.LSTM(8, {HIDDEN}) at matched parameters, T={STEP_LENGTH}, "
              f"batch {STEP_BATCH}", flush=True)
        steps = against_lstm()
    report(scan, steps)
    return {"threads": 1, "windows": WINDOWS.as_dict(), "lengths": LENGTHS, "goal": {"length": GOAL_LENGTH,
            "speedup": GOAL, "for": list(DIAGONAL)}, "parallel_against_sequential": scan, "against_lstm": steps}


def report(scan: dict[str, dict[int, dict[str, float]]], steps: dict[str, dict[str, float]]) -> None:
    table = Table(f"\nparallel path against its own loop: ms per forward (speed-up); goal: x{GOAL:.0f} at "
                  f"T={GOAL_LENGTH} for the diagonal recurrences, time linear in T",
                  [("architecture", ""), *[(f"T={t} parallel", ".1f") for t in LENGTHS],
                   *[(f"T={t} loop", ".1f") for t in LENGTHS], *[(f"x T={t}", ".1f") for t in LENGTHS],
                   ("parallel R^2 in T", ".3f"), ("goal met", "")])
    for name, points in scan.items():
        row = [name, *[points[t]["parallel_s"] * 1e3 if t in points else None for t in LENGTHS],
               *[points[t]["sequential_s"] * 1e3 if t in points else None for t in LENGTHS],
               *[points[t]["speedup"] if t in points else None for t in LENGTHS]]
        fit = linear_fit(list(points), [point["parallel_s"] for point in points.values()]) if len(points) > 2 else None
        goal = ("n/a" if name not in DIAGONAL else
                "yes" if points.get(GOAL_LENGTH, {}).get("speedup", 0.0) >= GOAL else "no")
        table.add(*row, fit["r2"] if fit else None, goal)
    table.print()
    table = Table(f"\ntraining step at nn.LSTM's parameter count, T={STEP_LENGTH}, batch {STEP_BATCH} "
                  f"(ratio > 1: slower than nn.LSTM)",
                  [("architecture", ""), ("hidden", "d"), ("parameters", ",d"), ("ms/step", ".1f"),
                   ("/ nn.LSTM", ".2f")])
    for name, figure in steps.items():
        table.add(name, figure["hidden"], figure["parameters"], figure["step_s"] * 1e3, figure["ratio"])
    table.print()
