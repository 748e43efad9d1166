"""Elliot's own visual side-information loaders, read with our sources.

* ``VisualAttribute`` (main Elliot, a ``side_information`` list entry) and ``VisualLoader`` (the
  Elliot-Reproducible-VRSs fork, ``data_config.dataloader: VisualLoader`` with a dict) take the
  same keys: ``visual_features``, ``visual_pca_features``, ``visual_feat_map_features``,
  ``images_src_folder`` + ``output_image_size``, and ``item_mapping`` (``item \\t feature_index``;
  without it the per-item files are named by item id). Both expose Elliot's namespace
  ``VisualAttributes``, which models select with their ``loader`` hyperparameter.
* Differences from Elliot, each fixing a silent mis-run there: every kind is read from its own
  folder (Elliot's VisualAttribute lists the ``visual_features`` folder for all of them), files are
  matched to items by id (Elliot's samplers load ``<dense index>.npy``), and features are read once
  into memory instead of per batch. Folders may also use the ``features.npy`` + ``item_ids.txt``
  layout of our extraction step.
* Additions: ``n_components`` (the PCA computed on train items when ``visual_pca_features`` is not
  given), ``item_categories`` (a TSV ``item \\t category`` for DeepStyle) and ``feature_map_layout``.
  The fork's ``visual_color_features``, ``visual_class_features``, ``shapes_src_folder`` and
  ``output_shape_size`` are accepted and unused (no model here reads them), with a warning.
"""
from __future__ import annotations

import logging
from pathlib import Path

from elliot_visual.features.loaders.base import FeatureLoader, LoaderOptions, existing
from elliot_visual.features.loaders.categories import read_categories
from elliot_visual.features.loaders.feature_maps import Layout, to_regions
from elliot_visual.features.loaders.images import ImageFolderSource, ImageSize
from elliot_visual.features.loaders.pca import PCASource
from elliot_visual.features.sources import FeatureError, FeatureSource, as_float32, open_array_source
from elliot_visual.registry import FEATURE_LOADERS

log = logging.getLogger(__name__)

UNUSED_FORK_KEYS = ("visual_color_features", "visual_class_features", "shapes_src_folder", "output_shape_size")


class ElliotVisualOptions(LoaderOptions):
    visual_features: Path | None = None
    visual_pca_features: Path | None = None
    visual_feat_map_features: Path | None = None
    images_src_folder: Path | None = None
    output_image_size: ImageSize = (224, 224)
    item_mapping: Path | None = None
    item_categories: Path | None = None
    n_components: int = 128
    feature_map_layout: Layout = "auto"
    visual_color_features: Path | None = None
    visual_class_features: Path | None = None
    shapes_src_folder: Path | None = None
    output_shape_size: str | None = None


class ElliotVisual(FeatureLoader):
    """Shared reading of the Elliot visual keys (see the module docstring)."""

    Options = ElliotVisualOptions

    def sources(self) -> dict[str, FeatureSource]:
        o = self.options
        for key in UNUSED_FORK_KEYS:
            if getattr(o, key) is not None:
                log.warning("%s.%s is accepted for compatibility but no model here reads it", self.entry, key)
        mapping = existing(o.item_mapping, "item_mapping", self.entry)
        out: dict[str, FeatureSource] = {}
        if o.visual_features is not None:
            out["visual_features"] = open_array_source(
                "visual_features", existing(o.visual_features, "visual_features", self.entry), mapping,
                transform=as_float32)
        if o.visual_pca_features is not None:
            out["visual_pca_features"] = open_array_source(
                "visual_pca_features", existing(o.visual_pca_features, "visual_pca_features", self.entry), mapping,
                transform=as_float32)
        elif "visual_features" in out:
            out["visual_pca_features"] = PCASource(out["visual_features"], o.n_components, derived=True)
        if o.visual_feat_map_features is not None:
            path = existing(o.visual_feat_map_features, "visual_feat_map_features", self.entry)
            out["visual_feat_map_features"] = open_array_source(
                "visual_feat_map_features", path, mapping, transform=to_regions(o.feature_map_layout, str(path)))
        if o.images_src_folder is not None:
            out["images"] = ImageFolderSource(existing(o.images_src_folder, "images_src_folder", self.entry),
                                              o.output_image_size)
        if o.item_categories is not None:
            out["item_categories"] = read_categories(existing(o.item_categories, "item_categories", self.entry))
        if not out:
            raise FeatureError(f"{self.entry}: {type(self).__name__} needs at least one of visual_features, "
                               "visual_pca_features, visual_feat_map_features, images_src_folder")
        return out


@FEATURE_LOADERS.register("VisualAttribute")
class VisualAttribute(ElliotVisual):
    """Main Elliot's ``VisualAttribute`` side-information entry (namespace ``VisualAttributes``). YAML::

        side_information:
          - dataloader: VisualAttribute
            visual_features: ../data/{0}/original/cnn_features_resnet50_avg_pool/
            visual_feat_map_features: ../data/{0}/original/cnn_features_resnet50_conv5_block3_out/
            images_src_folder: ../data/{0}/original/images/
            output_image_size: (224,224)
    """


@FEATURE_LOADERS.register("VisualLoader")
class VisualLoader(ElliotVisual):
    """The fork's ``data_config.dataloader: VisualLoader`` with ``side_information`` as a dict. YAML::

        dataloader: VisualLoader
        side_information:
          visual_features: ../data/{0}/original/cnn_features_resnet50_avg_pool/
          item_mapping: ../data/{0}/visual_feats.tsv
    """
