"""Feature sources: one kind of per-item side information read from one place, keyed by public item ids.

A source knows cheaply which items it covers (``item_ids()``: file names, an id list, a mapping
file) and reads the values of the items asked for only when a model needs them (``load``). That
lets the store check the catalogue against every declared source before any large file is read,
and lets several folds share one source. On-disk layouts accepted for vectors and feature maps:

* a folder of one ``.npy`` per item named by the item id (main Elliot's ``visual_features``);
* a folder of ``<feature_index>.npy`` with an ``item_mapping`` TSV ``item_id \\t feature_index``
  (the Elliot-Reproducible-VRSs fork);
* one matrix ``.npy`` (float16 or float32, memory-mapped) with an item-id list, one id per line: a
  folder holding ``features.npy`` + ``item_ids.txt`` (+ ``metadata.json``), the layout the
  extraction step writes, or a ``.npy`` file with ``item_ids_file`` or ``item_ids.txt`` beside it.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from elliot_visual.progress import progress as progress_bar

from elliot_visual.storage import FEATURES_FILE, IDS_FILE

log = logging.getLogger(__name__)

KINDS = ("visual_features", "visual_pca_features", "visual_feat_map_features", "images", "item_categories")


class FeatureError(ValueError):
    """Side information that cannot be read or does not match the data; the message says what to do."""


class MissingFeaturesError(FeatureError):
    """Items of the catalogue that a source has no values for."""

    def __init__(self, origin: str, missing: list[str], hint: str) -> None:
        self.missing = missing
        first = ", ".join(missing[:5])
        super().__init__(f"features for {len(missing)} items missing in {origin} (first: {first}); {hint}")


class FeatureSource(ABC):
    """One kind of per-item values (``kind``) from one origin (a path, for messages)."""

    kind: str
    origin: str
    names: tuple[str, ...] | None = None  # what each value column means (attribute / label names), when known

    @abstractmethod
    def item_ids(self) -> np.ndarray:
        """Public ids of every item this source has values for (object array of str); cheap."""

    @abstractmethod
    def load(self, items: np.ndarray, train_mask: np.ndarray) -> np.ndarray:
        """Values for ``items`` (public ids, catalogue order): shape (len(items), *item_shape).

        ``train_mask`` (len(items),) marks items with train interactions; only sources fitted on
        the data (PCA) read it. Every item must be covered (see :meth:`item_ids`).
        """

    def positions(self, items: np.ndarray, index: dict[str, int]) -> np.ndarray:
        """Row of each of ``items`` in ``index``, or :class:`MissingFeaturesError`."""
        rows = np.fromiter((index.get(str(i), -1) for i in items), dtype=np.int64, count=len(items))
        if (rows < 0).any():
            missing = [str(i) for i in np.asarray(items)[rows < 0]]
            raise MissingFeaturesError(self.origin, missing, "set data_config.drop_items_without_features: True "
                                       "or re-run the feature extraction for them")
        return rows


Transform = Callable[[np.ndarray], np.ndarray]


def _identity(values: np.ndarray) -> np.ndarray:
    return values


class ArraySource(FeatureSource):
    """Rows of one matrix (in memory or memory-mapped) with the item id of each row."""

    def __init__(self, kind: str, item_ids: np.ndarray, values: np.ndarray, origin: str,
                 transform: Transform = _identity, names: tuple[str, ...] | None = None) -> None:
        if len(item_ids) != len(values):
            raise FeatureError(f"{origin}: {len(item_ids)} item ids for {len(values)} feature rows; "
                               "the id list must have one line per row")
        self.kind, self.origin, self.transform, self.names = kind, origin, transform, names
        self._ids = np.asarray([str(i) for i in item_ids], dtype=object)
        self._values = values
        self._index = {item: row for row, item in enumerate(self._ids)}
        if len(self._index) != len(self._ids):
            duplicated = pd.Series(self._ids).duplicated()
            raise FeatureError(f"{origin}: item id {self._ids[duplicated.to_numpy()][0]!r} appears twice in the id list")

    def item_ids(self) -> np.ndarray:
        return self._ids

    def load(self, items: np.ndarray, train_mask: np.ndarray) -> np.ndarray:
        rows = self.positions(items, self._index)
        # Gather in ascending row order so a memory-mapped file is read front to back, then restore order.
        order = np.argsort(rows, kind="stable")
        gathered = np.empty((len(rows), *self._values.shape[1:]), dtype=self._values.dtype)
        gathered[order] = self._values[rows[order]]
        return self.transform(gathered)


class PerItemFileSource(FeatureSource):
    """A folder of one ``.npy`` per item; ``files`` maps each public id to its file name."""

    def __init__(self, kind: str, folder: Path, files: dict[str, str], transform: Transform = _identity) -> None:
        self.kind, self.origin, self.folder, self.files, self.transform = kind, str(folder), folder, files, transform

    def item_ids(self) -> np.ndarray:
        return np.asarray(list(self.files), dtype=object)

    def load(self, items: np.ndarray, train_mask: np.ndarray) -> np.ndarray:
        self.positions(items, {item: 0 for item in self.files})
        rows = []
        for item in progress_bar(items, desc=f"reading {self.folder.name}", unit="item",
                         enabled=len(items) >= 2000):
            path = self.folder / self.files[str(item)]
            try:
                rows.append(np.load(path, allow_pickle=False))
            except (OSError, ValueError) as error:
                raise FeatureError(f"{path}: cannot read features of item {item} ({error}); "
                                   "re-run the extraction for it or remove the file") from None
        shapes = {row.shape for row in rows}
        if len(shapes) > 1:
            raise FeatureError(f"{self.folder}: per-item feature files have different shapes {sorted(shapes)[:3]}; "
                               "every item must have the same feature shape")
        if not rows:
            return np.zeros((0,), dtype=np.float32)
        return self.transform(np.stack(rows))


def read_item_mapping(path: Path) -> dict[str, str]:
    """The fork's ``item_mapping`` TSV: ``item_id \\t feature_index`` -> {item id: feature index}."""
    if not path.is_file():
        raise FeatureError(f"item_mapping file {path} does not exist")
    frame = pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False)
    if frame.shape[1] < 2:
        raise FeatureError(f"{path}: expected two tab-separated columns 'item_id \\t feature_index'")
    return dict(zip(frame[0].str.strip(), frame[1].str.strip()))


def read_id_list(path: Path) -> np.ndarray:
    """One item id per line (blank lines ignored), as written beside a feature matrix."""
    if not path.is_file():
        raise FeatureError(f"item id list {path} does not exist; write one item id per line, in row order")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return np.asarray([line for line in lines if line], dtype=object)


def open_array_source(kind: str, path: Path, item_mapping: Path | None = None, item_ids_file: Path | None = None,
                      transform: Transform = _identity) -> FeatureSource:
    """The source for ``path`` in any accepted layout (see the module docstring)."""
    path = Path(path)
    if path.is_dir() and (path / FEATURES_FILE).is_file():
        ids_file = item_ids_file or path / IDS_FILE
        return ArraySource(kind, read_id_list(ids_file), open_matrix(path / FEATURES_FILE),
                           str(path / FEATURES_FILE), transform)
    if path.is_dir():
        names = {p.stem: p.name for p in path.iterdir() if p.suffix == ".npy" and not p.name.startswith(".")}
        if item_mapping is not None:
            mapping = read_item_mapping(item_mapping)
            files = {item: names[index] for item, index in mapping.items() if index in names}
            if not files and mapping:
                raise FeatureError(f"{path}: none of the feature indices of {item_mapping} has a file "
                                   f"'<feature_index>.npy' here; check the item_mapping and the folder")
        else:
            files = names
        if not files:
            raise FeatureError(f"{path}: no .npy feature files found; expected one '<item id>.npy' per item or "
                               f"'{FEATURES_FILE}' with '{IDS_FILE}'")
        return PerItemFileSource(kind, path, files, transform)
    if path.is_file() and path.suffix == ".npy":
        ids_file = item_ids_file or _id_list_beside(path)
        return ArraySource(kind, read_id_list(ids_file), open_matrix(path), str(path), transform)
    if not path.exists():
        raise FeatureError(f"feature path {path} does not exist; run the extraction or fix the path in "
                           "data_config.side_information")
    raise FeatureError(f"{path}: not a feature folder or a .npy matrix")


def open_matrix(path: Path) -> np.ndarray:
    """A feature matrix ``.npy``, memory-mapped; a corrupt or truncated file is an error naming it."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise FeatureError(f"{path}: not a readable .npy feature matrix ({error}); re-run the extraction "
                           "or replace the file") from None


def check_finite(values: np.ndarray, items: np.ndarray, origin: str) -> None:
    """Refuse NaN/inf rows at load, naming the file and the first items (they would surface later as
    a coverage error or a diverging loss, far from their cause)."""
    if not np.issubdtype(values.dtype, np.floating) or values.size == 0:
        return
    finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if finite.all():
        return
    bad = [str(items[i]) for i in np.flatnonzero(~finite)]
    raise FeatureError(f"{origin}: features of {len(bad)} items are NaN or infinite (first: {', '.join(bad[:5])}); "
                       "re-run the extraction for them, or drop them with data_config.drop_items_without_features "
                       "after removing their rows from the feature files")


def _id_list_beside(path: Path) -> Path:
    """``<stem>_item_ids.txt`` or ``item_ids.txt`` next to a matrix file."""
    named = path.with_name(f"{path.stem}_item_ids.txt")
    return named if named.is_file() else path.with_name(IDS_FILE)


def as_float32(values: np.ndarray) -> np.ndarray:
    """Vectors as float32 (float16 files are widened once, after gathering the needed rows)."""
    if values.ndim > 2 and sum(d > 1 for d in values.shape[1:]) <= 1:
        values = values.reshape(len(values), -1)  # (n, 1, F) or (n, F, 1, 1) vectors saved with unit axes
    if values.ndim != 2:
        raise FeatureError(f"expected one 1-D feature vector per item, got rows of shape {values.shape[1:]}; "
                           "use visual_feat_map_features for feature maps")
    return np.ascontiguousarray(values, dtype=np.float32)
