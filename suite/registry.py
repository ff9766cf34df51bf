"""The plugin registry: architectures and tasks by name.

In-tree plugins and those of other packages are found the same way, through Python entry points
(groups `rnnbench.architectures` and `rnnbench.tasks`) whose value is a module; importing it runs
its `@register_architecture` / `@register_task` decorators. An entry point that fails to import
is recorded with its error and does not break the others.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TypeVar

from rnnbench.contracts import Architecture, Compatibility, Task, compatibility
from rnnbench.errors import BenchmarkError, did_you_mean

ARCHITECTURE_GROUP = "rnnbench.architectures"
TASK_GROUP = "rnnbench.tasks"

_architectures: dict[str, type[Architecture]] = {}
_tasks: dict[str, type[Task]] = {}
_load_errors: dict[str, str] = {}
_loaded = False

A = TypeVar("A", bound=type[Architecture])
T = TypeVar("T", bound=type[Task])


def register_architecture(name: str) -> Callable[[A], A]:
    """Class decorator: `@register_architecture("lstm") class LSTM(Architecture): ...`."""
    def decorate(cls: A) -> A:
        _register(_architectures, "architecture", name, cls)
        return cls
    return decorate


def register_task(name: str) -> Callable[[T], T]:
    """Class decorator: `@register_task("copy") class Copy(Task): ...`."""
    def decorate(cls: T) -> T:
        _register(_tasks, "task", name, cls)
        return cls
    return decorate


def _register(table: dict, kind: str, name: str, cls: type) -> None:
    existing = table.get(name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise BenchmarkError(f"{kind} '{name}' is registered twice ({existing.__module__} and "
                             f"{cls.__module__}): rename one of them")
    cls.name = name
    table[name] = cls


def load_plugins() -> None:
    """Import every entry-point module once; record failures by entry-point name."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for group in (ARCHITECTURE_GROUP, TASK_GROUP):
        for entry in entry_points(group=group):
            try:
                entry.load()
            except Exception as error:  # a broken plugin must not break the suite
                _load_errors[f"{group}:{entry.name}"] = f"{type(error).__name__}: {error}"


def load_errors() -> dict[str, str]:
    """Entry points that failed to import, with their errors."""
    load_plugins()
    return dict(_load_errors)


def architectures() -> dict[str, type[Architecture]]:
    load_plugins()
    return dict(sorted(_architectures.items()))


def tasks() -> dict[str, type[Task]]:
    load_plugins()
    return dict(sorted(_tasks.items()))


def get_architecture(name: str) -> type[Architecture]:
    return _lookup(architectures(), "architecture", name, "rnnbench list architectures")


def get_task(name: str) -> type[Task]:
    return _lookup(tasks(), "task", name, "rnnbench list tasks")


def _lookup(table: dict, kind: str, name: str, listing: str) -> type:
    if name in table:
        return table[name]
    broken = [key for key in _load_errors if key.endswith(f":{name}")]
    if broken:
        raise BenchmarkError(f"{kind} '{name}' failed to load: {_load_errors[broken[0]]}; "
                             f"fix or reinstall the package that provides it")
    raise BenchmarkError(f"unknown {kind} '{name}'.{did_you_mean(name, table)} "
                         f"See `{listing}` for the registered names.")


def pair_compatibility(architecture: type[Architecture], task: type[Task]) -> Compatibility:
    return compatibility(architecture.capabilities, task.requirements)


def compatible_pairs() -> list[tuple[str, str]]:
    """Every (architecture, task) pair the declarations allow."""
    return [(arch_name, task_name)
            for task_name, task in tasks().items()
            for arch_name, arch in architectures().items()
            if pair_compatibility(arch, task).ok]
