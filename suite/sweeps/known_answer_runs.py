"""Running and judging the known answers (`rnnbench.sweeps.known_answers` declares and records
them; this module runs their sweeps, so it stays out of what `publish` imports)."""

from __future__ import annotations

from typing import Any

from rnnbench.store import ResultStore
from rnnbench.sweeps.known_answers import KnownAnswer
from rnnbench.sweeps.plan import plan_sweep
from rnnbench.sweeps.spec import load
from rnnbench.sweeps.workers import execute


def run_answers(answers: list[KnownAnswer], store: ResultStore, workers: int = 1,
                progress: bool = True) -> None:
    """Run each answer's sweep into `store` (completed runs are kept and skipped)."""
    for answer in answers:
        spec = load(answer.sweep)
        plan = plan_sweep(spec)
        store.record_sweep(spec.name, spec.as_dict())
        store.plan_runs(spec.name, [item.as_record() for item in plan.runs])
        execute(plan.runs, store, workers=workers, progress=progress, group=spec.name)


def judge(answer: KnownAnswer, store: ResultStore) -> dict[str, Any]:
    """The answer's value (mean over the completed runs its sweep planned) and whether it held."""
    planned = store.sweep_frame(load(answer.sweep).name)
    completed = planned[planned.status == "completed"]
    values = [metrics.get(answer.metric) for metrics in completed.metrics]
    values = [float(value) for value in values if value is not None]
    value = sum(values) / len(values) if values else float("nan")
    return {"metric": answer.metric, "value": value if values else None, "bounds": answer.bounds(),
            "held": bool(values) and answer.holds(value), "runs": sorted(completed.run_id),
            "planned": len(planned), "source": answer.source}
