"""McAuley's Amazon image features, ``image_features_<Category>.b`` (He & McAuley 2016).

Each record is a 10-byte ASIN then 4096 float32. The file (gigabytes for a whole category) is
scanned once for its ASINs; values are streamed for the catalogue's items only, with the reader of
``data.amazon`` (which seeks over the records it does not need).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from elliot_visual.data.amazon import FEATURE_DIM, amazon_binary_asins, iter_amazon_binary_features
from elliot_visual.data.readers import DataError
from elliot_visual.features.loaders.base import FeatureLoader, LoaderOptions
from elliot_visual.features.loaders.pca import PCASource
from elliot_visual.features.sources import FeatureError, FeatureSource
from elliot_visual.registry import FEATURE_LOADERS


class AmazonBinarySource(FeatureSource):
    """``visual_features`` from a McAuley binary file, read for the requested ASINs only."""

    def __init__(self, path: Path, dim: int = FEATURE_DIM) -> None:
        self.kind, self.origin, self.path, self.dim = "visual_features", str(path), Path(path), dim
        self._ids: np.ndarray | None = None

    def item_ids(self) -> np.ndarray:
        if self._ids is None:
            try:
                self._ids = np.asarray(sorted(amazon_binary_asins(self.path, self.dim)), dtype=object)
            except DataError as error:
                raise FeatureError(str(error)) from None
        return self._ids

    def load(self, items: np.ndarray, train_mask: np.ndarray) -> np.ndarray:
        self.positions(items, dict.fromkeys(self.item_ids(), 0))
        row_of = {str(item): row for row, item in enumerate(items)}
        out = np.empty((len(items), self.dim), dtype=np.float32)
        for asin, vector in iter_amazon_binary_features(self.path, set(row_of), self.dim):
            out[row_of[asin]] = vector
        return out


@FEATURE_LOADERS.register("AmazonImageFeatures")
class AmazonImageFeatures(FeatureLoader):
    """He & McAuley's 4096-d Caffe features of Amazon product images. YAML::

        - dataloader: AmazonImageFeatures
          path: ../data/{0}/image_features_Baby.b
    """

    class Options(LoaderOptions):
        path: Path
        dim: int = FEATURE_DIM
        n_components: int = 128

    def sources(self) -> dict[str, FeatureSource]:
        source = AmazonBinarySource(self.options.path, self.options.dim)
        return {"visual_features": source,
                "visual_pca_features": PCASource(source, self.options.n_components, derived=True)}
