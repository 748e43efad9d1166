"""Item categories: one per item (``item \\t category`` TSV, DeepStyle's shared per-category
embedding), or several (``item \\t label|label|...``, the multilabel task's targets)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from elliot_visual.features.loaders.base import FeatureLoader, LoaderOptions
from elliot_visual.features.sources import ArraySource, FeatureError, FeatureSource
from elliot_visual.registry import FEATURE_LOADERS

log = logging.getLogger(__name__)


def read_categories(path: Path, header: bool = False) -> ArraySource:
    """``item \\t category`` rows -> an ``item_categories`` source of int64 category codes.

    Codes number the distinct categories in sorted order, so the same file gives the same codes.
    An item listed twice keeps its first category (a warning says how many were listed twice).
    """
    if not Path(path).is_file():
        raise FeatureError(f"item category file {path} does not exist")
    frame = pd.read_csv(path, sep="\t", header=0 if header else None, dtype=str, keep_default_na=False,
                        usecols=[0, 1])
    frame.columns = ["item", "category"]
    frame["item"] = frame["item"].str.strip()
    repeated = frame["item"].duplicated()
    if repeated.any():
        log.warning("%s: %d items listed more than once; each keeps its first category", path, int(repeated.sum()))
        frame = frame[~repeated]
    codes = pd.Categorical(frame["category"], categories=sorted(frame["category"].unique())).codes
    return ArraySource("item_categories", frame["item"].to_numpy(object), codes.astype(np.int64), str(path))


@FEATURE_LOADERS.register("ItemCategories")
class ItemCategories(FeatureLoader):
    """One category per item from a TSV file. YAML::

        - dataloader: ItemCategories
          path: ../data/{0}/item_categories.tsv
    """

    namespace = "ItemCategories"

    class Options(LoaderOptions):
        path: Path
        header: bool = False

    def sources(self) -> dict[str, FeatureSource]:
        return {"item_categories": read_categories(self.options.path, self.options.header)}


def read_labels(path: Path, header: bool = False, separator: str = "|") -> ArraySource:
    """``item \\t label<sep>label...`` rows -> an ``item_labels`` source: (n, D) float32 multi-hot
    over the D distinct labels in sorted order (their names travel with the source).

    An item listed twice keeps the union of its labels; an item with an empty field has none.
    """
    if not Path(path).is_file():
        raise FeatureError(f"item label file {path} does not exist")
    frame = pd.read_csv(path, sep="\t", header=0 if header else None, dtype=str, keep_default_na=False,
                        usecols=[0, 1])
    frame.columns = ["item", "labels"]
    frame["item"] = frame["item"].str.strip()
    per_item: dict[str, set[str]] = {}
    for item, field in zip(frame["item"], frame["labels"]):
        per_item.setdefault(item, set()).update(label.strip() for label in field.split(separator) if label.strip())
    names = tuple(sorted(set().union(*per_item.values()))) if per_item else ()
    if not names:
        raise FeatureError(f"{path}: no labels found; write one line per item: item<TAB>label{separator}label")
    column = {name: j for j, name in enumerate(names)}
    values = np.zeros((len(per_item), len(names)), dtype=np.float32)
    for row, labels in enumerate(per_item.values()):
        values[row, [column[label] for label in labels]] = 1.0
    return ArraySource("item_labels", np.asarray(list(per_item), dtype=object), values, str(path), names=names)


@FEATURE_LOADERS.register("ItemLabels")
class ItemLabels(FeatureLoader):
    """Several labels (e.g. product categories) per item from a TSV file. YAML::

        - dataloader: ItemLabels
          path: ../data/{0}/item_labels.tsv     # item<TAB>Kitchen|Cookware
          separator: "|"
    """

    namespace = "ItemLabels"

    class Options(LoaderOptions):
        path: Path
        header: bool = False
        separator: str = "|"

    def sources(self) -> dict[str, FeatureSource]:
        return {"item_labels": read_labels(self.options.path, self.options.header, self.options.separator)}
