"""Hyper-parameters: plain typed values with defaults, resolved once, recorded and hashed.

Keys are namespaced: `arch.` (common model sizes plus the architecture's own options), `task.`
(the task's options), `optim.` and `trainer.`. Resolution order, later wins:
dataclass defaults < task defaults < preset < `--set key=value`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, fields
from typing import Any, Literal

from suite.contracts import Architecture, Task
from suite.errors import BenchmarkError, did_you_mean


@dataclass
class ModelSettings:
    """Sizes common to every architecture (`arch.` namespace).

    hidden_size: the encoder's hidden size; ignored when `params` is set.
    params: a total parameter budget (e.g. 100k); the hidden size is then chosen to match it
        within 5%, so that architectures are compared at equal size.
    embedding_size: size of the token embedding for token inputs (default: hidden_size).
    """

    hidden_size: int = 64
    params: int | None = None
    embedding_size: int | None = None


@dataclass
class OptimSettings:
    """Optimisation (`optim.` namespace).

    schedule: constant; cosine (to zero over the step budget); decay (multiply the rate by
        `decay_factor` every epoch from epoch `decay_start`, counting from 1, as Zaremba et al.).
    loss_reduction: token_mean (mean over supervised items) or sequence_sum (sum over the steps of
        a sequence, mean over the batch: Zaremba et al. 2014).
    init_scale: if set, every weight is drawn from U(-init_scale, init_scale).
    optimizer: sgd, adam, adamw; or ridge, the closed-form ridge-regression readout of an
        architecture that offers one (e.g. esn) on a regression task: one pass over the training
        split, no gradient steps (`suite.runner.fit_closed_form_readout`).
    """

    optimizer: Literal["sgd", "adam", "adamw", "ridge"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    schedule: Literal["constant", "cosine", "decay"] = "constant"
    decay_start: int = 1
    decay_factor: float = 0.5
    clip_norm: float | None = 1.0
    init_scale: float | None = None
    loss_reduction: Literal["token_mean", "sequence_sum"] = "token_mean"


@dataclass
class TrainerSettings:
    """Budget and evaluation (`trainer.` namespace). A budget of None means unlimited."""

    batch_size: int = 32
    max_steps: int | None = 1000
    max_epochs: int | None = None
    max_time_s: float | None = None
    val_every_steps: int | None = None
    early_stopping: bool = True
    patience: int = 5
    precision: Literal["32-true", "16-mixed", "bf16-mixed", "64-true"] = "32-true"


NAMESPACES = ("arch", "task", "optim", "trainer")


@dataclass
class RunConfig:
    """Everything that determines a run's result, besides the code versions and the seed."""

    architecture: str
    task: str
    model: ModelSettings
    arch_options: Any
    task_options: Any
    optim: OptimSettings
    trainer: TrainerSettings
    preset: str | None = None

    def flat(self) -> dict[str, Any]:
        """{'arch.hidden_size': 64, 'task.length': 20, ...} with every resolved value."""
        out: dict[str, Any] = {}
        for prefix, obj in (("arch", self.model), ("arch", self.arch_options),
                            ("task", self.task_options), ("optim", self.optim),
                            ("trainer", self.trainer)):
            for key, value in dataclasses.asdict(obj).items():
                out[f"{prefix}.{key}"] = value
        return out


def resolve(architecture: type[Architecture], task: type[Task], overrides: dict[str, str] | None = None,
            preset: str | None = None) -> RunConfig:
    """Build a RunConfig; raise BenchmarkError naming the bad key or value and the fix."""
    config = RunConfig(architecture.name, task.name, ModelSettings(), architecture.Options(),
                       task.Options(), OptimSettings(), TrainerSettings(), preset)
    layers: list[tuple[str, dict[str, Any]]] = [(f"task '{task.name}' defaults", dict(task.defaults))]
    if preset is not None:
        if preset not in task.presets:
            choices = ", ".join(task.presets) or "none"
            raise BenchmarkError(f"unknown preset '{preset}' for task '{task.name}'."
                                 f"{did_you_mean(preset, task.presets)} Presets: {choices}.")
        layers.append((f"preset '{preset}'", dict(task.presets[preset])))
    layers.append(("--set", dict(overrides or {})))
    for origin, values in layers:
        for key, value in values.items():
            _assign(config, key, value, origin)
    _check(config)
    return config


def _targets(config: RunConfig, namespace: str) -> list[Any]:
    return {"arch": [config.model, config.arch_options], "task": [config.task_options],
            "optim": [config.optim], "trainer": [config.trainer]}[namespace]


def _assign(config: RunConfig, key: str, value: Any, origin: str) -> None:
    namespace, _, name = key.partition(".")
    if namespace not in NAMESPACES or not name:
        raise BenchmarkError(f"setting '{key}' (from {origin}) needs a namespace: write "
                             f"{' / '.join(n + '.' + (name or key) for n in NAMESPACES)}")
    targets = _targets(config, namespace)
    for target in targets:
        hints = typing.get_type_hints(type(target))
        if name in hints:
            setattr(target, name, parse_value(key, value, hints[name]))
            return
    known = [f"{namespace}.{f.name}" for target in targets for f in fields(target)]
    raise BenchmarkError(f"unknown setting '{key}' (from {origin}).{did_you_mean(key, known)} "
                         f"Known {namespace}. settings: {', '.join(sorted(known)) or 'none'}.")


def parse_value(key: str, value: Any, annotation: Any) -> Any:
    """Convert `value` (a string from the command line, or a Python value) to `annotation`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if type(None) in options and (value is None or str(value).lower() in ("none", "null")):
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return parse_value(key, value, option)
            except BenchmarkError as error:
                errors.append(str(error))
        raise BenchmarkError(errors[0])
    if origin is Literal:
        choices = typing.get_args(annotation)
        if value in choices:
            return value
        raise BenchmarkError(f"{key} must be one of {', '.join(map(str, choices))}, got "
                             f"'{value}'.{did_you_mean(str(value), map(str, choices))}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise BenchmarkError(f"{key} expects true or false, got '{value}'")
    if annotation is int:
        if isinstance(value, bool):
            raise BenchmarkError(f"{key} expects an integer, got {value}")
        if isinstance(value, int):
            return value
        try:
            return parse_count(str(value))
        except ValueError:
            raise BenchmarkError(f"{key} expects an integer (e.g. {key}=100 or 10k), "
                                 f"got '{value}'") from None
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise BenchmarkError(f"{key} expects a number (e.g. {key}=0.001), got '{value}'") from None
    if annotation is str:
        return str(value)
    raise BenchmarkError(f"{key} has an unsupported type {annotation!r}")


def parse_count(text: str) -> int:
    """'100k' -> 100000, '1.5M' -> 1500000, '42' -> 42."""
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(text[-1:], 1)
    number = text[:-1] if scale > 1 else text
    result = float(number) * scale
    if not result.is_integer():
        raise ValueError(text)
    return int(result)


def _check(config: RunConfig) -> None:
    positive = {"arch.hidden_size": config.model.hidden_size, "trainer.batch_size": config.trainer.batch_size,
                "optim.lr": config.optim.lr}
    for key, value in positive.items():
        if value <= 0:
            raise BenchmarkError(f"{key} must be positive, got {value}")
    budget = (config.trainer.max_steps, config.trainer.max_epochs, config.trainer.max_time_s)
    if all(limit is None for limit in budget):
        raise BenchmarkError("the run has no budget: set trainer.max_steps, trainer.max_epochs "
                             "or trainer.max_time_s")


def parse_assignments(items: list[str]) -> dict[str, str]:
    """['optim.lr=0.1', ...] -> {'optim.lr': '0.1'}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BenchmarkError(f"--set expects key=value, got '{item}' (e.g. --set optim.lr=0.01)")
        out[key.strip()] = value.strip()
    return out


def config_hash(payload: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable dict."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
