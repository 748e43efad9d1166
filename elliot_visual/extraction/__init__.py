"""Feature extraction: pretrained CNN backbones, any layer, batched and resumable; fine-tuning.

Modules: ``backbones`` (the BACKBONES entries), ``catalogue`` (a backbone by name, any backend), ``taps`` (one-pass layer taps), ``images`` (robust
decoding), ``extract`` (batched, sharded extraction and the on-disk layout), ``finetune``,
``blocks`` (an experiment's ``extraction:`` blocks, plain or fine-tuning), ``keras_backend``
(optional TensorFlow backend), ``commands`` (the CLI); the block keys are ``config.extraction``.
Importing this package imports neither torch nor any backbone library; the names below load
their module on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Backbone": "backbones", "Layer": "backbones", "Preprocessing": "backbones",
    "WeightsNotFoundError": "backbones", "BackendNotInstalledError": "backbones",
    "get_backbone": "catalogue", "list_layers": "catalogue",
    "extract": "extract", "run_extraction": "blocks", "ensure_features": "blocks",
    "ExtractionResult": "extract",
    "finetune": "finetune",
    "load_rgb": "images", "list_images": "images", "ImageDecodeError": "images",
    "main_extract": "commands", "main_finetune": "commands",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(name)
