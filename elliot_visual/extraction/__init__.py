"""Feature extraction: pretrained CNN backbones, any layer, batched and resumable; fine-tuning.

Modules: ``backbones`` (the BACKBONES entries), ``taps`` (one-pass layer taps), ``images`` (robust
decoding), ``extract`` (batched, sharded extraction and the on-disk layout), ``finetune``,
``keras_backend`` (optional TensorFlow backend), ``config`` (block keys), ``commands`` (the CLI).
Importing this package imports neither torch nor any backbone library; the names below load
their module on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ExtractionConfig": "config", "FinetuneConfig": "config", "ExtractionConfigError": "config",
    "parse_block": "config",
    "Backbone": "backbones", "Layer": "backbones", "Preprocessing": "backbones",
    "WeightsNotFoundError": "backbones", "BackendNotInstalledError": "backbones",
    "get_backbone": "backbones", "list_layers": "backbones",
    "extract": "extract", "run_extraction": "extract", "ensure_features": "extract",
    "ExtractionResult": "extract", "layer_folder": "extract",
    "finetune": "finetune",
    "load_rgb": "images", "list_images": "images", "ImageDecodeError": "images",
    "main_extract": "commands", "main_finetune": "commands",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(name)
