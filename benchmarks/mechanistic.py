"""What the mechanistic track costs on this machine: one LSTM run per task at the task's own
defaults (its training lengths, vocabulary, width 128, batch 64), cut to `STEPS` training steps.

Per task: seconds per training step (the run's `fit_s` over its steps, validation rounds
included), the final validation and test pass (`evaluate_s`: for the length tasks the test covers
every unseen length 41-500), and the estimated cost of a full run at the task's default budget
(`trainer.max_steps` steps, early stopping aside): setup + steps x per step + evaluation. One
thread, one run at a time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.timing import Table, recorded, size
from rnnbench.core import registry
from rnnbench.store import ResultStore
from rnnbench.training.runner import run

TASKS = ("even_pairs", "parity_check", "cycle_navigation", "modular_arithmetic", "reverse_string",
         "stack_manipulation", "modular_arithmetic_brackets", "solve_equation", "parity", "modular_counting",
         "permutations_a5", "permutations_s5", "mqar", "in_context_recall", "noisy_recall", "fuzzy_recall",
         "selective_copy", "compression", "memorization")
STEPS = size(100, 2)
SMOKE_SLICE = size({}, {"task.test_length_step": "100", "task.eval_per_length": "1", "task.eval_size": "16",
                        "task.train_size": "64"})


def main() -> dict:
    print(f"lstm, each task's defaults, {STEPS} training steps, 1 thread; full run = setup + default "
          f"steps x s/step + evaluation")
    table = Table("", [("task", ""), ("s/step", ".3f"), ("evaluation s", ".1f"), ("default steps", ",d"),
                       ("full run min", ".1f")])
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        store = ResultStore(Path(folder) / "bench.sqlite")
        for name in TASKS:
            task = registry.tasks()[name]
            fields = {f"task.{field}" for field in task.Options.__dataclass_fields__}
            sliced = {key: value for key, value in SMOKE_SLICE.items() if key in fields}
            result = run("lstm", name, {"trainer.max_steps": str(STEPS), "trainer.val_every_steps": str(STEPS),
                                        **sliced}, store=store, progress=False, check=False)
            timings = recorded(store, result.run_id)["environment"]["timings"]
            per_step = timings["fit_s"] / STEPS
            default_steps = int(task.defaults.get("trainer.max_steps", STEPS))
            full = timings["setup_s"] + default_steps * per_step + timings["evaluate_s"] + timings.get("baselines_s", 0)
            table.add(name, per_step, timings["evaluate_s"], default_steps, full / 60)
            figures[name] = {"seconds_per_step": per_step, "evaluate_s": timings["evaluate_s"],
                             "default_steps": default_steps, "full_run_minutes": full / 60}
    table.print()
    return {"steps": STEPS, "tasks": figures}


if __name__ == "__main__":
    main()
