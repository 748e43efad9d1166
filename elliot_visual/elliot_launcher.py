"""Run a config with a real, installed Elliot, plus this package's feature loaders and models.

Elliot looks a ``side_information`` ``dataloader`` name up only in its own module
``elliot.dataset.modular_loaders.loaders``, and executes the external-models file only after the
data are loaded, so a plugin loader cannot be registered from ``external/models``. The launcher
therefore adds every FEATURE_LOADERS entry that Elliot lacks to that module (wrapped as an Elliot
``AbstractLoader``), then calls Elliot's own ``run_experiment``. Elliot's built-in loaders (its
``VisualAttribute`` among them) are left untouched. The models come from
``external/models/__init__.py`` (set ``external_models_path`` in the config).

Elliot keeps one ``data.side_information`` namespace per name, so of two entries sharing a
``name`` (one for vectors, one for feature maps: the demo's pattern) it would keep only the last.
Our loader classes merge the kinds of every entry of one name instead, as the native engine does;
two entries giving the same kind under one name are an error that says so.
"""
from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np

from elliot_visual.features.loaders.base import FeatureLoader
from elliot_visual.features.store import merge_source
from elliot_visual.registry import FEATURE_LOADERS

log = logging.getLogger(__name__)

NOT_INSTALLED = ("Elliot is not installed in this environment, so '--engine elliot' cannot run. Elliot is not "
                 "on PyPI: clone https://github.com/sisinflab/elliot and `pip install -e .` it in a separate "
                 "Python 3.8 virtualenv (it pins tensorflow 2.3.2 and numpy 1.18), then `pip install -e .` this "
                 "package there too, or run the native engine, which reads the same "
                 "config: python start_experiments.py --config {config}")


class ElliotNotInstalledError(ImportError):
    """``--engine elliot`` without Elliot; the message says how to install it or what to run instead."""


def run_with_elliot(config_path: str | Path) -> None:
    """Register our loaders into Elliot, then run ``elliot.run.run_experiment(config_path)``."""
    try:
        import elliot.dataset.modular_loaders.loaders as elliot_loaders
        from elliot.dataset.modular_loaders.abstract_loader import AbstractLoader
        from elliot.run import run_experiment
    except ImportError as error:
        raise ElliotNotInstalledError(NOT_INSTALLED.format(config=config_path) + f" ({error})") from None
    _SHARED_NAMESPACES.clear()
    added = register_loaders(elliot_loaders, AbstractLoader)
    log.info("registered elliot_visual loaders into Elliot: %s", ", ".join(added) or "none")
    run_experiment(str(config_path))


# namespace name -> kind -> source, over every entry of this run (see the module docstring)
_SHARED_NAMESPACES: dict[str, dict[str, Any]] = {}


def register_loaders(module: ModuleType, abstract_loader: type) -> list[str]:
    """Add an Elliot loader class for every FEATURE_LOADERS name that ``module`` does not define."""
    added = []
    for name in FEATURE_LOADERS.names():
        if hasattr(module, name):
            continue
        setattr(module, name, elliot_loader_class(name, FEATURE_LOADERS.get(name), abstract_loader))
        added.append(name)
    return added


def elliot_loader_class(name: str, loader_cls: type[FeatureLoader], abstract_loader: type) -> type:
    """Our ``loader_cls`` as an Elliot ``AbstractLoader`` subclass named ``name``.

    Elliot builds it with ``(users, items, ns, logger)``, intersects users and items over every
    loader's ``get_mapped()``, calls ``filter`` and attaches ``create_namespace()`` to
    ``data.side_information`` under its ``__name__``; the namespace carries the feature sources
    the external models read (``elliot_visual_sources``).
    """

    def __init__(self: Any, users: Any, items: Any, ns: Any, logger: Any, *args: Any, **kwargs: Any) -> None:
        self.logger = logger
        options = {k: v for k, v in vars(ns).items() if k not in ("dataloader", "name") and not k.startswith("_")}
        self.namespace_name = getattr(ns, "name", None) or loader_cls.namespace
        own = loader_cls(options, entry=f"side_information ({name})").sources()
        merged = _SHARED_NAMESPACES.setdefault(self.namespace_name, {})
        for kind, source in own.items():
            merge_source(merged, self.namespace_name, kind, source, f"side_information ({name})")
        self.elliot_visual_sources = merged  # shared: the namespace Elliot keeps holds every entry's kinds
        covered: set[str] | None = None
        for source in own.values():
            ids = set(str(i) for i in np.asarray(source.item_ids()))
            covered = ids if covered is None else covered & ids
        self.users = set(users)
        self.items = {item for item in items if covered is None or str(item) in covered}

    def get_mapped(self: Any) -> tuple[set, set]:
        return self.users, self.items

    def filter(self: Any, users: Any, items: Any) -> None:
        self.users &= set(users)
        self.items &= set(items)

    def create_namespace(self: Any) -> SimpleNamespace:
        namespace = SimpleNamespace()
        namespace.__name__ = self.namespace_name
        namespace.object = self
        namespace.elliot_visual_sources = self.elliot_visual_sources
        return namespace

    body = {"__init__": __init__, "get_mapped": get_mapped, "filter": filter, "create_namespace": create_namespace,
            "__doc__": f"elliot_visual's {name} feature loader, for a real Elliot.", "__module__": __name__}
    return type(name, (abstract_loader,), body)
