"""The two tables of the ImageNet-transfer study (del Rio et al. 2018), as TSV and Markdown.

Table 1 (backbones): one row per model x frozen backbone, the backbone's ImageNet top-1 / top-5
beside the recommendation metrics, where each accuracy figure comes from, and the rank
correlations between accuracy and each metric under the table. Table 2 (fine-tuning): per
backbone its frozen row, then one row per fine-tuned extractor (mode, tasks with their loss and
weight). The figures are computed elsewhere (``transfer_study.py``); this module only lays them out.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from elliot_visual.reports.elliot_format import format_number
from elliot_visual.storage import ResultPaths, write_text


@dataclass(frozen=True)
class BackboneRow:
    """A Table-1 row: ``backbone`` ``-`` for models without visual input; accuracies in percent."""

    model: str
    backbone: str
    top1: float | None
    top5: float | None
    accuracy_source: str
    values: dict[str, float]


@dataclass(frozen=True)
class FinetuneRow:
    """A Table-2 row: ``variant`` is ``frozen``, ``shallow`` or ``deep``; ``tasks`` describes the heads."""

    model: str
    backbone: str
    variant: str
    tasks: str
    values: dict[str, float]


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman's rho between an ImageNet accuracy column and a metric column over ``n`` backbones."""

    accuracy: str
    metric: str
    rho: float
    p_value: float
    n: int


def _cell(value: float | None, digits: int) -> str:
    if value is None or value != value:
        return ""
    return f"{value:.{digits}f}"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def backbone_tsv(rows: Sequence[BackboneRow], columns: Sequence[str]) -> str:
    """Header ``model backbone imagenet_top1 imagenet_top5 accuracy_source <metrics>``; raw floats."""
    lines = ["\t".join(["model", "backbone", "imagenet_top1", "imagenet_top5", "accuracy_source", *columns])]
    lines += ["\t".join([r.model, r.backbone, format_number(r.top1), format_number(r.top5), r.accuracy_source,
                         *(format_number(r.values.get(c)) for c in columns)]) for r in rows]
    return "\n".join(lines) + "\n"


def backbone_markdown(rows: Sequence[BackboneRow], columns: Sequence[str], cutoff: int,
                      correlations: Sequence[RankCorrelation], digits: int = 4) -> str:
    """Table 1 in Markdown, the correlations under it (one line per accuracy column)."""
    header = ["model", "backbone", "ImageNet top-1", "ImageNet top-5", *(f"{c}@{cutoff}" for c in columns),
              "accuracy from"]
    body = [[r.model, r.backbone, _cell(r.top1, 2), _cell(r.top5, 2),
             *(_cell(r.values.get(c), digits) for c in columns), r.accuracy_source or "-"] for r in rows]
    lines = _markdown(header, body)
    for accuracy in dict.fromkeys(c.accuracy for c in correlations):
        chosen = [c for c in correlations if c.accuracy == accuracy]
        parts = ", ".join(f"{c.metric}@{cutoff} {c.rho:.3f} (p = {c.p_value:.3g})" for c in chosen)
        lines += ["", f"Spearman rank correlation of ImageNet {accuracy} with the metrics over "
                      f"{chosen[0].n} backbones: {parts}"]
    if not correlations:
        lines += ["", "Spearman rank correlation: fewer than 3 backbones with a known ImageNet accuracy"]
    return "\n".join(lines) + "\n"


def finetune_tsv(rows: Sequence[FinetuneRow], columns: Sequence[str]) -> str:
    """Header ``model backbone variant tasks <metrics>``; raw floats."""
    lines = ["\t".join(["model", "backbone", "variant", "tasks", *columns])]
    lines += ["\t".join([r.model, r.backbone, r.variant, r.tasks, *(format_number(r.values.get(c)) for c in columns)])
              for r in rows]
    return "\n".join(lines) + "\n"


def finetune_markdown(rows: Sequence[FinetuneRow], columns: Sequence[str], cutoff: int, digits: int = 4) -> str:
    """Table 2 in Markdown."""
    header = ["model", "backbone", "fine-tuning", "tasks (loss, weight)", *(f"{c}@{cutoff}" for c in columns)]
    body = [[r.model, r.backbone, r.variant, r.tasks, *(_cell(r.values.get(c), digits) for c in columns)]
            for r in rows]
    return "\n".join(_markdown(header, body)) + "\n"


def write_transfer_tables(paths: ResultPaths, cutoff: int, stamp: str, columns: Sequence[str],
                          backbones: Sequence[BackboneRow], correlations: Sequence[RankCorrelation],
                          finetuned: Sequence[FinetuneRow]) -> list[Path]:
    """``performance/transfer_backbones_cutoff_<k>_<ts>.{tsv,md}`` and, when there are fine-tuned
    rows, ``transfer_finetuning_cutoff_<k>_<ts>.{tsv,md}``."""
    base = paths.performance
    written = [write_text(base / f"transfer_backbones_cutoff_{cutoff}_{stamp}.tsv", backbone_tsv(backbones, columns)),
               write_text(base / f"transfer_backbones_cutoff_{cutoff}_{stamp}.md",
                          backbone_markdown(backbones, columns, cutoff, correlations))]
    if finetuned:
        written += [write_text(base / f"transfer_finetuning_cutoff_{cutoff}_{stamp}.tsv",
                               finetune_tsv(finetuned, columns)),
                    write_text(base / f"transfer_finetuning_cutoff_{cutoff}_{stamp}.md",
                               finetune_markdown(finetuned, columns, cutoff))]
    return written
