"""What a ``weights:`` value means (extraction blocks, backbones): random, pretrained (a tag) or a file."""
from __future__ import annotations

from pathlib import Path

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".h5", ".keras", ".ckpt")


def weights_choice(weights: str | Path | None) -> tuple[str, str | Path | None]:
    """Classify a ``weights`` value: ``('random', None)``, ``('pretrained', tag|None)``, ``('file', path)``."""
    if weights is None:
        return "random", None
    if isinstance(weights, Path):
        return "file", weights
    text = str(weights).strip()
    if text.lower() in {"random", "none", "scratch"}:
        return "random", None
    if text.lower() in {"pretrained", "default", "imagenet"}:
        return "pretrained", None
    if "/" in text or "\\" in text or text.lower().endswith(WEIGHT_SUFFIXES):
        return "file", Path(text)
    return "pretrained", text
