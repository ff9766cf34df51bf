"""The plugin registry: architectures and tasks by name.

In-tree plugins and those of other packages are found the same way, through Python entry points
(groups `rnnbench.architectures` and `rnnbench.tasks`) whose value is a module; importing it runs
its `@register_architecture` / `@register_task` decorators. An entry point that fails to import
is recorded with its error and does not break the others. In-tree entry points load first; a
plugin that registers a name already taken is skipped and recorded as a load error naming both
packages, so an outside plugin can never make an in-tree one disappear.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points, packages_distributions
from typing import TypeVar

from rnnbench.core.contracts import Architecture, Compatibility, Task, compatibility, undeclared
from rnnbench.core.errors import BenchmarkError, did_you_mean

ARCHITECTURE_GROUP = "rnnbench.architectures"
TASK_GROUP = "rnnbench.tasks"
IN_TREE = "rnnbench"   # the distribution and import package of the in-tree plugins

_architectures: dict[str, type[Architecture]] = {}
_tasks: dict[str, type[Task]] = {}
_origins: dict[tuple[str, str], tuple[str, str]] = {}   # (kind, name) -> (who registered it, error key)
_load_errors: dict[str, str] = {}
_names_taken: dict[str, str] = {}   # entry point -> why its plugin was skipped: its name was taken
_loaded = False
_loading: EntryPoint | None = None   # the entry point being imported by load_plugins, if any

# a registered name appears in commands, file names and every published format: a plain identifier
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

A = TypeVar("A", bound=type[Architecture])
T = TypeVar("T", bound=type[Task])


def register_architecture(name: str) -> Callable[[A], A]:
    """Class decorator: `@register_architecture("lstm") class LSTM(Architecture): ...`.

    A name is registered once. If another class already holds it, the first registration is kept
    (an in-tree one always: in-tree plugins are loaded first, and replace an outside plugin that
    was imported before them) and the clash is reported naming the packages of both: as a load
    error of the plugin skipped when it happens while plugins load through their entry points
    (`load_errors()`, printed by `rnnbench list`), else as a BenchmarkError."""
    def decorate(cls: A) -> A:
        _register(_architectures, "architecture", name, cls)
        return cls
    return decorate


def register_task(name: str) -> Callable[[T], T]:
    """Class decorator: `@register_task("copy") class Copy(Task): ...`; clashes as for
    `register_architecture`."""
    def decorate(cls: T) -> T:
        _register(_tasks, "task", name, cls)
        return cls
    return decorate


def _group(kind: str) -> str:
    return ARCHITECTURE_GROUP if kind == "architecture" else TASK_GROUP


def _in_tree(cls: type) -> bool:
    return cls.__module__ == IN_TREE or cls.__module__.startswith(IN_TREE + ".")


def _same_class(a: type, b: type) -> bool:
    """The same class, or the same module re-imported (a reload defines it again)."""
    return a is b or (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def _origin(kind: str, cls: type) -> tuple[str, str]:
    """(who registers `cls`: class, package and entry point, load-error key of that plugin)."""
    where = f"{cls.__module__}.{cls.__qualname__}"
    if _loading is not None:
        dist = getattr(_loading.dist, "name", None) or "an unknown package"
        return (f"{where} of package '{dist}' (entry point {_loading.group}:{_loading.name})",
                f"{_loading.group}:{_loading.name}")
    try:
        dists = packages_distributions().get(cls.__module__.split(".")[0], [])
    except Exception:  # a broken installation must not hide the clash itself
        dists = []
    package = f"of package '{dists[0]}'" if dists else "(no installed package)"
    return f"{where} {package}", f"{_group(kind)}:{cls.__module__}"


def _add_load_error(key: str, message: str) -> None:
    _load_errors[key] = f"{_load_errors[key]}; {message}" if key in _load_errors else message


def _register(table: dict, kind: str, name: str, cls: type) -> None:
    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
        raise BenchmarkError(f"{kind} name {name!r} ({cls.__module__}.{cls.__qualname__}) is not a plain name: "
                             f"use letters, digits, '_' and '-' (up to 64, starting with a letter or "
                             f"digit), e.g. 'my_lstm'")
    problems = undeclared(cls)
    if problems:
        raise BenchmarkError(f"{kind} '{name}' ({cls.__module__}.{cls.__qualname__}) is incomplete: "
                             + "; ".join(problems))
    existing = table.get(name)
    origin = _origin(kind, cls)
    if existing is not None and not _same_class(existing, cls):
        first = _origins.get((kind, name), (f"{existing.__module__}.{existing.__qualname__}", ""))
        if _in_tree(cls) and not _in_tree(existing):
            kept, skipped = origin, first      # an in-tree plugin replaces an earlier outsider
        else:
            kept, skipped = first, origin
        message = (f"{kind} name '{name}' taken: it is registered by {kept[0]} and by {skipped[0]}; "
                   f"the first is kept (in-tree plugins win) and the other skipped: rename one of them")
        if skipped is origin:
            if _loading is None:
                raise BenchmarkError(message)
            _names_taken[origin[1]] = message
            return
        _names_taken[skipped[1]] = message
    cls.name = name
    table[name] = cls
    _origins[(kind, name)] = origin


def _entry_points_in_tree_first(group: str) -> list[EntryPoint]:
    found = list(entry_points(group=group))
    return sorted(found, key=lambda entry: getattr(entry.dist, "name", None) != IN_TREE
                  and not entry.value.startswith(IN_TREE + "."))


def load_plugins() -> None:
    """Import every entry-point module once, in-tree ones first; record failures (an import
    error, a name already taken) by entry point, `group:name`."""
    global _loaded, _loading
    if _loaded:
        return
    _loaded = True
    for group in (ARCHITECTURE_GROUP, TASK_GROUP):
        for entry in _entry_points_in_tree_first(group):
            _loading = entry
            try:
                entry.load()
            except Exception as error:  # a broken plugin must not break the suite
                _add_load_error(f"{group}:{entry.name}", f"{type(error).__name__}: {error}")
            finally:
                _loading = None


def load_errors() -> dict[str, str]:
    """Entry points that failed to import, with their errors."""
    load_plugins()
    return dict(_load_errors)


def names_taken() -> dict[str, str]:
    """Entry points whose plugin loaded but was skipped because its name was already registered
    (by an in-tree plugin, or one loaded before it), with the message naming both."""
    load_plugins()
    return dict(_names_taken)


def plugin_warnings() -> list[str]:
    """One line per plugin that failed to load or lost its name, for commands to print."""
    return ([f"warning: plugin entry point {entry} failed to load: {error}" for entry, error in load_errors().items()]
            + [f"warning: plugin entry point {entry} skipped: {message}" for entry, message in names_taken().items()])


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
    failed = ""
    if _load_errors:
        failed = (" Plugins that failed to load (one may provide it): "
                  + "; ".join(f"{key} ({error})" for key, error in sorted(_load_errors.items())) + ".")
    raise BenchmarkError(f"unknown {kind} '{name}'.{did_you_mean(name, table)} "
                         f"See `{listing}` for the registered names.{failed}")


def pair_compatibility(architecture: type[Architecture], task: type[Task],
                       decoder: type[Architecture] | None = None) -> Compatibility:
    """Whether `architecture` can run `task`; for an encoder-decoder task, with `decoder` as its
    decoder (None: the architecture itself, the default of `task.decoder`)."""
    return compatibility(architecture.capabilities, task.requirements,
                         decoder.capabilities if decoder is not None else None)
