"""An experiment's ``extraction:`` blocks, run in order: plain extraction, or fine-tuning then extraction.

The dispatcher sits above both :mod:`.extract` and :mod:`.finetune` (fine-tuning reuses the
extraction job to write its shared layer), so neither imports the other's caller.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from elliot_visual.config.extraction import ExtractionConfigError, FinetuneConfig, parse_block
from elliot_visual.config.schema import RayConfig
from elliot_visual.extraction.backbones import WeightsNotFoundError
from elliot_visual.extraction.catalogue import get_backbone
from elliot_visual.extraction.extract import already_extracted, expected_folders, extract
from elliot_visual.storage import is_complete_feature_folder
from elliot_visual.extraction.finetune import finetune


def is_finetune_block(block: Any) -> bool:
    """A block with a ``metadata`` key (item metadata for the heads) is a fine-tuning block."""
    raw = block.model_dump() if hasattr(block, "model_dump") else dict(block)
    return "metadata" in raw


def run_extraction(block: Any, base_dir: str | Path = ".", dataset: str | None = None,
                   gpu: int | None = None, ray: RayConfig | None = None) -> list[Path]:
    """Validate and run one ``extraction:`` block (dict or ``schema.Extraction``); its folders.

    Relative paths are anchored at ``base_dir`` (the config file's folder); ``{0}`` is
    ``dataset``. A block with a ``metadata`` key fine-tunes first (:mod:`.finetune`, always
    here). With ``ray.extraction`` set a plain block runs as a Ray Data pipeline (:mod:`.ray_extract`).
    """
    if is_finetune_block(block):
        config = parse_block(block, base_dir, dataset, gpu, kind=FinetuneConfig, where="finetune")
        return list(finetune(config).folders.values())
    config = parse_block(block, base_dir, dataset, gpu)
    if ray is not None and ray.extraction is not None and already_extracted(config) is None:
        from elliot_visual.cluster import connect_ray
        from elliot_visual.extraction.ray_extract import extract_on_ray

        connect_ray(ray)
        return list(extract_on_ray(config, ray.extraction).folders.values())
    return list(extract(config).folders.values())


def ensure_features(blocks: Sequence[Any], base_dir: str | Path, dataset: str | None = None,
                    gpu: int | None = None, ray: RayConfig | None = None) -> list[Path]:
    """Run every block (an experiment's ``extraction:`` section) whose features are missing; all folders.

    Called by the experiment runner before loading side information: complete folders are
    left alone, so this is cheap on every run after the first. ``base_dir`` anchors relative
    paths (the config file's folder), ``dataset`` fills ``{0}``, ``gpu`` is the default device,
    ``ray`` the experiment's ``ray`` block (its ``extraction`` part runs blocks on Ray Data).
    """
    check_weights_present(blocks, base_dir, dataset, gpu)
    folders: list[Path] = []
    for position, block in enumerate(blocks):
        try:
            folders.extend(run_extraction(block, base_dir, dataset, gpu, ray))
        except ExtractionConfigError as error:
            raise ExtractionConfigError(f"extraction[{position}]: {error}") from None
    return folders


def check_weights_present(blocks: Sequence[Any], base_dir: str | Path, dataset: str | None = None,
                          gpu: int | None = None) -> None:
    """Stop before any extraction when a block still to run lacks its weights, naming every missing
    file and where to put it (one error for all blocks, not one per run after hours of work)."""
    problems: list[str] = []
    for position, block in enumerate(blocks):
        if is_finetune_block(block):
            continue  # fine-tuning checks its backbone itself
        try:
            config = parse_block(block, base_dir, dataset, gpu)
        except ExtractionConfigError as error:
            raise ExtractionConfigError(f"extraction[{position}]: {error}") from None
        if not config.overwrite and all(is_complete_feature_folder(f) for f in expected_folders(config).values()):
            continue
        missing = get_backbone(config.backbone, config.backend).missing_weights(config.weights)
        if missing:
            problems.append(f"extraction[{position}] ({config.backbone}): {missing}")
    if problems:
        raise WeightsNotFoundError("\n".join(problems))
