"""What a feature loader is: validated options in, named feature sources out.

A ``side_information`` entry ``{dataloader: X, name: ..., ...options}`` names a loader registered
in ``FEATURE_LOADERS``. The loader checks its options (unknown keys are errors naming the closest
key) and returns the :class:`~elliot_visual.features.sources.FeatureSource` of each kind it
provides. Reading happens later, lazily, in the store.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from elliot_visual.features.sources import FeatureError, FeatureSource
from elliot_visual.registry import closest_match

DEFAULT_NAMESPACE = "VisualAttributes"  # Elliot's namespace name for its VisualAttribute loader


class LoaderOptions(BaseModel):
    """Base of every loader's options: strict, so that a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class FeatureLoader(ABC):
    """One registered ``dataloader``: ``Options`` declares its keys; :meth:`sources` opens its files."""

    Options: ClassVar[type[LoaderOptions]] = LoaderOptions
    namespace: ClassVar[str] = DEFAULT_NAMESPACE

    def __init__(self, options: Mapping[str, Any], entry: str = "side_information",
                 base_dir: Path | None = None, dataset: str | None = None) -> None:
        self.entry = entry
        parsed = parse_options(type(self).__name__, self.Options, options, entry)
        self.options = resolve_paths(parsed, base_dir, dataset)

    @abstractmethod
    def sources(self) -> dict[str, FeatureSource]:
        """The source of each kind this entry provides (``visual_features``, ``images``, ...)."""


def parse_options(loader: str, model: type[LoaderOptions], options: Mapping[str, Any], entry: str) -> LoaderOptions:
    """Validate ``options`` against ``model``; errors name the YAML key and the closest valid key."""
    try:
        return model(**dict(options))
    except ValidationError as error:
        problems = []
        for item in error.errors():
            key = ".".join(str(part) for part in item["loc"])
            message = item["msg"]
            if item["type"] == "extra_forbidden":
                close = closest_match(key, list(model.model_fields))
                message = "unknown key" + (f"; did you mean '{close}'?" if close else "")
                message += f" ({loader} reads: {', '.join(model.model_fields)})"
            problems.append(f"{entry}.{key}: {message}")
        raise FeatureError(f"invalid options for side-information loader {loader}: " + "; ".join(problems)) from None


def resolve_paths(options: LoaderOptions, base_dir: Path | None, dataset: str | None) -> LoaderOptions:
    """Elliot's path rules for every path option: ``{0}`` is the dataset name; relative paths are
    anchored at the config file's folder (``base_dir``). Absolute paths are kept."""
    update = {}
    for key, value in options:
        if isinstance(value, Path):
            text = str(value).replace("{0}", dataset) if dataset is not None else str(value)
            path = Path(text)
            if base_dir is not None and not path.is_absolute():
                path = Path(base_dir) / path
            update[key] = path
    return options.model_copy(update=update)


def existing(path: Path | None, key: str, entry: str) -> Path | None:
    """``path`` if it exists (or is unset), else an error naming the YAML key."""
    if path is not None and not Path(path).exists():
        raise FeatureError(f"{entry}.{key}: {path} does not exist; fix the path or run the extraction first")
    return None if path is None else Path(path)
