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


def column_direction(column: str) -> bool | None:
    """Which way a metric column is better: True higher, False lower (ARP and the other popularity-bias
    metrics, from the metric's own declaration), None no direction (VisDiv: a distance from the user's
    own taste, whose better direction depends on the question asked). Unknown columns: higher."""
    import elliot_visual.evaluation.metrics  # noqa: F401  registers every metric
    from elliot_visual.registry import METRICS

    if column.startswith("VisDiv"):
        return None
    name = column.split("@")[0].split("[")[0]
    return bool(getattr(METRICS.get(name), "higher_is_better", True)) if name in METRICS else True


def ranked_columns(values: Sequence[float | None], higher_is_better: bool | None = True) -> list[str]:
    """Per value, ``"best"`` (equal to the column's best), ``"second"`` (equal to the best value
    after it) or ``""``; None and NaN rank nowhere, nor does a column without a direction (None).

    ``higher_is_better`` is :func:`column_direction`'s answer for the column.
    """
    present = sorted({v for v in values if v is not None and v == v}, reverse=bool(higher_is_better))
    if higher_is_better is None or not present:
        return ["" for _ in values]
    second = present[1] if len(present) > 1 else None
    return ["best" if v == present[0] else "second" if second is not None and v == second else ""
            for v in values]


def summary_markdown(rows: Sequence[SummaryRow], columns: Sequence[str], digits: int = 4) -> str:
    """GitHub Markdown table; the best value of each column in bold, by the metric's direction
    (highest Recall, AUC, coverage, EFD; lowest ARP; none for VisDiv)."""
    ranks = {c: ranked_columns([r.values.get(c) for r in rows], column_direction(c)) for c in columns}

    def cell(index: int, row: SummaryRow, column: str) -> str:
        value = row.values.get(column)
        if value is None or value != value:
            return ""
        text = f"{value:.{digits}f}" if isinstance(value, float) and not float(value).is_integer() else f"{value:g}"
        return f"**{text}**" if ranks[column][index] == "best" else text

    lines = ["| model | backbone | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    lines += ["| " + " | ".join([r.model, r.backbone, *(cell(n, r, c) for c in columns)]) + " |"
              for n, r in enumerate(rows)]
    return "\n".join(lines) + "\n"


def write_summary(paths: ResultPaths, cutoff: int, threshold: float | int, stamp: str,
                  rows: Sequence[SummaryRow], columns: Sequence[str]) -> list[Path]:
    """``performance/summary_cutoff_<k>_relthreshold_<t>_<ts>.{tsv,md}``."""
    base = f"summary_cutoff_{cutoff}_relthreshold_{format_threshold(threshold)}_{stamp}"
    return [write_text(paths.performance / f"{base}.tsv", summary_tsv(rows, columns)),
            write_text(paths.performance / f"{base}.md", summary_markdown(rows, columns))]
