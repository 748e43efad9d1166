"""Attribute features: per-item attribute probabilities with the attribute names (interpretable VBPR).

The interpretable-fashion paper (Packer, McAuley, Ramisa 2018) feeds VBPR low-dimensional visual
features whose every dimension is a named attribute ("floral", "denim", ...). This loader reads
such a matrix and keeps the names, so introspection (the affinity vector, refinement toward a
named feature, the interactive page) can speak in attribute names. Layouts::

    item    floral  denim   stripes        a TSV (``.tsv``) or CSV (``.csv``) with a header row:
    B01     0.91    0.02    0.10           the first column is the item id, the others attributes
    B02     0.05    0.88    0.40

    features.npy + item_ids.txt + names    a matrix (n_items, D), one item id per line, and a
                                           names file with one attribute name per line

Values must be finite and, with ``probabilities: true`` (the default), lie in [0, 1]; a value
outside names its item and attribute. The matrix serves the ``visual_features`` kind with its
column ``names`` (``FeatureStore.column_names``), so any VBPR-family model bound to the entry
(the model entry's ``loader``) reads it. ``FeatureVectors`` with ``names_file`` names any other
vectors; this loader adds the table layouts and the probability check.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from elliot_visual.features.loaders.base import FeatureLoader, LoaderOptions
from elliot_visual.features.loaders.vectors import read_column_names
from elliot_visual.features.sources import ArraySource, FeatureError, FeatureSource, read_id_list
from elliot_visual.registry import FEATURE_LOADERS

NAMES_FILE = "attribute_names.txt"


def check_names(names: list[str], columns: int, origin: str) -> tuple[str, ...]:
    """Attribute names: one per column, non-empty, distinct; else an error naming ``origin``."""
    names = [str(n).strip() for n in names]
    if len(names) != columns:
        raise FeatureError(f"{origin}: {len(names)} attribute names for {columns} feature columns; "
                           "give one name per column")
    if not all(names):
        raise FeatureError(f"{origin}: attribute name of column {names.index('')} is empty")
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated is not None:
        raise FeatureError(f"{origin}: attribute name {repeated!r} appears twice; names must be distinct")
    return tuple(names)


def check_values(values: np.ndarray, item_ids: np.ndarray, names: tuple[str, ...], origin: str,
                 probabilities: bool) -> np.ndarray:
    """``values`` as float32 (n_items, D); a non-finite value, or one outside [0, 1] for probabilities,
    is an error naming the item and the attribute."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2:
        raise FeatureError(f"{origin}: expected a matrix (items x attributes), got shape {values.shape}")
    bad = ~np.isfinite(values)
    what = "not a number"
    if probabilities and not bad.any():
        bad = (values < 0) | (values > 1)
        what = "outside [0, 1] (set probabilities: false for unbounded attribute scores)"
    if bad.any():
        row, column = map(int, np.argwhere(bad)[0])
        raise FeatureError(f"{origin}: value {values[row, column]!r} of item {item_ids[row]} for attribute "
                           f"{names[column]!r} is {what}")
    return values


def read_attribute_table(path: Path, probabilities: bool = True) -> ArraySource:
    """A TSV/CSV with a header ``item, <attribute names...>``, one row per item."""
    separator = "," if path.suffix.lower() == ".csv" else "\t"
    if not path.is_file():
        raise FeatureError(f"attribute file {path} does not exist")
    frame = pd.read_csv(path, sep=separator, dtype={0: str}, keep_default_na=False, na_values=[""])
    if frame.shape[1] < 2:
        raise FeatureError(f"{path}: expected a header 'item{separator}<attribute>{separator}...' and one row per "
                           "item; found fewer than two columns")
    ids = frame.iloc[:, 0].astype(str).str.strip().to_numpy(object)
    with path.open(encoding="utf-8") as handle:  # the header as written (pandas renames repeated names)
        header = handle.readline().rstrip("\r\n").split(separator)
    names = check_names(header[1:], frame.shape[1] - 1, str(path))
    try:
        numbers = frame.iloc[:, 1:].apply(pd.to_numeric, errors="raise").to_numpy(np.float32)
    except ValueError as error:
        raise FeatureError(f"{path}: a value is not a number ({error})") from None
    values = check_values(numbers, ids, names, str(path), probabilities)
    return ArraySource("visual_features", ids, values, str(path), names=names)


def read_attribute_matrix(path: Path, names_file: Path | None, item_ids_file: Path | None,
                          probabilities: bool = True) -> ArraySource:
    """``features.npy`` (or any ``.npy``) with its item-id list and attribute-names file."""
    folder = path if path.is_dir() else path.parent
    matrix = path / "features.npy" if path.is_dir() else path
    if not matrix.is_file():
        raise FeatureError(f"attribute matrix {matrix} does not exist")
    ids = read_id_list(item_ids_file or folder / "item_ids.txt")
    names_path = names_file or folder / NAMES_FILE
    if not names_path.is_file():
        raise FeatureError(f"{matrix}: attribute names file {names_path} does not exist; write one name per line "
                           "(or set names_file)")
    values = np.load(matrix, allow_pickle=False)
    names = check_names(list(read_column_names(names_path, "names_file")), values.shape[1] if values.ndim == 2 else -1,
                        str(names_path))
    return ArraySource("visual_features", ids, check_values(values, ids, names, str(matrix), probabilities),
                       str(matrix), names=names)


@FEATURE_LOADERS.register("AttributeFeatures")
class AttributeFeatures(FeatureLoader):
    """Named per-item attribute probabilities as ``visual_features``. YAML::

        - dataloader: AttributeFeatures
          name: attributes
          path: ../data/{0}/attributes.tsv        # or a .csv, a .npy, or a folder with features.npy
          # names_file: ../data/{0}/attribute_names.txt   (.npy layouts; default beside the matrix)
    """

    class Options(LoaderOptions):
        path: Path
        names_file: Path | None = None
        item_ids_file: Path | None = None
        probabilities: bool = True

    def sources(self) -> dict[str, FeatureSource]:
        o = self.options
        if o.path.suffix.lower() in (".tsv", ".csv", ".txt"):
            source = read_attribute_table(o.path, o.probabilities)
        elif o.path.suffix.lower() == ".npy" or o.path.is_dir():
            source = read_attribute_matrix(o.path, o.names_file, o.item_ids_file, o.probabilities)
        elif not o.path.exists():
            raise FeatureError(f"{self.entry}.path: {o.path} does not exist")
        else:
            raise FeatureError(f"{self.entry}.path: {o.path} is not a .tsv, .csv, .npy or a folder with features.npy")
        return {"visual_features": source}
