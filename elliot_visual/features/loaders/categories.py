"""Item categories (``item \\t category`` TSV) for DeepStyle's shared per-category embedding."""
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
