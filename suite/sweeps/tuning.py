"""Equal-budget tuning (Melis, Dyer & Blunsom 2018; Greff et al. 2017): every (architecture, task)
gets the same number of trials drawn from the same search space by Optuna (TPE or random), scored on
the task's primary validation metric; then its best configuration runs with every seed of the sweep
and is evaluated on test.

Every trial is a run in the results store with its own run id, recorded in the sweep's plan with its
number and its sampled settings. A tuning sweep killed and started again replays its completed trials
from the store into a fresh study and re-runs (resuming) the unfinished ones. Trial k's sampler is
seeded with (pair, k), so a study continued after a restart draws what an uninterrupted one would
(with one worker; with several, trials are drawn as workers free up).

With `tune.halving` the trials are drawn at the first rung's budget and the best go on through the
rungs (`rnnbench.sweeps.halving`); a trial's run at rung r is recorded with `rung: r` in its
params, and the study learns from the first rung, where every trial has a score.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from rnnbench.core import registry
from rnnbench.store import ResultStore
from rnnbench.sweeps.halving import rung_sizes, rung_steps, survivors
from rnnbench.sweeps.plan import PlannedRun, TunedPair, planned_run
from rnnbench.sweeps.spec import Distribution, SweepSpec, setting_text

TRIAL = "trial"
RUNG = "rung"


def _optuna_distribution(distribution: Distribution):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    low_high = distribution.values
    if distribution.kind == "choice":
        return CategoricalDistribution(list(distribution.values))
    if distribution.kind == "int":
        return IntDistribution(low_high[0], low_high[1])
    return FloatDistribution(low_high[0], low_high[1], log=distribution.kind == "log_uniform")


@dataclass
class _PairStudy:
    pair: TunedPair
    study: Any
    direction: str
    metric: str
    drawn: int = 0                                          # trials drawn so far
    retry: list[PlannedRun] = field(default_factory=list)   # recorded but unfinished trials
    open_trials: dict[str, Any] = field(default_factory=dict)   # run id -> its Optuna trial
    best_runs: list[PlannedRun] | None = None
    values: dict[int, dict[str, Any]] = field(default_factory=dict)   # trial number -> its settings
    scores: dict[int, dict[int, float | None]] = field(default_factory=dict)   # rung -> trial -> score
    promoted: dict[int, list[PlannedRun]] = field(default_factory=dict)   # rung -> its runs to hand out


class TuningSource:
    """The runs of a tuned sweep, planned as trials finish (a `rnnbench.sweeps.workers.RunSource`)."""

    def __init__(self, pairs: list[TunedPair], spec: SweepSpec, store: ResultStore,
                 untuned: list[PlannedRun] = ()) -> None:
        """`untuned`: the plan's runs of the architectures it does not tune (`tune: false`),
        handed out first."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.spec, self.store = spec, store
        self.untuned = list(untuned)
        self.tune = spec.tune
        self.distributions = {key: _optuna_distribution(item) for key, item in self.tune.space.items()}
        self.studies = [self._study(pair) for pair in pairs]
        self.failures: list[str] = []

    # ---- set-up and replay

    def _study(self, pair: TunedPair) -> _PairStudy:
        import optuna

        task = registry.get_task(pair.task)
        direction = "minimize" if task.direction == "min" else "maximize"
        state = _PairStudy(pair, optuna.create_study(direction=direction), task.direction,
                           f"val/{task.primary_metric}")
        for number, run_id, params in self.store.planned_trials(self.spec.name, pair.architecture, pair.task):
            if _pair_of(params) != pair.key:
                continue
            rung = params.get(RUNG, 0)
            state.values[number] = params[TRIAL]
            if rung == 0:
                state.drawn = max(state.drawn, number + 1)
            else:   # a later rung was chosen before the stop: the same choice, not made again
                state.promoted.setdefault(rung, [])
            record = self.store.get(run_id)
            if record is not None and record.status in ("completed", "failed", "diverged"):
                self._tell(state, run_id, params[TRIAL], record.status, record.metrics, number, rung)
            else:   # killed before it finished: run it again (it resumes from its checkpoint)
                state.retry.append(self._trial_run(pair, number, params[TRIAL], rung))
        return state

    def _tell(self, state: _PairStudy, run_id: str, values: dict[str, Any], status: str,
              metrics: dict[str, float], number: int, rung: int) -> None:
        import optuna

        score = metrics.get(state.metric)
        complete = status == "completed" and score is not None
        state.scores.setdefault(rung, {})[number] = score if complete else None
        if rung > 0:      # the study learns from the first rung, where every trial has a score
            return
        trial = state.open_trials.pop(run_id, None)
        if trial is not None:
            state.study.tell(trial, score if complete else None,
                             state=optuna.trial.TrialState.COMPLETE if complete else optuna.trial.TrialState.FAIL)
        else:
            state.study.add_trial(optuna.trial.create_trial(
                params=values, distributions=self.distributions, value=score if complete else None,
                state=optuna.trial.TrialState.COMPLETE if complete else optuna.trial.TrialState.FAIL))

    # ---- drawing trials

    def _trial_run(self, pair: TunedPair, number: int, values: dict[str, Any], rung: int = 0) -> PlannedRun:
        """Trial `number` with its settings, at rung `rung`'s step budget when halving."""
        overrides, params = _with(pair, values), {TRIAL: values, "pair": pair.key}
        if self.tune.halving is not None:
            steps = rung_steps(int(float(self.spec.settings["trainer.max_steps"])), self.tune.halving)
            overrides["trainer.max_steps"] = str(steps[rung])
            params[RUNG] = rung
        return planned_run(pair.architecture, pair.task, self.spec.seeds[0], overrides, pair.preset,
                           role="trial", trial=number, params=params)

    def _draw(self, state: _PairStudy) -> PlannedRun:
        number = state.drawn
        state.study.sampler = self._sampler(state.pair, number)
        trial = state.study.ask(self.distributions)
        state.values[number] = dict(trial.params)
        run = self._trial_run(state.pair, number, dict(trial.params))
        state.open_trials[run.run_id] = trial
        state.drawn += 1
        self.store.plan_runs(self.spec.name, [run.as_record()])
        return run

    def _promote(self, state: _PairStudy) -> None:
        """Choose each rung whose rung below has finished: its best 1 / eta go on."""
        sizes = rung_sizes(self.tune.trials, self.tune.halving)
        for rung in range(1, len(sizes)):
            below = state.scores.get(rung - 1, {})
            if rung in state.promoted or len(below) < sizes[rung - 1]:
                continue
            chosen = survivors(below, sizes[rung], state.direction)
            runs = [self._trial_run(state.pair, number, state.values[number], rung) for number in chosen]
            self.store.plan_runs(self.spec.name, [run.as_record() for run in runs])
            state.promoted[rung] = runs

    def _final_scores(self, state: _PairStudy) -> dict[int, float | None] | None:
        """The scores that choose the best configuration (the last rung's, with halving), once
        all of them are in; None before."""
        sizes = rung_sizes(self.tune.trials, self.tune.halving) if self.tune.halving else [self.tune.trials]
        scores = state.scores.get(len(sizes) - 1, {})
        return scores if len(scores) >= sizes[-1] else None

    def _sampler(self, pair: TunedPair, number: int):
        import optuna

        seed = int(hashlib.sha256(f"{pair.key}/{number}".encode()).hexdigest()[:8], 16)
        if self.tune.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        startup = min(10, max(1, self.tune.trials // 2))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)

    # ---- RunSource

    def next_run(self) -> PlannedRun | None:
        if self.untuned:
            return self.untuned.pop(0)
        for state in self.studies:
            if state.retry:
                return state.retry.pop(0)
            if state.drawn < self.tune.trials:
                return self._draw(state)
            if self.tune.halving is not None:
                self._promote(state)
                waiting = next((runs for runs in state.promoted.values() if runs), None)
                if waiting:
                    return waiting.pop(0)
            if state.best_runs is None and self._final_scores(state) is not None:
                state.best_runs = self._best_runs(state)
            if state.best_runs:
                return state.best_runs.pop(0)
        return None

    def finished(self, run: PlannedRun, status: str, metrics: dict[str, float]) -> None:
        if run.role != "trial":
            return
        for state in self.studies:
            if state.pair.key == run.params.get("pair"):
                self._tell(state, run.run_id, run.params[TRIAL], status, metrics, run.trial,
                           run.params.get(RUNG, 0))

    # ---- the best configuration

    def _best_runs(self, state: _PairStudy) -> list[PlannedRun]:
        pair = state.pair
        final = self._final_scores(state) or {}
        scored = [number for number, score in final.items() if score is not None]
        if not scored:
            self.failures.append(f"{pair.architecture} on {pair.task}: no trial of {self.tune.trials} "
                                 f"completed, so there is no best configuration to run")
            self.store.record_tuning(self.spec.name, pair.architecture, pair.task,
                                     trials=self.tune.trials, best_run_id=None, importances={})
            return []
        best = state.values[survivors({number: final[number] for number in scored}, 1, state.direction)[0]]
        runs = [planned_run(pair.architecture, pair.task, seed, _with(pair, best), pair.preset,
                            role="best", params={TRIAL: dict(best), "pair": pair.key})
                for seed in self.spec.seeds]
        self.store.plan_runs(self.spec.name, [run.as_record() for run in runs])
        self.store.record_tuning(self.spec.name, pair.architecture, pair.task, trials=self.tune.trials,
                                 best_run_id=runs[0].run_id, importances=importances(state.study))
        return runs


def importances(study: Any) -> dict[str, float]:
    """Each tuned setting's share of the variance of the score (Optuna's fANOVA evaluator), or {}
    when there are too few completed trials to say."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(completed) < 2:
        return {}
    try:
        values = optuna.importance.get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError):
        return {}
    return {key: float(value) for key, value in values.items()}


def _with(pair: TunedPair, values: dict[str, Any]) -> dict[str, str]:
    """The pair's settings with a trial's sampled values."""
    return {**pair.overrides, **{key: setting_text(value) for key, value in values.items()}}


def _pair_of(params: dict[str, Any]) -> str | None:
    return params.get("pair")
