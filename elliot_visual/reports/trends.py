"""Fashion trends of a temporal model (Packer, McAuley & Ramisa 2018, eq. 8 and Figure 4): each named
feature's influence per learned time epoch, and the heatmap of the epoch weights w(t).

Drawing and writing only: the values come from the model's ``describe()`` (TVBPR / ITVBPR), carried
by the tuner in the selected trial's ``artifacts``. The features drawn are the configured ones
(``meta.trend_features``) or the largest movers (largest range across epochs); the x axis is the
learned time epochs labelled with their date ranges. A TSV beside each figure holds the data.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from elliot_visual.data.time import TimeBins
from elliot_visual.reports.figures import save_png
from elliot_visual.storage import safe_file_name, write_text

TOP_MOVERS = 5


def chosen_features(names: Sequence[str], values: np.ndarray, wanted: Sequence[str] | None = None,
                    top: int = TOP_MOVERS) -> list[int]:
    """Rows to draw: ``wanted`` by name (an unknown name is an error naming the known ones), else the
    ``top`` rows with the largest range across epochs."""
    if wanted:
        index = {name: i for i, name in enumerate(names)}
        unknown = [w for w in wanted if w not in index]
        if unknown:
            raise ValueError(f"meta.trend_features: unknown feature(s) {', '.join(unknown)}; the model's features "
                             f"are: {', '.join(names[:30])}{' ...' if len(names) > 30 else ''}")
        return [index[w] for w in wanted]
    spread = values.max(axis=1) - values.min(axis=1)
    return [int(i) for i in np.argsort(-spread, kind="stable")[:top]]


def epoch_labels(artifacts: Mapping[str, Any]) -> list[str]:
    """Date range of each learned time epoch."""
    return TimeBins(np.asarray(artifacts["edges"])).labels(np.asarray(artifacts["bin_epoch"]))


def trend_table(names: Sequence[str], artifacts: Mapping[str, Any]) -> str:
    """TSV ``feature, epoch, dates, influence, preference`` (eq. 8 as written, and the sign-aware
    influence on the average user's score)."""
    labels = epoch_labels(artifacts)
    lines = ["feature\tepoch\tdates\tinfluence\tpreference"]
    for k, name in enumerate(names):
        for e, label in enumerate(labels):
            lines.append(f"{name}\t{e}\t{label}\t{float(artifacts['influence'][k, e])!r}\t"
                         f"{float(artifacts['preference'][k, e])!r}")
    return "\n".join(lines) + "\n"


def write_trend_figures(model_name: str, artifacts: Mapping[str, Any], folder: str | Path,
                        names: Sequence[str] | None = None, wanted: Sequence[str] | None = None) -> list[Path]:
    """``trends_<model>.png`` (+ ``.tsv``) and ``trend_weights_<model>.png`` under ``folder``."""
    folder = Path(folder)
    preference = np.asarray(artifacts["preference"])
    names = list(names) if names is not None else [f"f{k}" for k in range(preference.shape[0])]
    labels = epoch_labels(artifacts)
    stem = safe_file_name(model_name)
    written = [write_text(folder / f"trends_{stem}.tsv", trend_table(names, artifacts))]
    rows = chosen_features(names, preference, wanted)
    figure = Figure(figsize=(max(6.0, 1.1 * len(labels)), 4.2))
    ax = figure.add_subplot()
    for k in rows:
        ax.plot(range(len(labels)), preference[k], marker="o", label=names[k])
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("learned time epoch")
    ax.set_ylabel("influence on the average user's score")
    ax.axhline(0.0, color="#999999", linewidth=0.8)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"Feature trends — {model_name.split('_')[0]}")
    written.append(save_png(figure, folder / f"trends_{stem}.png"))
    weights = np.asarray(artifacts["w"])
    heat = Figure(figsize=(max(6.0, 1.1 * len(labels)), 0.35 * weights.shape[0] + 1.8))
    ax = heat.add_subplot()
    image = ax.imshow(weights, aspect="auto", cmap="coolwarm")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(weights.shape[0]), [f"dim {r}" for r in range(weights.shape[0])], fontsize=7)
    ax.set_title("w(t): weight of each visual dimension per time epoch")
    heat.colorbar(image, ax=ax)
    written.append(save_png(heat, folder / f"trend_weights_{stem}.png"))
    return written

