"""P@k, R@k and F1@k against k, one curve per method: the layout of Figures 3-5 of the aggregation paper.

Drawing only: the values come from the multi-label task's results (cutoff -> metric -> value);
``write_reports`` calls :func:`write_label_curves` with the run's outcomes.
Three panels side by side (Precision, Recall, F1), k on the x axis, one line and marker per method.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from elliot_visual.reports.figures import PANEL_SIZE, save_png

if TYPE_CHECKING:
    from elliot_visual.tuning.tune import ModelOutcome

PANELS = ("Precision", "Recall", "F1")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

Curves = Mapping[str, Mapping[int, Mapping[str, float]]]   # method -> cutoff -> metric -> value


def draw_label_curves(axes: Sequence[Axes], curves: Curves, metrics: Sequence[str] = PANELS) -> None:
    """One panel per metric on ``axes``; methods in the given order, cutoffs ascending."""
    if not curves:
        raise ValueError("no method to draw")
    for ax, metric in zip(axes, metrics):
        for index, (method, table) in enumerate(curves.items()):
            cutoffs = sorted(k for k in table if metric in table[k])
            if not cutoffs:
                raise ValueError(f"method {method} has no {metric} value to draw")
            ax.plot(cutoffs, [table[k][metric] for k in cutoffs], marker=MARKERS[index % len(MARKERS)],
                    markersize=4, linewidth=1.5, label=method)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("k")
        ax.set_ylabel(f"{metric}@k")
        ax.set_title(f"{metric}@k")
        ax.set_ylim(0.0, 1.0)
        ax.grid(alpha=0.3)


def label_curves_figure(curves: Curves, path: str | Path, title: str | None = None,
                        metrics: Sequence[str] = PANELS) -> Path:
    """Write the three-panel figure of ``curves`` as a PNG at ``path``."""
    figure = Figure(figsize=(PANEL_SIZE[0] * len(metrics), PANEL_SIZE[1]), layout="constrained")
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    draw_label_curves(axes, curves, metrics)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize=9)
    if title:
        figure.suptitle(title, fontsize=13)
    return save_png(figure, path)


def curve_label(family: str, searched: Sequence[str], params: object, loader: str | None = None) -> str:
    """A legend entry: the family and the values of the searched hyperparameters (``NeuralAggregation
    blocks=2 context_gating=True``), the loader when the entry compares several."""
    parts = [family, *(f"{name}={getattr(params, name)}" for name in searched)]
    return " ".join(parts + ([f"[{loader}]"] if loader else []))


def label_curves_of(outcomes: Sequence["ModelOutcome"]) -> dict[str, Mapping[int, Mapping[str, float]]]:
    """legend entry -> test values (cutoff -> metric -> value) of every configuration the run evaluated in
    the multilabel task: each trial of a searched entry, the selected one of a fixed entry."""
    curves: dict[str, Mapping[int, Mapping[str, float]]] = {}
    several_loaders = len({o.loader for o in outcomes if o.table == "multilabel" and o.loader}) > 1
    for outcome in outcomes:
        if outcome.table != "multilabel":
            continue
        for trial in (outcome.trials if outcome.spec.is_tuned else [outcome.best]):
            label = curve_label(outcome.family, list(outcome.spec.search), trial.params,
                                outcome.loader if several_loaders else None)
            curves[label] = trial.test.values
    return curves


def write_label_curves(outcomes: Sequence["ModelOutcome"], folder: Path, stamp: str) -> list[Path]:
    """``multilabel_curves_<stamp>.png`` of :func:`label_curves_of` (a grid over ``blocks`` and
    ``context_gating`` draws the paper's poolings side by side); nothing when no entry is multilabel."""
    curves = label_curves_of(outcomes)
    present = [m for m in PANELS if curves and all(m in row for table in curves.values() for row in table.values())]
    if not present:
        return []
    return [label_curves_figure(curves, Path(folder) / f"multilabel_curves_{stamp}.png", metrics=present)]
