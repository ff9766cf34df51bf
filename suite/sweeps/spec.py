"""Sweep files: a benchmark sweep written down in YAML, read with `yaml.safe_load` and checked
into a `SweepSpec` with one-line errors (unknown key, name or value type, with "did you mean").

    name: quick                  # default: the name of the file's folder
    architectures: [rnn, lstm]   # default: every registered one
    tasks: [copy, adding]        # default: every registered one
    seeds: 2                     # a count (0, 1, ...) or a list of seeds
    preset: quick                # a preset of each task
    budget: {steps: 200}         # per run: steps, epochs or time_s (wall time)
    params: 100k                 # parameter budget (arch.params): hidden sizes chosen to match
    set: {optim.lr: 0.003}       # fixed settings
    vary: {task.length: [50, 100]}            # a grid: every combination
    tune:                                     # equal-budget tuning (rnnbench.sweeps.tuning)
      trials: 8                               # the same for every (architecture, task)
      sampler: tpe                            # or random
      space:
        optim.lr: {log_uniform: [1.0e-4, 1.0e-1]}
        arch.hidden_size: {int: [16, 128]}
        arch.dropout: {uniform: [0.0, 0.5]}
        optim.optimizer: {choice: [adam, sgd]}
      halving: {rungs: 3, eta: 3}             # optional: successive halving over the step budget
    overrides:                                # settings for one task or one architecture
      tasks: {copy: {task.length: 50}}
      architectures:                          # each may vary on its own too
        esn: {arch.hidden_size: 200, vary: {optim.optimizer: [ridge, adam]}}
        recursive: {tasks: [sst-tree-binary]}  # and run only some of the sweep's tasks
        jordan: {tune: false}                  # left out of tuning (the ESN's ridge readout has no
                                               # learning rate): one configuration, its seeds

Setting names and values are checked by the configuration when the plan is made (`rnnbench.sweeps.plan`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

from rnnbench.core.errors import BenchmarkError, did_you_mean

TOP_LEVEL = ("name", "architectures", "tasks", "seeds", "preset", "budget", "params", "set", "vary",
             "tune", "overrides")
BUDGETS = {"steps": "trainer.max_steps", "epochs": "trainer.max_epochs", "time_s": "trainer.max_time_s"}
DISTRIBUTIONS = ("choice", "uniform", "log_uniform", "int")
SAMPLERS = ("tpe", "random")
MAX_SEEDS = 1_000
MAX_TRIALS = 10_000


@dataclass(frozen=True)
class Distribution:
    """One dimension of a search space: choice (values), uniform or log_uniform (low, high: floats)
    or int (low, high: integers, both included)."""

    kind: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Halving:
    """Successive halving over `rungs` budgets, each `eta` times the one before, the last the
    sweep's full step budget; 1 / eta of the trials go on to the next rung
    (`rnnbench.sweeps.halving`)."""

    rungs: int
    eta: int


@dataclass(frozen=True)
class TuneSpec:
    trials: int
    sampler: str
    space: dict[str, Distribution]
    halving: Halving | None = None

    @property
    def trial_runs(self) -> int:
        """Runs the trials of one pair take: `trials`, or with halving every rung's survivors."""
        from rnnbench.sweeps.halving import rung_sizes

        return sum(rung_sizes(self.trials, self.halving)) if self.halving else self.trials


@dataclass(frozen=True)
class SweepSpec:
    """A sweep, checked: `settings` are the fixed ones (`set`, budget and params), `vary` the grid,
    `task_settings` / `architecture_settings` the per-name overrides (and `task_vary` /
    `architecture_vary` their own grids)."""

    name: str
    architectures: list[str] | None
    tasks: list[str] | None
    seeds: list[int]
    preset: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    vary: dict[str, list[str]] = field(default_factory=dict)
    tune: TuneSpec | None = None
    task_settings: dict[str, dict[str, str]] = field(default_factory=dict)
    architecture_settings: dict[str, dict[str, str]] = field(default_factory=dict)
    task_vary: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    architecture_vary: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    architecture_tasks: dict[str, list[str]] = field(default_factory=dict)
    untuned: list[str] = field(default_factory=list)

    def tunes(self, architecture: str) -> bool:
        """Whether the sweep tunes this architecture's pairs (`tune:`, unless its override says
        `tune: false`)."""
        return self.tune is not None and architecture not in self.untuned

    def selects(self, architecture: str, task: str) -> bool:
        """Whether the pair is in the sweep as far as the file says (an architecture's override
        may restrict it to some tasks); compatibility is the registry's to decide."""
        return task in self.architecture_tasks.get(architecture, [task])

    def grid(self, architecture: str, task: str) -> list[dict[str, str]]:
        """Every combination of the values varied for this pair: the sweep's own `vary` and
        the pair's task and architecture overrides' `vary`."""
        axes = {**self.vary, **self.task_vary.get(task, {}), **self.architecture_vary.get(architecture, {})}
        return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True, default=str).encode()).hexdigest()[:10]


def setting_text(value: Any) -> str:
    """A YAML value as the text `--set` would give: true/false for booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class DuplicateKey(Exception):
    """A mapping of the sweep file names one key twice (YAML would keep the last silently)."""


def _unique_keys_loader() -> type:
    """yaml's SafeLoader, refusing a mapping that names a key twice."""
    import yaml

    class UniqueKeysLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: dict[Any, str] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                mark = key_node.start_mark
                where = f"line {mark.line + 1} column {mark.column + 1}"
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise DuplicateKey(f"the key '{key}' is given twice, at {seen[key]} and {where}: "
                                       f"keep one of them")
                seen.setdefault(key, where)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeysLoader


def load(path: str | Path) -> SweepSpec:
    """Read and check a sweep file; a BenchmarkError naming the file, the key and the fix."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"no sweep file at {path}: pass the path of a YAML sweep file, e.g. "
                             f"leaderboards/quick/sweep.yaml")
    try:
        document = yaml.load(path.read_text(), Loader=_unique_keys_loader())
    except DuplicateKey as error:
        raise BenchmarkError(f"{path}: {error}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise BenchmarkError(f"{path} is not valid YAML{at} ({getattr(error, 'problem', None) or error}): "
                             f"fix the file") from None
    return parse(document, default_name=path.resolve().parent.name, source=str(path))


def parse(document: Any, default_name: str = "sweep", source: str = "the sweep file") -> SweepSpec:
    """Check a sweep file's content (a mapping) into a SweepSpec."""
    from rnnbench.core import registry

    def fail(message: str) -> BenchmarkError:
        return BenchmarkError(f"{source}: {message}")

    if not isinstance(document, dict):
        raise fail(f"expected a mapping of keys ({', '.join(TOP_LEVEL)}), got "
                   f"{_kind(document)}: write it as key: value lines, e.g. architectures: [lstm]")
    for key in document:
        if key not in TOP_LEVEL:
            raise fail(f"unknown key '{key}'.{did_you_mean(str(key), TOP_LEVEL)} The keys are: "
                       f"{', '.join(TOP_LEVEL)}")

    name = document.get("name", default_name)
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise fail(f"name must be a non-empty text without '/', got {name!r}")

    architectures = _names(document.get("architectures"), "architectures", registry.architectures(),
                           "rnnbench list architectures", fail)
    tasks = _names(document.get("tasks"), "tasks", registry.tasks(), "rnnbench list tasks", fail)
    seeds = _seeds(document.get("seeds", 1), fail)
    preset = document.get("preset")
    if preset is not None and not isinstance(preset, str):
        raise fail(f"preset must be a preset's name, e.g. preset: quick, got {_kind(preset)}")

    settings = _settings(document.get("set") or {}, "set", fail)
    budget_settings = _budget_and_params(document, fail)
    vary = _vary(document.get("vary") or {}, "vary", fail)
    _refuse_contradictions(settings, budget_settings, vary, fail)
    settings.update(budget_settings)

    task_settings, task_vary, architecture_settings, architecture_vary, architecture_tasks, untuned = \
        _overrides(document.get("overrides") or {}, architectures, tasks, fail)
    for where, per_name, grids in (("overrides.tasks", task_settings, task_vary),
                                   ("overrides.architectures", architecture_settings, architecture_vary)):
        for owner, fixed in per_name.items():
            varied = set(fixed) & (set(vary) | set(grids.get(owner, {})))
            if varied:
                raise fail(f"{where}.{owner} fixes {', '.join(sorted(varied))}, which the sweep varies: "
                           f"keep it in one of them")
    tune = _tune(document.get("tune"), fail) if document.get("tune") is not None else None
    if tune is not None:
        both = set(tune.space) & (set(vary).union(*task_vary.values(), *architecture_vary.values()))
        if both:
            raise fail(f"{', '.join(sorted(both))} is both varied and tuned: keep it in one of vary "
                       f"or tune.space")
        fixed = set(tune.space) & set(settings).union(*task_settings.values(), *architecture_settings.values())
        if fixed:
            raise fail(f"{', '.join(sorted(fixed))} is both fixed and tuned: keep it in one of set "
                       f"(or overrides) or tune.space")
        if tune.halving is not None and "trainer.max_steps" not in settings:
            raise fail("tune.halving gives the rungs fractions of the step budget, and this sweep "
                       "states none: add budget: {steps: N} (the last rung's steps)")
        if "arch.hidden_size" in tune.space and "arch.params" in settings:
            raise fail("params chooses the hidden size, and tune.space tunes arch.hidden_size: keep "
                       "one of them")
    elif untuned:
        raise fail(f"overrides.architectures.{untuned[0]}.tune: false leaves out of tuning a sweep that "
                   f"tunes nothing: remove it, or add tune: to the sweep")
    return SweepSpec(name.strip(), architectures, tasks, seeds, preset, settings, vary, tune,
                     task_settings, architecture_settings, task_vary, architecture_vary, architecture_tasks,
                     untuned)


def _refuse_contradictions(settings: dict[str, str], budget: dict[str, str], vary: dict[str, list[str]],
                           fail: Callable[[str], BenchmarkError]) -> None:
    """One value per setting: `set` and `budget`/`params` may not both give one, nor `set` and
    `vary`, and a parameter budget chooses the hidden size, so neither may name that."""
    for key in sorted(set(settings) & set(budget)):
        by = "params" if key == "arch.params" else "budget (which lifts the other two budgets)"
        raise fail(f"{key} is given in set and by {by}: keep one of them")
    for key in sorted(set(settings) & set(vary)):
        raise fail(f"{key} is both fixed in set and varied in vary: keep it in one of them")
    if "arch.params" in {**settings, **budget} and "arch.hidden_size" in {**settings, **vary}:
        raise fail("params (a parameter budget) chooses the hidden size, and arch.hidden_size is given "
                   "too: keep one of them")


def _budget_and_params(document: dict[str, Any], fail: Callable[[str], BenchmarkError]) -> dict[str, str]:
    """The settings that `budget:` (one of steps, epochs, time_s; the other two lifted, so that
    a preset's step budget does not cap an epoch budget) and `params:` stand for."""
    settings: dict[str, str] = {}
    budget = document.get("budget")
    if budget is not None:
        if not isinstance(budget, dict) or len(budget) != 1:
            raise fail("budget must name one of steps, epochs or time_s, e.g. budget: {steps: 200}")
        (kind, amount), = budget.items()
        if kind not in BUDGETS:
            raise fail(f"unknown budget '{kind}'.{did_you_mean(str(kind), BUDGETS)} Use steps, "
                       f"epochs or time_s")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise fail(f"budget.{kind} must be a number, e.g. budget: {{{kind}: 200}}, got {_kind(amount)}")
        settings.update({key: "none" for other, key in BUDGETS.items() if other != kind})
        settings[BUDGETS[kind]] = setting_text(amount)
    if document.get("params") is not None:
        params = document["params"]
        if isinstance(params, bool) or not isinstance(params, (int, str)):
            raise fail(f"params must be a parameter count such as 100k or 100000, got {_kind(params)}")
        settings["arch.params"] = setting_text(params)
    return settings


def _overrides(overrides: Any, architectures: list[str] | None, tasks: list[str] | None,
               fail: Callable[[str], BenchmarkError]) -> tuple:
    """`overrides:` checked into (task settings, task vary, architecture settings, architecture
    vary, the tasks each architecture's overrides name)."""
    from rnnbench.core import registry

    if not isinstance(overrides, dict):
        raise fail(f"overrides must be a mapping with tasks and/or architectures, got {_kind(overrides)}")
    for key in overrides:
        if key not in ("tasks", "architectures"):
            raise fail(f"unknown key 'overrides.{key}'.{did_you_mean(str(key), ['tasks', 'architectures'])} "
                       f"Use overrides.tasks or overrides.architectures")
    for key, listed in (("tasks", tasks), ("architectures", architectures)):
        named = overrides.get(key) if isinstance(overrides.get(key), dict) else {}
        outside = [name for name in named if listed is not None and name not in listed]
        if outside:   # an override that would never act is a mistake in the file
            raise fail(f"overrides.{key} names {', '.join(map(str, outside))}, which the sweep's {key} do not "
                       f"include: add it to {key} or remove its override")
    task_settings, task_vary = _per_name(overrides.get("tasks"), "overrides.tasks", registry.tasks(), fail)
    architectures_overrides = dict(overrides.get("architectures") or {})
    architecture_tasks = _architecture_tasks(architectures_overrides, tasks, fail)
    untuned = _untuned(architectures_overrides, fail)
    architecture_settings, architecture_vary = _per_name(architectures_overrides,
                                                         "overrides.architectures", registry.architectures(), fail)

    return task_settings, task_vary, architecture_settings, architecture_vary, architecture_tasks, untuned


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__} ({value!r})"[:80]


def _names(value: Any, key: str, registered: dict[str, Any], listing: str, fail) -> list[str] | None:
    if value is None or value == "all":
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise fail(f"{key} must be a non-empty list of names (or all), got {_kind(value)}")
    for name in value:
        if name not in registered:
            raise fail(f"unknown {key[:-1]} '{name}' in {key}.{did_you_mean(name, registered)} "
                       f"See `{listing}`")
    return list(dict.fromkeys(value))


def _seeds(value: Any, fail) -> list[int]:
    from rnnbench.core.constraints import check_seed

    if isinstance(value, bool):
        raise fail(f"seeds must be a count (e.g. seeds: 3) or a list of seeds, got {_kind(value)}")
    if isinstance(value, int):
        if not 1 <= value <= MAX_SEEDS:
            raise fail(f"seeds must be between 1 and {MAX_SEEDS:,}, got {value}")
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        for seed in value:
            try:
                check_seed(seed, "a seed")
            except BenchmarkError as error:
                raise fail(f"seeds: {error}") from None
        return list(dict.fromkeys(value))
    raise fail(f"seeds must be a count (e.g. seeds: 3) or a list of seeds, got {_kind(value)}")


def _setting_key(key: Any, where: str, fail) -> str:
    namespaces = ("arch.", "task.", "optim.", "trainer.")
    if not isinstance(key, str) or not key.startswith(namespaces):
        raise fail(f"{where}: '{key}' is not a setting: name it with its namespace, e.g. "
                   f"optim.lr (namespaces: {', '.join(namespaces)})")
    return key


def _scalar_text(value: Any, where: str, fail) -> str:
    if isinstance(value, (dict, list)) or value is None:
        raise fail(f"{where} must be a single value (number, text or true/false), got {_kind(value)}")
    return setting_text(value)


def _settings(value: Any, where: str, fail) -> dict[str, str]:
    if not isinstance(value, dict):
        raise fail(f"{where} must map settings to values, e.g. {{optim.lr: 0.01}}, got {_kind(value)}")
    return {_setting_key(key, where, fail): _scalar_text(item, f"{where}.{key}", fail)
            for key, item in value.items()}


def _vary(value: Any, where: str, fail) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise fail(f"{where} must map settings to lists of values, e.g. {where}: {{task.length: [50, 100]}}, "
                   f"got {_kind(value)}")
    vary = {}
    for key, values in value.items():
        _setting_key(key, where, fail)
        if not isinstance(values, list) or not values:
            raise fail(f"{where}.{key} must be a non-empty list of values, e.g. {key}: [50, 100]")
        vary[key] = [_scalar_text(item, f"{where}.{key}", fail) for item in values]
    return vary


def _per_name(value: Any, where: str, registered: dict[str, Any],
              fail) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, list[str]]]]:
    """(settings, grid) per name: a name's settings, and its own `vary` (e.g. two readouts of esn)."""
    if value is None:
        return {}, {}
    if not isinstance(value, dict):
        raise fail(f"{where} must map names to settings, got {_kind(value)}")
    settings, grids = {}, {}
    for name, document in value.items():
        if name not in registered:
            raise fail(f"unknown name '{name}' in {where}.{did_you_mean(str(name), registered)}")
        document = dict(document or {})
        grid = document.pop("vary", None)
        settings[name] = _settings(document, f"{where}.{name}", fail)
        if grid is not None:
            grids[name] = _vary(grid, f"{where}.{name}.vary", fail)
    return settings, grids


def _architecture_tasks(overrides: dict[str, Any], tasks: list[str] | None, fail) -> dict[str, list[str]]:
    """{architecture: tasks} from the `tasks` key of architecture overrides, popped from them: the
    tasks (of the sweep's) that architecture runs."""
    from rnnbench.core import registry

    restricted = {}
    for name, document in overrides.items():
        if not isinstance(document, dict) or "tasks" not in document:
            continue
        document = dict(document)
        where = f"overrides.architectures.{name}.tasks"
        chosen = _names(document.pop("tasks"), where, registry.tasks(), "rnnbench list tasks", fail)
        if chosen is None:
            raise fail(f"{where} must list some of the sweep's tasks; leave it out for all of them")
        outside = [task for task in chosen if tasks is not None and task not in tasks]
        if outside:
            raise fail(f"{where} names {', '.join(outside)}, which the sweep's tasks do not include: "
                       f"add it to tasks or remove it here")
        restricted[name] = chosen
        overrides[name] = document
    return restricted


def _untuned(overrides: dict[str, Any], fail) -> list[str]:
    """The architectures whose overrides say `tune: false` (popped from them): the sweep runs
    their pairs' one configuration with its seeds instead of tuning them."""
    untuned = []
    for name, document in overrides.items():
        if not isinstance(document, dict) or "tune" not in document:
            continue
        document = dict(document)
        if document.pop("tune") is not False:
            raise fail(f"overrides.architectures.{name}.tune may only be false (its pairs are not tuned); "
                       f"the search itself is the sweep's tune:")
        untuned.append(name)
        overrides[name] = document
    return sorted(untuned)


def _tune(value: Any, fail) -> TuneSpec:
    if not isinstance(value, dict):
        raise fail(f"tune must be a mapping with trials, sampler and space, got {_kind(value)}")
    for key in value:
        if key not in ("trials", "sampler", "space", "halving"):
            raise fail(f"unknown key 'tune.{key}'.{did_you_mean(str(key), ['trials', 'sampler', 'space', 'halving'])} "
                       f"The keys are trials, sampler, space and halving")
    trials = value.get("trials")
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise fail(f"tune.trials must be a whole number of trials from 1 to {MAX_TRIALS:,}, e.g. "
                   f"trials: 8, got {_kind(trials)}")
    sampler = value.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise fail(f"unknown tune.sampler '{sampler}'.{did_you_mean(str(sampler), SAMPLERS)} Use tpe or random")
    space_document = value.get("space")
    if not isinstance(space_document, dict) or not space_document:
        raise fail("tune.space must map settings to distributions, e.g. "
                   "space: {optim.lr: {log_uniform: [1.0e-4, 1.0e-1]}}")
    space = {_setting_key(key, "tune.space", fail): _distribution(key, item, fail)
             for key, item in space_document.items()}
    halving = _halving(value["halving"], fail) if value.get("halving") is not None else None
    return TuneSpec(trials, sampler, space, halving)


def _halving(value: Any, fail) -> Halving:
    example = "halving: {rungs: 3, eta: 3}"
    if not isinstance(value, dict) or set(value) != {"rungs", "eta"}:
        raise fail(f"tune.halving must give rungs and eta, e.g. {example}, got {_kind(value)}")
    for key, low, high in (("rungs", 2, 6), ("eta", 2, 10)):
        amount = value[key]
        if isinstance(amount, bool) or not isinstance(amount, int) or not low <= amount <= high:
            raise fail(f"tune.halving.{key} must be a whole number from {low} to {high}, e.g. {example}, "
                       f"got {_kind(amount)}")
    return Halving(value["rungs"], value["eta"])


def _distribution(key: str, value: Any, fail) -> Distribution:
    where = f"tune.space.{key}"
    if not isinstance(value, dict) or len(value) != 1:
        raise fail(f"{where} must be one of {', '.join(DISTRIBUTIONS)}, e.g. {{log_uniform: [1.0e-4, 0.1]}}")
    (kind, arguments), = value.items()
    if kind not in DISTRIBUTIONS:
        raise fail(f"unknown distribution '{kind}' in {where}.{did_you_mean(str(kind), DISTRIBUTIONS)} "
                   f"Use one of {', '.join(DISTRIBUTIONS)}")
    if not isinstance(arguments, list) or not arguments:
        raise fail(f"{where}.{kind} must be a list, e.g. {kind}: "
                   f"{'[adam, sgd]' if kind == 'choice' else '[1, 10]'}")
    if kind == "choice":
        return Distribution(kind, tuple(_scalar_text(item, where, fail) for item in arguments))
    if len(arguments) != 2:
        raise fail(f"{where}.{kind} takes [low, high], got {len(arguments)} value(s)")
    low, high = arguments
    numbers = (int,) if kind == "int" else (int, float)
    if any(isinstance(item, bool) or not isinstance(item, numbers) for item in (low, high)):
        raise fail(f"{where}.{kind} takes {'whole numbers' if kind == 'int' else 'numbers'} "
                   f"[low, high], got {arguments!r}")
    if not low < high:
        raise fail(f"{where}.{kind}: low must be below high, got [{low}, {high}]")
    if kind == "log_uniform" and low <= 0:
        raise fail(f"{where}.log_uniform needs a positive low, got {low}: e.g. log_uniform: [1.0e-4, 0.1]")
    return Distribution(kind, (low, high) if kind == "int" else (float(low), float(high)))
