"""A tiny CNN backbone for tests of models that read pixels (ImgRec-EtE), registered on request.

ResNet50 is ~100x too slow to fine-tune inside a unit test on a CPU, and its pretrained weights
may not be on the machine; this two-block network (conv-BN-ReLU twice, global average pool) has
the same interface (a :class:`~elliot_visual.extraction.backbones.Backbone` with a ``pooled``
layer, FX-traceable, batch-norm layers to freeze) and builds in milliseconds. Its "random" weights
are drawn from a fixed seed, so two builds are identical. It has no pretrained weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from elliot_visual.config.weights import weights_choice
from elliot_visual.extraction.backbones import (Backbone, Preprocessing, WeightsInfo, WeightsNotFoundError,
                                                file_sha256, vector)
from elliot_visual.registry import BACKBONES

TINY_WIDTH = 8


class TinyCNN(nn.Module):
    """(N, 3, H, W) -> (N, 2 * width): conv1 (stride 2) - bn1 - relu, conv2 (stride 2) - bn2 - relu, pool."""

    def __init__(self, width: int = TINY_WIDTH) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.flatten(self.pool(x))


@dataclass(frozen=True)
class TinyBackbone(Backbone):
    library: str = field(default="torch", init=False)

    def preprocessing(self) -> Preprocessing:
        return Preprocessing(32, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), source="tiny test backbone")

    def build(self, weights: str | Path | None = "pretrained") -> tuple[nn.Module, WeightsInfo]:
        kind, value = weights_choice(weights)
        if kind == "pretrained":
            raise WeightsNotFoundError(f"backbone '{self.name}' has no pretrained weights; use weights: random")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = TinyCNN()
        if kind == "file":
            model.load_state_dict(torch.load(Path(value), map_location="cpu", weights_only=True))
            return model.eval(), WeightsInfo("file", None, str(value), file_sha256(Path(value)))
        return model.eval(), replace(WeightsInfo("random"))


TINY = TinyBackbone("tiny_cnn", "tiny_cnn", default_layer="pooled",
                    layers={"pooled": vector("flatten", 2 * TINY_WIDTH, "global average pool of block 2")})


def register_tiny_backbone() -> str:
    """Register the tiny backbone (idempotent) and return its name, ``tiny_cnn``."""
    BACKBONES.register(TINY.name, TINY)
    return TINY.name
