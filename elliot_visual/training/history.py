"""The per-epoch training history as a TSV file beside a trial's weights (``history.tsv``).

One row per epoch: ``epoch``, the summed batch ``loss``, the wall-clock ``seconds`` of the epoch's
gradient steps and validation, then one column per validation metric the loop watched
(``nDCG@10``; empty on epochs without validation), and ``best`` (1 on the epoch whose weights were
kept). The run report draws its training curves from these files; they are rewritten after every
epoch, atomically, so a running or crashed trial leaves a readable history of what it did.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from elliot_visual.storage import write_text

HISTORY_FILE = "history.tsv"


@dataclass
class EpochRecord:
    """One epoch of a training run: a row of the history."""

    epoch: int
    loss: float
    validation: float | None = None
    monitored: float | None = None
    stage: str = ""  # the model's training stage (``Recommender.training_stages``), "" when it has none
    seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)  # every validation value of this epoch


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value))


def history_table(records: Sequence[EpochRecord], best_epoch: int | None = None) -> str:
    """The TSV text of ``records`` (metric columns in first-seen order)."""
    metrics: list[str] = []
    for record in records:
        metrics += [name for name in record.metrics if name not in metrics]
    lines = ["\t".join(["epoch", "loss", "seconds", *metrics, "best"])]
    for record in records:
        cells = [str(record.epoch), _number(record.loss), _number(record.seconds),
                 *(_number(record.metrics.get(name)) for name in metrics),
                 "1" if best_epoch is not None and record.epoch == best_epoch else "0"]
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def write_history(path: Path, records: Sequence[EpochRecord], best_epoch: int | None = None) -> Path:
    """Atomically (re)write the history TSV at ``path``."""
    return write_text(path, history_table(records, best_epoch))
