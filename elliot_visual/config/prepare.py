"""Options of ``elliot-visual prepare amazon``: a small YAML file and/or command-line flags, validated here.

The YAML keys are the fields below (``name``, ``output_folder``, ``sources``, ``filters``,
``images``, ``on_error``); flags given on the command line override them. Relative paths in the
YAML file are anchored at the file's folder, as Elliot anchors its config paths; relative paths
given as flags are anchored at the working directory. A bad file or value ends in a
:class:`~elliot_visual.config.errors.ConfigError` that names the key.

Example::

    name: amazon_baby
    output_folder: ../data
    sources: {reviews: raw/reviews_Baby.json.gz, meta: raw/meta_Baby.json.gz,
              image_features: raw/image_features_Baby.b}
    filters: {min_rating: 4, k_core: 5, drop_items_without_image: true}
    images: {download: false}
    labels: {min_items: 100, finetune_users: 0.7, seed: 42}   # optional: item_labels.tsv
    on_error: skip
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from elliot_visual.config.errors import ConfigError, Problem, key_path

OnError = Literal["skip", "fail"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Sources(_Strict):
    """The raw files: exactly one of ``reviews`` / ``ratings``; the rest optional."""

    reviews: Path | None = None
    ratings: Path | None = None
    meta: Path | None = None
    image_urls: Path | None = None
    image_features: Path | None = None

    @model_validator(mode="after")
    def _one_interaction_source(self) -> "Sources":
        if (self.reviews is None) == (self.ratings is None):
            raise ValueError("give exactly one of reviews (McAuley JSON lines) or ratings "
                             "(user, item, rating[, timestamp] table)")
        return self


class Filters(_Strict):
    """Filtering choices of the papers, applied in this order (k-core last)."""

    deduplicate: bool = True
    min_rating: float | None = None
    start_date: _dt.date | None = None
    end_date: _dt.date | None = None
    categories: list[str] | None = None
    drop_items_without_image: bool = False
    k_core: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> "Filters":
        if self.start_date and self.end_date and self.start_date > self.end_date:
            raise ValueError(f"start_date {self.start_date} is after end_date {self.end_date}")
        if self.categories is not None and not [c for c in self.categories if c.strip()]:
            raise ValueError("categories is empty; leave it out to keep every category")
        return self


class ImageOptions(_Strict):
    """Image download from the items' URLs (``timeout``/``backoff`` in seconds)."""

    download: bool = True
    workers: int = Field(8, ge=1)
    timeout: float = Field(10.0, gt=0)
    retries: int = Field(3, ge=0)
    backoff: float = Field(0.5, ge=0)


class LabelOptions(_Strict):
    """Item categories as multi-label targets (``item_labels.tsv``) and the user protocol that uses them.

    A label is a node of McAuley's category tree, named by its path (``Kitchen & Dining > Bakeware``);
    D = the nodes held by at least ``min_items`` of the dataset's items. ``finetune_users`` > 0
    also sets that share of users apart (seeded) for CNN fine-tuning (the aggregation paper: 0.7).
    """

    min_items: int = Field(1, ge=1)
    skip_top_level: bool = True
    finetune_users: float = Field(0.0, ge=0, lt=1)
    seed: int = 42


class PrepareConfig(_Strict):
    """Everything ``elliot-visual prepare amazon`` needs."""

    name: str
    output_folder: Path = Path("data")
    sources: Sources
    filters: Filters = Field(default_factory=Filters)
    images: ImageOptions = Field(default_factory=ImageOptions)
    labels: LabelOptions | None = None
    on_error: OnError = "skip"
    progress: bool = True

    @model_validator(mode="after")
    def _usable_name(self) -> "PrepareConfig":
        if not self.name or Path(self.name).name != self.name or self.name.startswith("."):
            raise ValueError(f"name '{self.name}' must be a plain folder name (no '/' or leading '.')")
        return self

    @property
    def folder(self) -> Path:
        """The dataset folder ``<output_folder>/<name>``."""
        return self.output_folder / self.name


_PATH_KEYS = (("output_folder",), ("sources", "reviews"), ("sources", "ratings"), ("sources", "meta"),
              ("sources", "image_urls"), ("sources", "image_features"))


def load_prepare_config(path: str | Path | None = None,
                        overrides: dict[str, Any] | None = None) -> PrepareConfig:
    """The validated options from the YAML file at ``path`` (if any) with ``overrides`` on top.

    ``overrides`` is nested like the YAML (``{"filters": {"k_core": 5}}``); ``None`` values are
    ignored so that flags the user did not give leave the file's values in place.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        raw = _read_yaml(path)
        _anchor_paths(raw, path.parent)
    _merge(raw, overrides or {})
    try:
        return PrepareConfig.model_validate(raw)
    except ValidationError as err:
        problems = [Problem(item["msg"], key_path(*item["loc"]) or "(top level)",
                            _hint(item)) for item in err.errors()]
        raise ConfigError(problems, path) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("file not found", path)
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(Problem(f"not valid YAML: {err}"), path) from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(Problem(f"expected a mapping of options, found {type(content).__name__}"), path)
    return content


def _anchor_paths(raw: dict[str, Any], folder: Path) -> None:
    for keys in _PATH_KEYS:
        parent = raw
        for key in keys[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and isinstance(parent.get(keys[-1]), str):
            value = Path(parent[keys[-1]]).expanduser()
            parent[keys[-1]] = str(value if value.is_absolute() else folder / value)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> None:
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict):
            target = base.get(key)
            if not isinstance(target, dict):
                target = base[key] = {}
            _merge(target, value)
        else:
            base[key] = value


def _hint(item: dict[str, Any]) -> str:
    if item["type"] == "extra_forbidden":
        return ("known keys: name, output_folder, sources{reviews, ratings, meta, image_urls, image_features}, "
                "filters{deduplicate, min_rating, start_date, end_date, categories, drop_items_without_image, "
                "k_core}, images{download, workers, timeout, retries, backoff}, "
                "labels{min_items, skip_top_level, finetune_users, seed}, on_error, progress")
    if item["type"] == "missing":
        return "add it to the YAML file or give it as a flag"
    return ""
