"""Hyper-parameters: plain typed values with defaults, resolved once, recorded and hashed.

Keys are namespaced: `arch.` (common model sizes plus the architecture's own options), `task.`
(the task's options), `optim.` and `trainer.`. Resolution order, later wins:
dataclass defaults < task defaults < preset < `--set key=value`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal

from rnnbench.core.constraints import (AllowNonFinite, AtLeast, Constraint, NonNegative,
                               Positive, check)
from rnnbench.core.contracts import Architecture, Task
from rnnbench.core.errors import BenchmarkError, did_you_mean


@dataclass
class ModelSettings:
    """Sizes common to every architecture (`arch.` namespace).

    hidden_size: the encoder's hidden size; ignored when `params` is set.
    params: a total parameter budget (e.g. 100k); the hidden size is then chosen to match it
        within 5%, so that architectures are compared at equal size.
    embedding_size: size of the token embedding for token inputs (default: hidden_size).

    Initialisation tricks, applied after the encoder is built (and after `optim.init_scale`), to
    every encoder of the model (a decoder too) through what its architecture declares
    (`Capabilities.forget_gate` / `Capabilities.recurrent_matrices`); refused by name where the
    architecture declares nothing of the kind (`rnnbench.training.model.check_initialisation`):

    forget_bias: None (default): the module's own initialisation. A number b sets every forget-gate
        bias b_f to b (Gers et al. 2000; Jozefowicz et al. 2015 recommend 1: the cell starts by
        remembering). The LSTM family only (lstm, bilstm, deep_rnn with arch.cell=lstm).
        PyTorch's LSTM adds two biases, b_ih and b_hh, each with a forget slice: both are set to
        b / 2 so that their sum, the bias the gate sees, is b (`Encoder.forget_gate_biases`).
    recurrent_init: default (the module's own initialisation) or orthogonal: every square
        recurrent matrix (H x H; one per gate of a gated cell, e.g. the four blocks of an LSTM's
        W_hh) drawn as a random orthogonal matrix, `torch.nn.init.orthogonal_` (Saxe et al. 2014:
        its singular values are all 1, so the linearised recurrence neither shrinks nor blows up
        a signal). Architectures whose recurrent matrices are trained (rnn, gru, lstm, bilstm,
        deep_rnn, jordan, leaky_rnn, skip_rnn: `Encoder.recurrent_matrices`); an echo-state
        reservoir is fixed at its spectral radius, never trained, and refused.
    """

    hidden_size: Annotated[int, AtLeast(1)] = 64
    params: Annotated[int, AtLeast(1)] | None = None
    embedding_size: Annotated[int, AtLeast(1)] | None = None
    forget_bias: float | None = None
    recurrent_init: Literal["default", "orthogonal"] = "default"


@dataclass
class OptimSettings:
    """Optimisation (`optim.` namespace).

    schedule: constant; cosine (to zero over the step budget); decay (multiply the rate by
        `decay_factor` every epoch from epoch `decay_start`, counting from 1, as Zaremba et al.).
    loss_reduction: token_mean (mean over supervised items) or sequence_sum (sum over the steps of
        a sequence, mean over the batch: Zaremba et al. 2014).
    init_scale: if set, every weight is drawn from U(-init_scale, init_scale).
    clip_norm: clip the gradient so that its global L2 norm is at most this (Pascanu et al. 2013);
        None: no clipping by norm.
    clip_value: clip every gradient entry to [-clip_value, clip_value] (clipping by value,
        Mikolov 2012; `torch.nn.utils.clip_grad_value_`); None (default): none. One clipping
        at a time: with clip_value set, set clip_norm=none (many tasks default it to a number).
    optimizer: sgd, adam, adamw; or ridge, the closed-form ridge-regression readout of an
        architecture that offers one (e.g. esn) on a regression task: one pass over the training
        split, no gradient steps (`rnnbench.training.readout.fit_closed_form_readout`).
    """

    optimizer: Literal["sgd", "adam", "adamw", "ridge"] = "adam"
    lr: Annotated[float, Positive] = 1e-3
    weight_decay: Annotated[float, NonNegative] = 0.0
    momentum: Annotated[float, NonNegative] = 0.0
    schedule: Literal["constant", "cosine", "decay"] = "constant"
    decay_start: Annotated[int, AtLeast(1)] = 1
    decay_factor: Annotated[float, Positive] = 0.5
    clip_norm: Annotated[float, Positive] | None = 1.0
    clip_value: Annotated[float, Positive] | None = None
    init_scale: Annotated[float, Positive] | None = None
    loss_reduction: Literal["token_mean", "sequence_sum"] = "token_mean"


@dataclass
class TrainerSettings:
    """Budget, evaluation and hardware (`trainer.` namespace). A budget of None means unlimited.

    precision: Lightning's precision: 32-true, 64-true, bf16-mixed (autocast to bfloat16, on a CPU
        or a GPU) or 16-mixed (autocast to float16 with a gradient scaler: CUDA only, refused on a
        CPU by `rnnbench.training.prepare.check_hardware`).
    devices: devices one run trains on; more than 1 trains with Lightning's DDP strategy (gloo on
        a CPU, one process per device; nccl on GPUs), each process on its share of the batches.
    """

    batch_size: Annotated[int, AtLeast(1)] = 32
    max_steps: Annotated[int, AtLeast(1)] | None = 1000
    max_epochs: Annotated[int, AtLeast(1)] | None = None
    max_time_s: Annotated[float, Positive] | None = None
    val_every_steps: Annotated[int, AtLeast(1)] | None = None
    early_stopping: bool = True
    patience: Annotated[int, NonNegative] = 5
    precision: Literal["32-true", "16-mixed", "bf16-mixed", "64-true"] = "32-true"
    devices: Annotated[int, AtLeast(1)] = 1


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
    """Build a RunConfig; raise BenchmarkError naming the bad key or value and the fix. Every value
    is parsed to its declared type and checked against its declared meaning (`rnnbench.core.constraints`:
    `Annotated[int, Positive]`, ...; every float finite unless declared `AllowNonFinite`)."""
    config = RunConfig(architecture.name, task.name, ModelSettings(), architecture.Options(),
                       task.Options(), OptimSettings(), TrainerSettings(), preset)
    layers: list[tuple[str, dict[str, Any]]] = [(f"task '{task.name}' defaults", dict(task.defaults))]
    if preset is not None:
        if preset not in task.presets:
            choices = ", ".join(task.presets) or "none"
            raise BenchmarkError(f"unknown preset '{preset}' for task '{task.name}'."
                                 f"{did_you_mean(preset, task.presets)} Known presets: {choices}.")
        layers.append((f"preset '{preset}'", dict(task.presets[preset])))
    layers.append(("--set", dict(overrides or {})))
    for origin, values in layers:
        for key, value in values.items():
            _assign(config, key, value, origin)
    _check_defaults(config)
    _check(config)
    return config


def _targets(config: RunConfig, namespace: str) -> list[Any]:
    return {"arch": [config.model, config.arch_options], "task": [config.task_options],
            "optim": [config.optim], "trainer": [config.trainer]}[namespace]


@functools.lru_cache(maxsize=None)
def declared_types(cls: type) -> dict[str, Any]:
    """A settings dataclass's field types, with their `Annotated` declarations."""
    hints = typing.get_type_hints(cls, include_extras=True)
    if not dataclasses.is_dataclass(cls):
        return hints
    names = {f.name for f in fields(cls)}
    return {name: hint for name, hint in hints.items() if name in names}


def _assign(config: RunConfig, key: str, value: Any, origin: str) -> None:
    namespace, _, name = key.partition(".")
    if namespace in NAMESPACES and not name:
        raise BenchmarkError(f"setting '{key}' (from {origin}) names no setting: write "
                             f"{namespace}.NAME=VALUE (see the settings table in README.md)")
    if namespace not in NAMESPACES or not name:
        raise BenchmarkError(f"setting '{key}' (from {origin}) needs a namespace: write "
                             f"{' / '.join(n + '.' + (name or key) for n in NAMESPACES)}")
    targets = _targets(config, namespace)
    for target in targets:
        hints = declared_types(type(target))
        if name in hints:
            hint = f" (from {origin}){_example(key, target, name, hints[name])}"
            setattr(target, name, parse_value(key, value, hints[name], hint=hint))
            return
    known = [f"{namespace}.{f.name}" for target in targets for f in fields(target)]
    if key in NOT_OFFERED:
        owner = f"task '{config.task}'" if namespace == "task" else f"architecture '{config.architecture}'"
        raise BenchmarkError(f"{key} (from {origin}) does not apply to {owner}: "
                             f"{NOT_OFFERED[key]}; drop the setting")
    raise BenchmarkError(f"unknown setting '{key}' (from {origin}).{did_you_mean(key, known)} "
                         f"Known {namespace}. settings: {', '.join(sorted(known)) or 'none'}.")


def _example(key: str, target: Any, name: str, annotation: Any) -> str:
    """': e.g. task.length=50' from the field's default (or its lower bound), '(or none)' where
    None is allowed."""
    default = next((f.default for f in fields(target) if f.name == name), None) \
        if dataclasses.is_dataclass(target) else getattr(type(target), name, None)
    nullable = _allows_none(annotation)
    candidates = [default] + [_lowest(constraint) for constraint in _constraints(annotation)]
    for candidate in candidates:
        if candidate is None or isinstance(candidate, (bool, str)) or candidate is dataclasses.MISSING:
            continue
        try:
            check_value(key, candidate, annotation)
        except BenchmarkError:
            continue
        return f": e.g. {key}={candidate}" + (" (or none)" if nullable else "")
    return f": e.g. {key}=none" if nullable else ""


def _lowest(constraint: Any) -> Any:
    low = getattr(constraint, "low", None)
    if low is None:
        return None
    return low + 1 if getattr(constraint, "low_open", False) else low


def _allows_none(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _allows_none(typing.get_args(annotation)[0])
    return origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation)


def _constraints(annotation: Any) -> list[Constraint]:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base, *meta = typing.get_args(annotation)
        return [m for m in meta if isinstance(m, Constraint)] + _constraints(base)
    if origin in (typing.Union, types.UnionType):
        return [c for option in typing.get_args(annotation) for c in _constraints(option)]
    return []


def parse_value(key: str, value: Any, annotation: Any, hint: str = "") -> Any:
    """Convert `value` (a string from the command line, or a Python value) to `annotation`, and
    check it against what `annotation` declares (`check_value`); `hint` ends a range error."""
    parsed = _parse(key, value, annotation)
    check_value(key, parsed, annotation, hint)
    return parsed


def check_value(key: str, value: Any, annotation: Any, hint: str = "",
                declared: tuple[Any, ...] = ()) -> None:
    """Raise a BenchmarkError unless the (parsed) `value` meets the constraints `annotation`
    declares (`Annotated[...]` metadata, at any level); a float must also be finite unless
    declared `AllowNonFinite`. None passes: the type says whether it is allowed."""
    if value is None:
        return
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base, *meta = typing.get_args(annotation)
        check_value(key, value, base, hint, (*declared, *meta))
        return
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            if option is not type(None) and _matches(value, option):
                check_value(key, value, option, hint, declared)
                return
        return
    constraints = [item for item in declared if isinstance(item, Constraint)]
    check(key, value, *constraints, finite=AllowNonFinite not in declared, hint=hint)


def _matches(value: Any, annotation: Any) -> bool:
    """Whether a parsed value is of this (union member) type."""
    if typing.get_origin(annotation) is Annotated:
        return _matches(value, typing.get_args(annotation)[0])
    if typing.get_origin(annotation) is Literal:
        return value in typing.get_args(annotation)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(annotation, type) and isinstance(value, annotation)


def _parse(key: str, value: Any, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _parse(key, value, typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if type(None) in options and (value is None or str(value).lower() in ("none", "null")):
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _parse(key, value, option)
            except BenchmarkError as error:
                errors.append(str(error))
        raise BenchmarkError(errors[0])
    if origin is Literal:
        choices = typing.get_args(annotation)
        if value in choices:
            return value
        close = did_you_mean(str(value), map(str, choices)) or f" Choose one, e.g. {key}={choices[0]}."
        raise BenchmarkError(f"{key} must be one of {', '.join(map(str, choices))}, got "
                             f"'{value}'.{close}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise BenchmarkError(f"{key} expects true or false (e.g. {key}=true), got '{value}'")
    if annotation is int:
        if isinstance(value, bool):
            raise BenchmarkError(f"{key} expects an integer (e.g. {key}=100), got {value}")
        if isinstance(value, int):
            return value
        try:
            return parse_count(str(value))
        except ValueError:
            raise BenchmarkError(f"{key} expects an integer (e.g. {key}=100 or 10k), "
                                 f"got '{value}'") from None
    if annotation is float:
        if isinstance(value, bool):
            raise BenchmarkError(f"{key} expects a number (e.g. {key}=0.001), got {value}")
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):
            raise BenchmarkError(f"{key} expects a number (e.g. {key}=0.001), got '{value}'") from None
    if annotation is str:
        return str(value)
    raise BenchmarkError(f"{key} has an unsupported type {annotation!r}: declare it as int, float, "
                         f"bool, str or a Literal in the plugin's Options")


def parse_count(text: str) -> int:
    """'100k' -> 100000, '1.5M' -> 1500000, '42' -> 42. Raises ValueError for anything that is not
    a whole, finite number."""
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(text[-1:], 1)
    number = text[:-1] if scale > 1 else text
    result = float(number) * scale
    if not math.isfinite(result) or not result.is_integer():
        raise ValueError(text)
    return int(result)


def _check_defaults(config: RunConfig) -> None:
    """Values nobody set are the dataclasses' defaults: check them too (a plugin whose default
    breaks its own declaration is refused by name)."""
    for prefix, obj in (("arch", config.model), ("arch", config.arch_options),
                        ("task", config.task_options), ("optim", config.optim),
                        ("trainer", config.trainer)):
        for name, annotation in declared_types(type(obj)).items():
            check_value(f"{prefix}.{name}", getattr(obj, name), annotation,
                        hint=f" (the default of {type(obj).__module__}.{type(obj).__qualname__}): "
                             f"fix the plugin's Options or set {prefix}.{name}")


def _check(config: RunConfig) -> None:
    if config.optim.clip_norm is not None and config.optim.clip_value is not None:
        raise BenchmarkError(f"optim.clip_value={config.optim.clip_value} and optim.clip_norm="
                             f"{config.optim.clip_norm} would clip twice: clip by value with "
                             f"optim.clip_norm=none, or by norm with optim.clip_value=none")
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


# Trick settings that only some tasks or architectures offer as options of their own: setting one
# where it is not offered is refused with why (an unknown setting elsewhere gets "did you mean").
NOT_OFFERED = {
    "task.batching": "bucketing by length (task.batching=bucketed|random) applies to tasks of "
                     "variable-length sequences or trees (pos, ner, sst-*, scan, reverse), and "
                     "this one has none",
    "task.tie_weights": "weight tying (Press & Wolf 2017) applies to language modelling (ptb, "
                        "ptb-char), whose output vocabulary is its input vocabulary",
    "arch.variational": "one dropout mask per sequence (Gal & Ghahramani 2016) is offered by "
                        "deep_rnn (arch.variational=true with arch.dropout; arch.residual=false "
                        "for a plain stack of rnn, gru or lstm layers)",
    "arch.dropout": "dropout between layers applies to the stacks (rnn, gru, lstm, bilstm, "
                    "deep_rnn: arch.dropout with arch.num_layers > 1)",
}

# Settings added after run ids were first recorded, left out of a run's identity while they hold
# the value every earlier run had, so that those runs keep their ids (any other value is hashed).
IDENTITY_NEUTRAL = {"trainer.devices": 1, "arch.forget_bias": None, "arch.recurrent_init": "default",
                    "optim.clip_value": None, "task.batching": "bucketed"}


def identity_settings(config: RunConfig) -> dict[str, Any]:
    """The flat settings that make a run's identity: `RunConfig.flat()` without the settings of
    `IDENTITY_NEUTRAL` that hold their neutral value."""
    return {key: value for key, value in config.flat().items()
            if not (key in IDENTITY_NEUTRAL and value == IDENTITY_NEUTRAL[key])}


def config_hash(payload: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable dict."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
