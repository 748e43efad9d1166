"""The study's Table-1 layout: rows model x backbone, columns metrics, as TSV and Markdown.

The backbone of a row is the feature source its model read (its ``loader`` hyperparameter, which
names a ``side_information`` entry such as ``resnet50``); models without visual input show ``-``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from elliot_visual.reports.numbers import format_number, format_threshold
from elliot_visual.storage import ResultPaths, write_text


@dataclass(frozen=True)
class SummaryRow:
    model: str
    backbone: str
    values: dict[str, float]


def summary_tsv(rows: Sequence[SummaryRow], columns: Sequence[str]) -> str:
    """Tab-separated table with header ``model  backbone  <metrics>``; raw float values."""
    lines = ["\t".join(["model", "backbone", *columns])]
    lines += ["\t".join([r.model, r.backbone, *(format_number(r.values.get(c)) for c in columns)]) for r in rows]
    return "\n".join(lines) + "\n"


def higher_is_better(column: str) -> bool:
    """The direction of a metric column, from the metric's declaration (lower for ARP); unknown: higher."""
    import elliot_visual.evaluation.metrics  # noqa: F401  registers every metric
    from elliot_visual.registry import METRICS

    name = column.split("@")[0]
    return bool(getattr(METRICS.get(name), "higher_is_better", True)) if name in METRICS else True


def summary_markdown(rows: Sequence[SummaryRow], columns: Sequence[str], digits: int = 4) -> str:
    """GitHub Markdown table; the best value of each column in bold, by the metric's direction
    (highest Recall, AUC, coverage, EFD; lowest ARP); VisDiv columns are not bolded (a distance
    whose better direction depends on the question asked)."""
    best = {}
    for column in columns:
        values = [r.values.get(column) for r in rows if r.values.get(column) is not None
                  and r.values.get(column) == r.values.get(column)]
        if values and not column.startswith("VisDiv"):
            best[column] = max(values) if higher_is_better(column) else min(values)

    def cell(row: SummaryRow, column: str) -> str:
        value = row.values.get(column)
        if value is None or value != value:
            return ""
        text = f"{value:.{digits}f}" if isinstance(value, float) and not float(value).is_integer() else f"{value:g}"
        return f"**{text}**" if best.get(column) == value else text

    lines = ["| model | backbone | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    lines += ["| " + " | ".join([r.model, r.backbone, *(cell(r, c) for c in columns)]) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_summary(paths: ResultPaths, cutoff: int, threshold: float | int, stamp: str,
                  rows: Sequence[SummaryRow], columns: Sequence[str]) -> list[Path]:
    """``performance/summary_cutoff_<k>_relthreshold_<t>_<ts>.{tsv,md}``."""
    base = f"summary_cutoff_{cutoff}_relthreshold_{format_threshold(threshold)}_{stamp}"
    return [write_text(paths.performance / f"{base}.tsv", summary_tsv(rows, columns)),
            write_text(paths.performance / f"{base}.md", summary_markdown(rows, columns))]
