"""Layer taps: one FX graph that returns every requested layer in a single pass, built once per run.

:class:`TapModule` wraps a backbone network: it takes the ``uint8`` image batch the loader
produces, normalises it on the device (mean/std of the backbone's weights), runs the FX graph cut
after the deepest requested node (``torchvision.models.feature_extraction.create_feature_extractor``,
or timm's variant that knows timm's leaf modules) and returns each layer in the layout documented
in :mod:`.backbones` (vectors, or region-major ``(H*W, C)`` maps; a ``softmax`` layer such as
``probabilities`` as class probabilities, see :func:`class_probabilities`). It is an ``nn.Module`` so that
fine-tuning can train through it; :class:`TorchExtractor` runs it for inference on a device with
``torch.inference_mode``, channels-last memory and bf16/fp16 autocast on CUDA.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn

from elliot_visual.extraction.backbones import PROBABILITIES, Backbone, Layer, Preprocessing

log = logging.getLogger(__name__)
Precision = Literal["auto", "fp32", "bf16", "fp16"]


def to_layout(output: torch.Tensor) -> torch.Tensor:
    """``(N, C, 1, 1)`` -> ``(N, C)``; ``(N, C, H, W)`` -> ``(N, H*W, C)`` region-major; else as is."""
    if output.dim() == 4:
        n, c, h, w = output.shape
        if h == 1 and w == 1:
            return output.reshape(n, c)
        return output.permute(0, 2, 3, 1).reshape(n, h * w, c)
    return output


def class_probabilities(logits: torch.Tensor, columns: Sequence[int] | None = None) -> torch.Tensor:
    """Softmax over the last axis in float32 (autocast off: bf16 rounding would move small
    probabilities), then the kept ``columns`` (not renormalised)."""
    with torch.autocast(logits.device.type, enabled=False):
        probabilities = torch.softmax(logits.float(), dim=-1)
    if columns is not None:
        probabilities = probabilities[..., torch.as_tensor(columns, device=logits.device)]
    return probabilities


class TapModule(nn.Module):
    """``uint8 (N, 3, H, W)`` images -> ``{layer name: (N, *layer shape)}``, in one forward pass."""

    def __init__(self, backbone: Backbone, model: nn.Module, layers: dict[str, Layer],
                 preprocessing: Preprocessing) -> None:
        super().__init__()
        if not layers:
            raise ValueError(f"no layer requested from backbone '{backbone.name}'")
        create, _ = backbone.graph_tools()
        nodes: dict[str, str] = {}
        self.outputs: dict[str, str] = {}
        self.softmax = {name: layer.columns for name, layer in layers.items() if layer.softmax}
        for name, layer in layers.items():
            key = nodes.setdefault(layer.node, f"tap{len(nodes)}")
            self.outputs[name] = key
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.graph = create(model.eval(), return_nodes=nodes)
        self.graph.eval()
        mean = torch.tensor(preprocessing.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(preprocessing.std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8`` images -> the network's float input ``(x/255 - mean) / std``."""
        return (images.float() - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        raw = self.graph(self.normalise(images))
        return {name: class_probabilities(raw[key], self.softmax[name]) if name in self.softmax
                else to_layout(raw[key]) for name, key in self.outputs.items()}


def resolve_device(gpu: int) -> torch.device:
    """``gpu=-1`` -> CPU; ``gpu>=0`` -> that CUDA device when CUDA is usable, else the CPU (logged)."""
    if gpu < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        log.warning("gpu: %d requested but CUDA is not available; extracting on the CPU", gpu)
        return torch.device("cpu")
    if gpu >= torch.cuda.device_count():
        raise ValueError(f"gpu: {gpu} but this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s); use 0..{torch.cuda.device_count() - 1} or -1 for the CPU")
    return torch.device("cuda", gpu)


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32). CPU stays fp32 on auto."""
    if precision == "fp32":
        return None
    if device.type != "cuda":
        if precision == "auto":
            return None
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def autocast_context(device: torch.device, dtype: torch.dtype | None
                     ) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``, or nothing when ``dtype`` is None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


class TorchExtractor:
    """Runs a module returning ``{layer: tensor}`` (a :class:`TapModule`) for inference on a device.

    Returns float32 NumPy arrays; the module is moved to the device once, here.
    """

    def __init__(self, taps: nn.Module, device: torch.device, precision: Precision = "auto",
                 channels_last: bool | None = None) -> None:
        self.device = device
        self.amp = autocast_dtype(precision, device)
        # Channels-last on every device: on CUDA for tensor cores; on this project's 2-core CPU it also
        # ran batched convolutions 1.4-1.5x faster (ResNet50 / EfficientNet-Lite0 at batch 32).
        self.channels_last = True if channels_last is None else channels_last
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.taps = taps.to(device, memory_format=memory_format).eval()

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> dict[str, np.ndarray]:
        """``uint8 (N, 3, H, W)`` -> ``{layer: float32 (N, *shape)}``."""
        x = images.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(self.device, self.amp):
            outputs = self.taps(x)
        return {name: value.float().cpu().numpy() for name, value in outputs.items()}

    def describe(self) -> dict[str, str]:
        return {"device": str(self.device), "autocast": str(self.amp).replace("torch.", ""),
                "channels_last": str(self.channels_last)}


def build_taps(backbone: Backbone, model: nn.Module, layer_names: Sequence[str],
               preprocessing: Preprocessing, weights: str | None = "pretrained",
               classes: Sequence[str] | None = None) -> tuple[TapModule, dict[str, Layer]]:
    """Resolve ``layer_names`` (aliases or FX node names) and build the one-pass tap module;
    ``probabilities`` is named by ``weights``' class names and cut to ``classes`` when given."""
    layers = {name: backbone.probabilities(weights, classes) if name.lower() == PROBABILITIES
              else backbone.layer(name, model) for name in dict.fromkeys(layer_names)}
    return TapModule(backbone, model, layers, preprocessing), layers
