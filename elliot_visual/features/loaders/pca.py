"""PCA-reduced vectors (VNPR's ``visual_pca_features``), fitted with scikit-learn on TRAIN items.

When a config gives no reduced features, they are computed from the full vectors: the PCA is
fitted on the catalogue's train items only (test items must not shape the projection), then every
catalogue item (cold ones too) is projected. The fitted mean and components are cached next to
the features, written atomically, keyed by the vectors, the component count and the train items.
"""
from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from elliot_visual.features.loaders.base import FeatureLoader, LoaderOptions
from elliot_visual.features.sources import FeatureError, FeatureSource, as_float32, check_finite, open_array_source
from elliot_visual.registry import FEATURE_LOADERS
from elliot_visual.storage import pca_projection_cache, write_bytes

log = logging.getLogger(__name__)

PCA_SEED = 42


class PCASource(FeatureSource):
    """``n_components`` principal components of ``base`` (a vector source), fitted on train items."""

    def __init__(self, base: FeatureSource, n_components: int, cache: bool = True, derived: bool = False) -> None:
        if n_components < 1:
            raise FeatureError(f"n_components must be >= 1 (got {n_components})")
        self.kind = "visual_pca_features"
        self.base, self.n_components, self.cache = base, n_components, cache
        self.derived = derived  # offered implicitly beside full vectors; an explicit source wins over it
        self.origin = f"PCA({n_components}) of {base.origin}"

    def item_ids(self) -> np.ndarray:
        return self.base.item_ids()

    def load(self, items: np.ndarray, train_mask: np.ndarray) -> np.ndarray:
        vectors = as_float32(self.base.load(items, train_mask))
        check_finite(vectors, items, self.base.origin)  # before the PCA fit, which would fail on them opaquely
        fit_rows = np.flatnonzero(train_mask)
        if fit_rows.size == 0:
            raise FeatureError(f"{self.origin}: no train item to fit the PCA on")
        mean, components = self._fitted(vectors[fit_rows], np.asarray(items)[fit_rows])
        return ((vectors - mean) @ components.T).astype(np.float32)

    def cache_path(self, fit_ids: np.ndarray) -> Path:
        """Where the fitted projection for these train items is cached (beside the features)."""
        origin = Path(self.base.origin)
        digest = hashlib.sha1()
        stat = origin.stat() if origin.exists() else None
        digest.update(f"{origin.resolve()}|{self.n_components}|{stat and (stat.st_size, stat.st_mtime_ns)}".encode())
        digest.update("\n".join(sorted(str(i) for i in fit_ids)).encode())
        return pca_projection_cache(origin, self.n_components, digest.hexdigest()[:12])

    def _fitted(self, train_vectors: np.ndarray, fit_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        path = self.cache_path(fit_ids)
        if self.cache and path.is_file():
            with np.load(path) as cached:
                return cached["mean"], cached["components"]
        n = min(self.n_components, *train_vectors.shape)
        if n < self.n_components:
            log.warning("%s: only %d components possible with %d train items of dimension %d; using %d",
                        self.origin, n, *train_vectors.shape, n)
        pca = PCA(n_components=n, random_state=PCA_SEED).fit(train_vectors.astype(np.float64))
        mean, components = pca.mean_.astype(np.float32), pca.components_.astype(np.float32)
        if self.cache:
            buffer = io.BytesIO()
            np.savez(buffer, mean=mean, components=components)
            try:
                write_bytes(path, buffer.getvalue())
            except OSError as error:
                log.warning("could not cache the PCA in %s (%s); it will be refitted next run", path, error)
        return mean, components


@FEATURE_LOADERS.register("PCAFeatures")
class PCAFeatures(FeatureLoader):
    """``visual_pca_features`` computed from full vectors (any vector layout, see ``sources``).

    YAML::

        - dataloader: PCAFeatures
          path: ../data/{0}/features/resnet50/avgpool
          n_components: 128
    """

    class Options(LoaderOptions):
        path: Path
        n_components: int = 128
        item_mapping: Path | None = None
        item_ids_file: Path | None = None
        cache: bool = True

    def sources(self) -> dict[str, FeatureSource]:
        o = self.options
        base = open_array_source("visual_features", o.path, o.item_mapping, o.item_ids_file, as_float32)
        return {"visual_pca_features": PCASource(base, o.n_components, o.cache)}
