"""Backbones by name across both backends: the torch catalogue (:mod:`.backbones`) and the
Keras one (:mod:`.keras_backend`), each registered in its own registry.

The lookup sits above both catalogues, so neither imports the other.
"""
from __future__ import annotations

from elliot_visual.extraction.backbones import Backbone
from elliot_visual.registry import BACKBONES, KERAS_BACKBONES


def get_backbone(name: str, backend: str = "torch") -> Backbone:
    """The registered backbone ``name`` (``backend='tensorflow'`` for the Keras catalogue)."""
    if backend in ("tensorflow", "keras"):
        return KERAS_BACKBONES.get(name)
    return BACKBONES.get(name)


def list_layers(name: str, backend: str = "torch") -> list[str]:
    """Every layer a config may name for backbone ``name``: its aliases, then its FX node names."""
    backbone = get_backbone(name, backend)
    if backend in ("tensorflow", "keras"):
        return list(backbone.layers)
    model, _ = backbone.build(weights=None)
    derived = ["probabilities"] if "logits" in backbone.layers else []
    return list(backbone.layers) + derived + backbone.node_names(model)
