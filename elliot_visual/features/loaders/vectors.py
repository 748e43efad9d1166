"""Fully-connected feature vectors (VBPR, DeepStyle, VisRank's ``visual_features``) in any layout."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from elliot_visual.features.loaders.base import FeatureLoader, LoaderOptions
from elliot_visual.features.loaders.pca import PCASource
from elliot_visual.features.sources import FeatureError, FeatureSource, as_float32, open_array_source
from elliot_visual.registry import FEATURE_LOADERS
from elliot_visual.storage import NAMES_FILE


@FEATURE_LOADERS.register("FeatureVectors")
class FeatureVectors(FeatureLoader):
    """One vector per item: a per-item ``.npy`` folder (named by item id, or by feature index with an
    ``item_mapping`` TSV), a folder with ``features.npy`` + ``item_ids.txt``, or a ``.npy`` matrix.

    ``kind: visual_pca_features`` declares already-reduced vectors; otherwise reduced ones are
    derived on demand with ``n_components`` (PCA on train items). ``names_file`` (one name per line,
    one line per column) names the columns of interpretable features (attribute probabilities), which
    the affinity tools and the trend figures show; without it, a ``names.txt`` inside the ``path``
    folder (what extraction writes for the ``probabilities`` layer) is read. YAML::

        - dataloader: FeatureVectors
          path: ../data/{0}/features/resnet50/avgpool
    """

    class Options(LoaderOptions):
        path: Path
        item_mapping: Path | None = None
        item_ids_file: Path | None = None
        kind: Literal["visual_features", "visual_pca_features"] = "visual_features"
        n_components: int = 128
        names_file: Path | None = None

    def sources(self) -> dict[str, FeatureSource]:
        o = self.options
        source = open_array_source(o.kind, o.path, o.item_mapping, o.item_ids_file, as_float32)
        names_file = o.names_file
        if names_file is None and (Path(o.path) / NAMES_FILE).is_file():
            names_file = Path(o.path) / NAMES_FILE  # written beside the features by extraction
        if names_file is not None:
            source.names = read_column_names(names_file, self.entry)
        if o.kind == "visual_pca_features":
            return {o.kind: source}
        return {o.kind: source, "visual_pca_features": PCASource(source, o.n_components, derived=True)}


def read_column_names(path: Path, entry: str) -> tuple[str, ...]:
    """One column name per non-empty line of ``path``."""
    if not Path(path).is_file():
        raise FeatureError(f"{entry}.names_file: {path} does not exist; write one feature name per line")
    names = tuple(line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())
    if len(set(names)) != len(names):
        raise FeatureError(f"{entry}.names_file: {path} repeats a name; feature names must be unique")
    return names
