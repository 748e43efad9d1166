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
import types
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


class FunctionModule(types.ModuleType):
    """A submodule that calls its namesake function: ``extraction.extract(config)``.

    Python binds a submodule to the package attribute of its name once it is imported, so
    ``elliot_visual.extraction.extract`` would turn from the function into the module mid-session;
    the ``extract`` and ``finetune`` modules take this class, so the public name works either way."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rsplit(".", 1)[1])(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(name)
