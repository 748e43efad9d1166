"""The one registry idea behind every pluggable kind (models, metrics, loaders, backbones, ...).

A config names things the way Elliot does (``VBPR``, ``Recall``, ``temporal_hold_out``); the
registry resolves the name or raises an error listing the known names and the closest match.
Registries are declared here, in the foundation, so that ``config/`` can validate a name without
importing the layer that defines it: each registry knows which module populates it and imports
that module the first time it is asked. Third-party packages add entries through the
``elliot_visual.plugins`` entry-point group (each entry point is a module to import).
"""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

T = TypeVar("T")

PLUGIN_GROUP = "elliot_visual.plugins"
_plugins_loaded = False


class UnknownNameError(KeyError):
    """A name that no registry entry carries; the message lists the known names."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        close = closest_match(name, known)
        hint = f" Did you mean '{close}'?" if close else ""
        super().__init__(f"unknown {kind} '{name}'.{hint} Known {kind}s: {', '.join(known)}")

    def __str__(self) -> str:
        return str(self.args[0])


def closest_match(name: str, known: list[str]) -> str | None:
    """The known name most similar to ``name`` (case-insensitive), if any is reasonably close."""
    lowered = {k.lower(): k for k in known}
    if name.lower() in lowered:
        return lowered[name.lower()]
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[hits[0]] if hits else None


def load_plugins() -> None:
    """Import every module advertised in the ``elliot_visual.plugins`` entry-point group, once."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in metadata.entry_points(group=PLUGIN_GROUP):
        entry.load()


class Registry(Generic[T]):
    """Name -> object table for one pluggable kind; duplicates are an error, lookups are strict.

    ``populated_by`` names the modules whose import registers the built-in entries; they are
    imported lazily on the first lookup so that declaring a registry imports nothing.
    With ``case_sensitive=False`` lookups ignore case (Elliot parses metric names that way) and
    :meth:`canonical` returns the registered spelling.
    """

    def __init__(self, kind: str, populated_by: tuple[str, ...] = (),
                 case_sensitive: bool = True) -> None:
        self.kind = kind
        self._populated_by = populated_by
        self._case_sensitive = case_sensitive
        self._entries: dict[str, T] = {}
        self._spelling: dict[str, str] = {}
        self._populated = False

    def _key(self, name: str) -> str:
        return name if self._case_sensitive else name.lower()

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable as ``@REG.register("X")`` or ``REG.register("X", f)``."""

        def add(target: T) -> T:
            key = self._key(name)
            if key in self._entries and self._entries[key] is not target:
                raise ValueError(f"{self.kind} '{name}' is registered twice "
                                 f"({self._entries[key]!r} and {target!r})")
            self._entries[key] = target
            self._spelling[key] = name
            return target

        return add(obj) if obj is not None else add

    def _populate(self) -> None:
        if self._populated:
            return
        self._populated = True
        for module in self._populated_by:
            importlib.import_module(module)
        load_plugins()

    def get(self, name: str) -> T:
        """The entry called ``name``, or :class:`UnknownNameError` listing the known names."""
        self._populate()
        try:
            return self._entries[self._key(name)]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def canonical(self, name: str) -> str:
        """The registered spelling of ``name`` (``recall`` -> ``Recall`` for metrics)."""
        self._populate()
        try:
            return self._spelling[self._key(name)]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        """Every registered name, sorted, as registered."""
        self._populate()
        return sorted(self._spelling.values())

    def __contains__(self, name: object) -> bool:
        self._populate()
        return isinstance(name, str) and self._key(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


# The registries of every pluggable kind, each populated by the module that defines its entries.
MODELS: Registry = Registry("model", ("elliot_visual.models",))
METRICS: Registry = Registry("metric", ("elliot_visual.evaluation.metrics",), case_sensitive=False)
FEATURE_LOADERS: Registry = Registry("feature loader", ("elliot_visual.features.loaders",))
BACKBONES: Registry = Registry("backbone", ("elliot_visual.extraction.backbones",))
KERAS_BACKBONES: Registry = Registry("Keras backbone", ("elliot_visual.extraction.keras_backend",))
PREFILTERS: Registry = Registry("prefiltering strategy", ("elliot_visual.data.prefilter",))
SPLITTERS: Registry = Registry("splitting strategy", ("elliot_visual.data.splitting",))
SAMPLERS: Registry = Registry("sampler", ("elliot_visual.data.samplers",))
SEARCH_ALGORITHMS: Registry = Registry("hyper_opt_alg", ("elliot_visual.tuning.search",))
TASKS: Registry = Registry("task", ("elliot_visual.evaluation.tasks",))

