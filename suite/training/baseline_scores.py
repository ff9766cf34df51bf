"""The task's baselines (`Task.baselines`) scored as the run is: with the task's own metrics, fed
through the run's head, on the same test split (so per seed, where the seed draws the data)."""

from __future__ import annotations

import torch

from rnnbench.core.contracts import Splits, Task
from rnnbench.toolkit.heads import Head

PREFIX = "baseline/"


def score_baselines(task: Task, head: Head, splits: Splits) -> dict[str, float]:
    """{`baseline/NAME`: the baseline's primary metric on the test split}."""
    scores = {}
    for baseline in task.baselines(splits):
        metrics = task.metrics()
        with torch.no_grad():
            for batch in splits.test:
                head.update_metrics(metrics, baseline.predict(batch), batch)
        scores[PREFIX + baseline.name] = float(metrics.compute()[task.primary_metric])
    return scores
