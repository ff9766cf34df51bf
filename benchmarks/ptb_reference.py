"""Zaremba et al.'s small LSTM on the Penn Treebank: the runner against the bare reference loop on
the same data (`python -m benchmarks ptb_reference`; not in the default set, to keep `nox -s bench`
within its 10 minutes on 2 CPUs).

Both sides start as `rnnbench run lstm ptb --preset zaremba-small` does (2x200 LSTM, batch 20,
20 steps of truncated BPTT, SGD lr 1, clipping at 5, uniform init in [-0.1, 0.1], the loss summed
over steps and averaged over the batch, the state carried) and read the same training batches:
the first ones of the real training stream. The reference loop is a plain PyTorch loop
(`benchmarks.runner_overhead.bare_loop`); the runner is `rnnbench.training.runner.run`
(`benchmarks.runner_overhead.with_runner`), budget cut to the steps timed, evaluation streams cut
to `task.eval_tokens` (the validation and test at the end are not timed in step time). The figure:
the median over three windows of 300 steps each of the mean step time, after a warm-up; also the
data-loading share and the peak memory of each side. Threads: the runner's policy for a run alone.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.runner_overhead import bare_loop, with_runner
from benchmarks.timing import Table, Windows, ratio, runner_threads, size, torch_threads

PRESET = "zaremba-small"
WINDOWS = size(Windows(50, 3, 300), Windows(2, 2, 3))
EVAL_TOKENS = size(2_000, 200)


def main() -> dict[str, Any]:
    from rnnbench.toolkit.datasets import require

    require("ptb")   # a missing dataset stops here, with the message naming the fix
    steps = WINDOWS.total
    settings = {"trainer.max_steps": steps, "task.eval_tokens": EVAL_TOKENS}
    threads = runner_threads(1)
    figures: dict[str, Any] = {"preset": PRESET, "settings": settings, "windows": WINDOWS.as_dict(),
                               "threads": threads}
    with torch_threads(threads):
        print(f"lstm ptb --preset {PRESET}, {steps} training steps each side ({WINDOWS.describe()}), "
              f"evaluation streams cut to {EVAL_TOKENS} tokens; {threads} thread(s)", flush=True)
        for name, side in (("bare", lambda: bare_loop("lstm", "ptb", settings, steps, preset=PRESET)),
                           ("runner", lambda: with_runner("lstm", "ptb", settings, preset=PRESET))):
            started = time.perf_counter()
            figures[name] = side().figures(WINDOWS)
            print(f"  {name}: {time.perf_counter() - started:.1f} s", flush=True)
    bare, ours = figures["bare"], figures["runner"]
    figures["runner_over_bare"] = ratio(ours["step_s"], bare["step_s"])
    table = Table("\nZaremba-small on PTB, training step time (median of the windows)",
                  [("side", ""), ("step ms", ".2f"), ("tokens/s", ",.0f"), ("data share", ".1%"),
                   ("peak MB", ",.0f"), ("whole run s", ".1f"), ("/ bare", ".3f")])
    tokens = 20 * 20
    for name, side in (("bare reference loop", bare), ("runner", ours)):
        table.add(name, side["step_s"] * 1e3, tokens / side["step_s"], side["data_share"], side["peak_memory_mb"],
                  side["whole_run_s"], ratio(side["step_s"], bare["step_s"]))
    table.print()
    return figures
