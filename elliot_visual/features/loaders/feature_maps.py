"""Convolutional feature maps as ``(regions, channels)`` per item (ACF's ``visual_feat_map_features``).

ACF attends over an item's regions, so every map is stored as a matrix with one row per region,
e.g. ResNet-50's last block 7x7x2048 becomes (49, 2048). Maps saved as ``(H, W, C)`` (Keras) or
``(C, H, W)`` (PyTorch) are flattened; ``layout: auto`` tells them apart by the two equal spatial
axes, or set ``layout`` explicitly. Values keep their stored dtype (float16 halves the memory of
a large catalogue); models widen them per batch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from elliot_visual.features.loaders.base import FeatureLoader, LoaderOptions
from elliot_visual.features.sources import FeatureError, FeatureSource, Transform, open_array_source
from elliot_visual.registry import FEATURE_LOADERS

Layout = Literal["auto", "rc", "hwc", "chw"]


def to_regions(layout: Layout, origin: str = "feature maps") -> Transform:
    """A transform turning gathered maps (n, ...) into (n, regions, channels) for ``layout``."""

    def transform(values: np.ndarray) -> np.ndarray:
        shape = values.shape[1:]
        chosen = layout
        if chosen == "auto":
            chosen = _guess_layout(shape, origin)
        if chosen == "rc":
            if len(shape) != 2:
                raise FeatureError(f"{origin}: layout 'rc' needs 2-D maps (regions, channels), got {shape}")
            out = values
        elif len(shape) != 3:
            raise FeatureError(f"{origin}: layout '{chosen}' needs 3-D maps, got {shape}")
        elif chosen == "hwc":
            out = values.reshape(len(values), shape[0] * shape[1], shape[2])
        else:
            out = values.reshape(len(values), shape[0], shape[1] * shape[2]).transpose(0, 2, 1)
        if out.dtype not in (np.float16, np.float32):
            out = out.astype(np.float32)
        return np.ascontiguousarray(out)

    return transform


def _guess_layout(shape: tuple[int, ...], origin: str) -> Layout:
    if len(shape) == 2:
        return "rc"
    if len(shape) == 3:
        if shape[0] == shape[1] and shape[2] != shape[0]:
            return "hwc"
        if shape[1] == shape[2] and shape[0] != shape[1]:
            return "chw"
    raise FeatureError(f"{origin}: cannot tell the layout of maps of shape {shape}; set layout: rc, hwc or chw")


@FEATURE_LOADERS.register("FeatureMaps")
class FeatureMaps(FeatureLoader):
    """Conv feature maps in any layout of ``sources`` (per-item ``.npy`` or a matrix). YAML::

        - dataloader: FeatureMaps
          path: ../data/{0}/features/resnet50/layer4
          layout: chw
    """

    class Options(LoaderOptions):
        path: Path
        item_mapping: Path | None = None
        item_ids_file: Path | None = None
        layout: Layout = "auto"

    def sources(self) -> dict[str, FeatureSource]:
        o = self.options
        kind = "visual_feat_map_features"
        return {kind: open_array_source(kind, o.path, o.item_mapping, o.item_ids_file, to_regions(o.layout, str(o.path)))}
