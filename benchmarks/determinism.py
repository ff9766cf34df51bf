"""Are runs reproducible on this device? Each case is trained twice with the same seed, through
`rnnbench.training.runner.run` exactly as the CLI calls it, into two stores; the check prints whether the two
records agree bit for bit (every metric and the best checkpoint's weights), and what each run
recorded about its kernels (`environment.deterministic`, `nondeterministic_ops`).

`python -m benchmarks determinism` (CPU here; the same command on a GPU machine checks cuDNN).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from benchmarks.timing import size
from rnnbench.training.runner import run
from rnnbench.store import ResultStore

COPY = {"task.length": "20", "task.train_size": "512", "task.eval_size": "128",
        "arch.hidden_size": "64", "trainer.batch_size": "32", "trainer.max_steps": size("60", "6"),
        "trainer.val_every_steps": size("20", "3"), "trainer.early_stopping": "false"}
CASES = [
    ("lstm", "copy", COPY),
    ("gru", "copy", {**COPY, "arch.num_layers": "2", "arch.dropout": "0.3"}),
    ("deep_rnn", "copy", {**COPY, "arch.num_layers": "3", "arch.dropout": "0.3", "arch.variational": "true"}),
    ("lstm", "narma10", {"task.train_steps": "2000", "task.val_steps": "1000", "task.test_steps": "1000",
                         "trainer.max_steps": size("60", "6"), "trainer.val_every_steps": size("20", "3")}),
]


def _weights(store: Path, run_id: str) -> dict[str, torch.Tensor]:
    checkpoint = store.parent / "checkpoints" / run_id / "best.ckpt"
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]


def main() -> list[dict]:
    figures = []
    print(f"{'architecture':<10} {'task':<9} {'same metrics':>13} {'same weights':>13} "
          f"{'deterministic':>14}  nondeterministic ops / device")
    with tempfile.TemporaryDirectory() as folder:
        for architecture, task, settings in CASES:
            stores = [Path(folder) / side / "r.sqlite" for side in ("a", "b")]
            results = [run(architecture, task, settings, store=store, progress=False) for store in stores]
            first, second = (_weights(store, result.run_id) for store, result in zip(stores, results))
            same_weights = all(torch.equal(first[name], second[name]) for name in first)
            environment = ResultStore(stores[0]).runs_frame().iloc[0].environment
            ops = ", ".join(environment["nondeterministic_ops"]) or "-"
            print(f"{architecture:<10} {task:<9} {str(results[0].metrics == results[1].metrics):>13} "
                  f"{str(same_weights):>13} {str(environment['deterministic']):>14}  "
                  f"{ops} / {environment['device']}", flush=True)
            figures.append({"architecture": architecture, "task": task,
                            "same_metrics": results[0].metrics == results[1].metrics,
                            "same_weights": same_weights, "deterministic": environment["deterministic"],
                            "nondeterministic_ops": environment["nondeterministic_ops"],
                            "device": environment["device"], "threads": environment.get("threads")})
    return figures
