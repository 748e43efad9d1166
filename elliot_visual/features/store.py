"""The FeatureStore: side information aligned to one split's item catalogue, keyed by public ids.

The runner does, per split::

    store, data = load_side_information(exp.data.config.side_information, data)
    tensors = store.tensors_for(VBPR, "resnet50")    # {"visual_features": (n_items, F) tensor}

``data_config.side_information`` entries each name a registered loader (``dataloader``) and a
namespace (``name``; default the loader's, Elliot's ``VisualAttributes`` for visual loaders).
Entries with the same namespace merge their kinds. A model's config entry binds its namespace with
``loader`` (data routing, not a hyperparameter) and the model lists the kinds it reads in ``needs`` (``optional_needs`` for kinds it uses
when present, e.g. DeepStyle's ``item_categories``). A kind missing from the model's namespace is
taken from the one other namespace that has it, so an ``ItemCategories`` entry need not repeat the
visual namespace's name.

Alignment follows Elliot: every catalogue item must have side information in every declared
source. Items without it are an error that names them, or are dropped with their interactions
when ``data_config.drop_items_without_features`` is true. Items with features but no train rows
that occur in the validation or test set (``cold_items: held_out``, the default) become catalogue
items, so visual models rank them, as the Elliot-Reproducible-VRSs fork ranks every item with
features; ``all`` adds every item with features, ``none`` keeps main Elliot's train-only catalogue.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from elliot_visual.config.schema import SideInformation
from elliot_visual.data.interactions import Interactions
from elliot_visual.features.loaders.base import DEFAULT_NAMESPACE
from elliot_visual.features.sources import FeatureError, FeatureSource, MissingFeaturesError, check_finite
from elliot_visual.registry import FEATURE_LOADERS, closest_match

if TYPE_CHECKING:
    from elliot_visual.config.schema import DataSection

log = logging.getLogger(__name__)

Namespaces = dict[str, dict[str, FeatureSource]]
COLD_ITEM_MODES = ("held_out", "all", "none")
DERIVED_KINDS = ("train_positives", "train_time_span")  # computed from the interactions, not side information
FeatureProvider = Callable[[type, str | None, Interactions], dict[str, Tensor]]


def train_positives(data: Interactions) -> Tensor:
    """Each user's train items as a padded matrix: (n_users, max_len) int64, ``-1`` after her items.

    ACF attends over a user's whole item set and VisRank compares items with it; a padded matrix
    lets both work on batches of users with a mask, and lets the standard BPR sampler feed ACF.
    """
    indptr, indices = data.train.indptr, data.train.indices
    counts = np.diff(indptr)
    out = np.full((data.n_users, max(1, int(counts.max(initial=0)))), -1, dtype=np.int64)
    rows = np.repeat(np.arange(data.n_users), counts)
    cols = np.arange(len(indices)) - indptr[rows]
    out[rows, cols] = indices
    return torch.from_numpy(out)


def train_time_span(data: Interactions) -> Tensor:
    """(2,) float64 [first, last] train event time (unix seconds): temporal models cut it into bins."""
    stamps = data.train_timestamps
    if stamps is None or not stamps.nnz:
        raise FeatureError(f"{data.name}: this model reads event times, but the split has no timestamps; "
                           "read a dataset with a timestamp column")
    return torch.tensor([float(stamps.data.min()), float(stamps.data.max())], dtype=torch.float64)


def derived(kind: str, data: Interactions) -> Tensor:
    """A kind computed from the interactions (``DERIVED_KINDS``)."""
    return train_positives(data) if kind == "train_positives" else train_time_span(data)


def open_side_information(entries: Sequence[SideInformation | Mapping[str, Any]], base_dir: Path | None = None,
                          dataset: str | None = None) -> Namespaces:
    """Build every entry's loader and group its sources by namespace (nothing large is read yet)."""
    namespaces: Namespaces = {}
    for index, entry in enumerate(entries):
        raw = dict(entry) if isinstance(entry, Mapping) else {"dataloader": entry.dataloader, "name": entry.name,
                                                              **(entry.model_extra or {})}
        where = f"data_config.side_information[{index}]"
        loader_cls = FEATURE_LOADERS.get(raw.pop("dataloader"))
        name = raw.pop("name", None) or loader_cls.namespace
        loader = loader_cls(raw, entry=where, base_dir=base_dir, dataset=dataset)
        target = namespaces.setdefault(name, {})
        for kind, source in loader.sources().items():
            merge_source(target, name, kind, source, where)
    return namespaces


def merge_source(target: dict[str, FeatureSource], name: str, kind: str, source: FeatureSource, where: str) -> None:
    """Add ``source``; an explicitly given kind replaces a derived one (e.g. a PCA computed on demand)."""
    current = target.get(kind)
    if current is None or getattr(current, "derived", False):
        target[kind] = source
    elif not getattr(source, "derived", False):
        raise FeatureError(f"{where}: namespace '{name}' already has {kind} from {current.origin}; give this entry "
                           "its own 'name' and bind it with the model entry's 'loader' key")


def align_catalogue(namespaces: Namespaces, data: Interactions, drop_items_without_features: bool = False,
                    cold_items: str = "held_out") -> Interactions:
    """``data`` with a catalogue that every source covers (see the module docstring)."""
    if cold_items not in COLD_ITEM_MODES:
        raise FeatureError(f"cold_items must be one of {', '.join(COLD_ITEM_MODES)} (got {cold_items!r})")
    sources = [s for kinds in namespaces.values() for s in kinds.values()]
    if not sources:
        return data
    covered = set(str(i) for i in sources[0].item_ids())
    for source in sources[1:]:
        covered &= set(str(i) for i in source.item_ids())
    lacking = [str(i) for i in data.item_ids if str(i) not in covered]
    if lacking:
        origin = next(s.origin for s in sources if not set(lacking) <= set(str(i) for i in s.item_ids()))
        if not drop_items_without_features:
            raise MissingFeaturesError(origin, lacking, "set data_config.drop_items_without_features: True to drop "
                                       "them with their interactions, or extract features for them")
        before = data.transactions
        data = data.without_items(lacking)
        log.warning("dropped %d items without side information (first: %s) and %d train interactions",
                    len(lacking), ", ".join(lacking[:5]), before - data.transactions)
    if cold_items == "none":
        return data
    catalogue = set(str(i) for i in data.item_ids)
    if cold_items == "all":
        extra = sorted(covered - catalogue)
    else:
        held = [part.item_ids[part.items < 0] for part in (data.test, data.validation) if part is not None]
        seen = dict.fromkeys(str(i) for ids in held for i in ids)
        extra = [i for i in seen if i in covered and i not in catalogue]
    if extra:
        log.info("added %d cold items (side information, no train interactions) to the catalogue", len(extra))
        data = data.with_items(np.asarray(extra, dtype=object))
    return data


class FeatureStore:
    """Side information of one split, aligned to ``data.item_ids``; read lazily and cached per kind."""

    def __init__(self, namespaces: Namespaces, data: Interactions, train_items_only_pca: bool = True) -> None:
        self.namespaces = namespaces
        self.data = data
        self.train_items_only_pca = train_items_only_pca
        self._cache: dict[tuple[int, str], np.ndarray] = {}

    @classmethod
    def from_arrays(cls, data: Interactions, arrays: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
                    train_items_only_pca: bool = True) -> "FeatureStore":
        """A store from in-memory ``{namespace: {kind: (item_ids, values)}}`` (tests, generated data)."""
        from elliot_visual.features.sources import ArraySource

        namespaces = {name: {kind: ArraySource(kind, ids, values, f"<{name}.{kind} in memory>")
                             for kind, (ids, values) in kinds.items()} for name, kinds in arrays.items()}
        return cls(namespaces, data, train_items_only_pca)

    @property
    def item_ids(self) -> np.ndarray:
        return self.data.item_ids

    def names(self) -> list[str]:
        return sorted(self.namespaces)

    def has(self, loader_name: str, kind: str) -> bool:
        """Whether :meth:`get` can answer (``kind`` in the namespace or in exactly one other)."""
        try:
            self.source(loader_name, kind)
        except FeatureError:
            return False
        return True

    def source(self, loader_name: str, kind: str) -> FeatureSource:
        """The source serving ``kind`` for namespace ``loader_name`` (see the module docstring)."""
        if loader_name not in self.namespaces and not (loader_name == DEFAULT_NAMESPACE and self._only_one(kind)):
            close = closest_match(loader_name, list(self.namespaces))
            hint = f" Did you mean '{close}'?" if close else ""
            raise FeatureError(f"no side-information namespace '{loader_name}'.{hint} Declared: "
                               f"{', '.join(self.names()) or 'none'} (set 'name' on a data_config.side_information "
                               "entry or the model entry's 'loader' key)")
        if kind in self.namespaces.get(loader_name, {}):
            return self.namespaces[loader_name][kind]
        others = [name for name, kinds in self.namespaces.items() if kind in kinds]
        if len(others) == 1:
            return self.namespaces[others[0]][kind]
        if others:
            raise FeatureError(f"namespace '{loader_name}' has no {kind} and several others do ({', '.join(others)}); "
                               "give the entry you mean the name "
                               f"'{loader_name}'")
        raise FeatureError(f"no side-information entry provides {kind} (namespace '{loader_name}' has "
                           f"{', '.join(self.namespaces[loader_name]) or 'nothing'}); add the key for it to "
                           "data_config.side_information, e.g. visual_feat_map_features for ACF")

    def _only_one(self, kind: str) -> bool:
        """Whether exactly one namespace provides ``kind`` (an unbound model then reads it there)."""
        return sum(kind in kinds for kinds in self.namespaces.values()) == 1

    def column_names(self, loader_name: str, kind: str) -> tuple[str, ...] | None:
        """The names of ``kind``'s value columns (label or attribute names), when its source has them."""
        return self.source(loader_name, kind).names

    def get(self, loader_name: str, kind: str) -> np.ndarray:
        """(n_items, *shape) values of ``kind`` aligned to ``data.item_ids``."""
        source = self.source(loader_name, kind)
        key = (id(source), kind)
        if key not in self._cache:
            mask = self.data.train_item_mask if self.train_items_only_pca else np.ones(self.data.n_items, bool)
            items = np.asarray(self.data.item_ids, dtype=object)
            values = source.load(items, np.asarray(mask))
            check_finite(values, items, source.origin)
            self._cache[key] = np.require(values, requirements=["C", "W"])
        return self._cache[key]

    def tensors_for(self, model_cls: type, loader: str | None = None) -> dict[str, Tensor]:
        """The tensors ``model_cls`` reads (its ``needs`` and present ``optional_needs``) from the
        feature set ``loader`` bound in its config entry (default: Elliot's namespace)."""
        loader_name = str(loader or DEFAULT_NAMESPACE)
        out: dict[str, Tensor] = {}
        for kind in getattr(model_cls, "needs", ()):
            out[kind] = derived(kind, self.data) if kind in DERIVED_KINDS else \
                torch.from_numpy(self.get(loader_name, kind))
        for kind in getattr(model_cls, "optional_needs", ()):
            if kind in DERIVED_KINDS:
                out[kind] = derived(kind, self.data)
            elif loader_name in self.namespaces and self.has(loader_name, kind):
                out[kind] = torch.from_numpy(self.get(loader_name, kind))
        return out


def load_side_information(side_information: Sequence[SideInformation | Mapping[str, Any]], data: Interactions, *,
                          drop_items_without_features: bool = False, cold_items: str = "held_out",
                          train_items_only_pca: bool = True, base_dir: Path | None = None,
                          dataset: str | None = None) -> tuple[FeatureStore, Interactions]:
    """Open the entries, align ``data``'s catalogue to them, and return the store and the aligned data."""
    namespaces = open_side_information(side_information, base_dir, dataset)
    data = align_catalogue(namespaces, data, drop_items_without_features, cold_items)
    return FeatureStore(namespaces, data, train_items_only_pca), data


def tensors_without_side_information(model_cls: type, loader: str | None, data: Interactions) -> dict[str, Tensor]:
    """Features for an experiment with no side information: only kinds computed from interactions."""
    missing = [k for k in getattr(model_cls, "needs", ()) if k not in DERIVED_KINDS]
    if missing:
        raise FeatureError(f"model {getattr(model_cls, 'family', model_cls.__name__)} needs {', '.join(missing)} but "
                           "the config declares no data_config.side_information; add a loader entry such as "
                           "'- dataloader: VisualAttribute' with visual_features")
    return FeatureStore({}, data).tensors_for(model_cls, loader)


class SplitFeatures:
    """The runner's side information: one :class:`FeatureStore` per split, made on first use.

    Called as ``(model_cls, loader, data)`` it gives the tensors a model reads (the tuner's
    feature provider); :meth:`store` gives the split's store itself, for metrics that read item
    features (VisDiv) and for the visual-profile pictures. Each split gets its own store because
    PCA is fitted on that split's train items.
    """

    def __init__(self, namespaces: Namespaces, train_items_only_pca: bool = True) -> None:
        self.namespaces = namespaces
        self.train_items_only_pca = train_items_only_pca
        self._stores: dict[int, FeatureStore] = {}

    def store(self, data: Interactions) -> FeatureStore:
        """The store aligned to ``data`` (the same object on every call for the same split)."""
        store = self._stores.get(id(data))
        if store is None or store.data is not data:
            store = self._stores[id(data)] = FeatureStore(self.namespaces, data, self.train_items_only_pca)
        return store

    def __call__(self, model_cls: type, loader: str | None, data: Interactions) -> dict[str, Tensor]:
        if not self.namespaces:
            return tensors_without_side_information(model_cls, loader, data)
        return self.store(data).tensors_for(model_cls, loader)


def side_information_provider(section: "DataSection", folds: list[list[Interactions]],
                              train_items_only_pca: bool = True) -> tuple[list[list[Interactions]], SplitFeatures]:
    """The runner's entry: align every fold's catalogue to the side information, and the features per split.

    Loaders are opened once; each fold gets its own store (PCA is fitted on that fold's train items).
    """
    entries = section.config.side_information
    if not entries:
        return folds, SplitFeatures({}, train_items_only_pca)
    namespaces = open_side_information(entries, section.base_dir, section.dataset)
    drop = section.config.drop_items_without_features
    cold = getattr(section.config, "cold_items", "held_out")
    aligned = [[align_catalogue(namespaces, data, drop, cold) for data in inner] for inner in folds]
    return aligned, SplitFeatures(namespaces, train_items_only_pca)
