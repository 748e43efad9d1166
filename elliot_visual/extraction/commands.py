"""``elliot-visual extract`` and ``elliot-visual finetune``: the command-line faces of this package.

``cli.py`` dispatches to :func:`main_extract` / :func:`main_finetune` with the remaining argv.
A run is described either by a YAML file (``--config``) or by flags::

    elliot-visual extract --config config_files/baby.yml     # the experiment's extraction: blocks
    elliot-visual extract --images data/baby/images --backbone resnet50 \\
        --layers avgpool conv5_block3_out --output data/baby/features --pca 128
    elliot-visual finetune --images data/baby/images --metadata data/baby/items.tsv \\
        --backbone efficientnet_lite0 --mode shallow --output data/baby/features

``--config`` names an Elliot experiment (``experiment: {dataset, gpu, extraction: [...]}``), read
and validated by ``elliot_visual.config`` like ``elliot-visual run`` reads it; ``extract`` runs all
its blocks (fine-tuning ones included), ``finetune`` those with a ``metadata`` key. Flags given
beside ``--config`` override every block's keys.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from elliot_visual.config.extraction import ExtractionConfigError


def _experiment_blocks(config: str, section: str) -> tuple[list[dict[str, Any]], str, int, Path, Any]:
    """The ``extraction:`` blocks of an Elliot experiment config, read by ``config/`` (paths
    anchored, ``{0}`` filled) and its ``ray`` block; for ``finetune`` only the blocks with ``metadata``."""
    from elliot_visual.config import load_experiment, resolve_config_path

    experiment = load_experiment(resolve_config_path(config))
    blocks = [b.model_dump() for b in experiment.extraction]
    if section == "finetune":
        blocks = [b for b in blocks if "metadata" in b]
    if not blocks:
        kind = "fine-tuning block (with 'metadata')" if section == "finetune" else "block"
        raise ExtractionConfigError(f"{experiment.config_path} has no extraction {kind} under "
                                    f"'experiment: extraction:'")
    return blocks, experiment.dataset, experiment.gpu, Path(experiment.config_path).parent, experiment.ray


def _common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="an experiment YAML (or a name under config_files/) whose "
                                          "'extraction:' blocks to run")
    parser.add_argument("--images", help="folder of <item_id>.<ext> images, or TSV item_id<TAB>path")
    parser.add_argument("--backbone", help="a registered backbone name (e.g. resnet50)")
    parser.add_argument("--backend", choices=["torch", "tensorflow"])
    parser.add_argument("--layers", nargs="+", help="layer aliases or FX node names")
    parser.add_argument("--weights", help="pretrained | random | a weights tag | a file path")
    parser.add_argument("--output", help="features root: <output>/<backbone>/<layer>/")
    parser.add_argument("--name", help="folder name for the network (default: the backbone)")
    parser.add_argument("--dataset", help="dataset name, substituted for {0} in paths")
    parser.add_argument("--format", choices=["matrix", "per_item"])
    parser.add_argument("--dtype", choices=["float32", "float16"])
    parser.add_argument("--pca", type=int, help="also write a PCA copy with this many components")
    parser.add_argument("--batch-size", dest="batch_size", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--gpu", type=int, help="-1 for the CPU, else the CUDA device index")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--shard-size", dest="shard_size", type=int)
    parser.add_argument("--overwrite", action="store_true", default=None)
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None)


def _overrides(args: argparse.Namespace, keys: Sequence[str]) -> dict[str, Any]:
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


EXTRACT_KEYS = ("images", "backbone", "backend", "layers", "weights", "output", "name", "dataset",
                "format", "dtype", "pca", "batch_size", "workers", "gpu", "precision",
                "shard_size", "overwrite", "progress")
FINETUNE_KEYS = EXTRACT_KEYS + ("probabilities", "metadata", "item_column", "tasks", "mode", "deep_blocks",
                                "shared_dim", "lr", "backbone_lr", "epochs", "patience",
                                "validation_ratio", "train_batch_size", "seed", "unfreeze_epochs",
                                "unfreeze_lr")


def _run(argv: Sequence[str] | None, section: str, parser: argparse.ArgumentParser,
         keys: Sequence[str]) -> int:
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from elliot_visual.extraction.blocks import run_extraction

    flags = _overrides(args, keys)
    try:
        if args.config is not None:
            blocks, dataset, gpu, base_dir, ray = _experiment_blocks(args.config, section)
        else:
            blocks, dataset, gpu, base_dir, ray = [{}], None, None, Path.cwd(), None
        for position, block in enumerate(blocks):
            merged = {**block, **flags}
            if section == "finetune" and "metadata" not in merged:
                raise ExtractionConfigError("finetune needs 'metadata' (--metadata ITEMS.tsv)")
            try:
                folders = run_extraction(merged, base_dir, dataset, gpu, ray)
            except ExtractionConfigError as error:
                raise ExtractionConfigError(f"{section}[{position}]: {error}") from None
            for folder in folders:
                print(folder)
    except (ValueError, FileNotFoundError, KeyError) as error:  # ConfigError is a ValueError
        print(f"elliot-visual {section}: error: {error}", file=sys.stderr)
        return 2
    return 0


def main_extract(argv: Sequence[str] | None = None) -> int:
    """``elliot-visual extract``: run extraction blocks (or one run described by flags)."""
    parser = argparse.ArgumentParser(prog="elliot-visual extract",
                                     description="Extract CNN features of item images.")
    _common_flags(parser)
    parser.add_argument("--classes", nargs="+", help="keep these classes of the 'probabilities' "
                                                     "layer, by name (not renormalised)")
    return _run(argv, "extraction", parser, EXTRACT_KEYS + ("classes",))


def main_finetune(argv: Sequence[str] | None = None) -> int:
    """``elliot-visual finetune``: fine-tune a backbone on item metadata, then extract."""
    parser = argparse.ArgumentParser(prog="elliot-visual finetune",
                                     description="Fine-tune a backbone on item metadata (shallow "
                                                 "or deep), then extract its shared layer.")
    _common_flags(parser)
    parser.add_argument("--metadata", help="TSV with a header: item id column + task columns")
    parser.add_argument("--item-column", dest="item_column")
    parser.add_argument("--tasks", nargs="+", help="metadata columns to predict (default: all)")
    parser.add_argument("--mode", choices=["shallow", "deep"])
    parser.add_argument("--deep-blocks", dest="deep_blocks", type=int)
    parser.add_argument("--shared-dim", dest="shared_dim", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--backbone-lr", dest="backbone_lr", type=float)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--patience", type=int)
    parser.add_argument("--validation-ratio", dest="validation_ratio", type=float)
    parser.add_argument("--train-batch-size", dest="train_batch_size", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--probabilities", action="store_true", default=None,
                        help="also write each categorical head's named class probabilities")
    parser.add_argument("--unfreeze-epochs", dest="unfreeze_epochs", type=int,
                        help="then train every layer this many epochs at --unfreeze-lr")
    parser.add_argument("--unfreeze-lr", dest="unfreeze_lr", type=float)
    return _run(argv, "finetune", parser, FINETUNE_KEYS)
