"""Figures: drawing only. Each function receives 2-D coordinates already computed and writes a PNG.

The visual-profile picture follows Figure 2 of the CNNs-in-VRSs study: for one user, her training
positives (green) and her top-k recommendations (red) in a t-SNE map of item visual features,
the centroid of each set, and the segment joining them whose length is the user's VisDiv. A grid
puts the same user side by side under several models or backbones.

matplotlib's object API is used (``Figure`` + Agg canvas, no pyplot state), so drawing works
headless and in threads; files are written atomically through storage.py.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from elliot_visual.storage import safe_file_name, write_bytes

if TYPE_CHECKING:
    from elliot_visual.evaluation.visual_profiles import ProfileMap

POSITIVE_COLOUR = "#2ca02c"
RECOMMENDED_COLOUR = "#d62728"
PANEL_SIZE = (5.2, 4.6)  # inches per panel
DPI = 120


@dataclass(frozen=True)
class ProfilePanel:
    """One user's map under one model: ``positives`` (p, 2), ``recommended`` (r, 2) coordinates,
    both centroids (2,), the distance between them (``value``), and the panel's ``title``."""

    title: str
    positives: np.ndarray
    recommended: np.ndarray
    positive_centroid: np.ndarray
    recommended_centroid: np.ndarray
    value: float
    subtitle: str = ""


def draw_profile(ax: Axes, panel: ProfilePanel, legend: bool = True) -> None:
    """Draw one panel on ``ax``: points, centroids, the joining segment and its length."""
    pos, rec = np.asarray(panel.positives), np.asarray(panel.recommended)
    pc, rc = np.asarray(panel.positive_centroid), np.asarray(panel.recommended_centroid)
    ax.scatter(rec[:, 0], rec[:, 1], s=22, c=RECOMMENDED_COLOUR, marker="^", alpha=0.75, linewidths=0,
               label=f"top-{len(rec)} recommended", zorder=2)
    ax.scatter(pos[:, 0], pos[:, 1], s=30, c=POSITIVE_COLOUR, marker="o", alpha=0.85, edgecolors="white",
               linewidths=0.5, label=f"training positives ({len(pos)})", zorder=3)
    ax.plot([pc[0], rc[0]], [pc[1], rc[1]], color="black", linewidth=1.6, zorder=4,
            label=f"centroid distance = {panel.value:.3g}")
    ax.scatter([pc[0]], [pc[1]], s=170, c=POSITIVE_COLOUR, marker="X", edgecolors="black", linewidths=1.2,
               zorder=7, label="centroid of positives")
    ax.scatter([rc[0]], [rc[1]], s=170, c=RECOMMENDED_COLOUR, marker="X", edgecolors="black", linewidths=1.2,
               zorder=7, label="centroid of top-k")
    # The value sits beside the segment's middle, pushed off it sideways so it hides neither centroid.
    middle, direction = (pc + rc) / 2, rc - pc
    norm = float(np.hypot(*direction)) or 1.0
    side = np.array([-direction[1], direction[0]]) / norm * 16
    ax.annotate(f"{panel.value:.3g}", xy=(middle[0], middle[1]), xytext=(side[0], side[1]),
                textcoords="offset points", ha="center", va="center", fontsize=11, fontweight="bold", zorder=6,
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "0.6", "alpha": 0.85})
    ax.set_title(panel.title + (f"\n{panel.subtitle}" if panel.subtitle else ""), fontsize=11)
    ax.set_xlabel("t-SNE dimension 1", fontsize=10)
    ax.set_ylabel("t-SNE dimension 2", fontsize=10)
    ax.tick_params(labelsize=8)
    ax.grid(True, linewidth=0.4, alpha=0.4)
    if legend:
        ax.legend(fontsize=8, loc="best", framealpha=0.9)


def png_bytes(figure: Figure) -> bytes:
    """``figure`` rendered with Agg as PNG bytes."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def save_png(figure: Figure, path: str | Path) -> Path:
    """Render ``figure`` with Agg and write the PNG atomically."""
    return write_bytes(path, png_bytes(figure))


def profile_figure(panel: ProfilePanel, path: str | Path, title: str | None = None) -> Path:
    """One user's visual profile (the study's Figure 2) as a PNG at ``path``."""
    figure = Figure(figsize=PANEL_SIZE, layout="constrained")
    ax = figure.subplots()
    draw_profile(ax, panel)
    if title:
        figure.suptitle(title, fontsize=12)
    return save_png(figure, path)


def profile_grid(panels: Sequence[ProfilePanel], path: str | Path, title: str | None = None,
                 columns: int | None = None, share_axes: bool = False) -> Path:
    """The same user under several models or backbones, one panel each, side by side.

    ``share_axes``: one scale for every panel (right when the coordinates come from one shared
    map, the ``global`` projection; per-user maps of different models are not comparable).
    """
    if not panels:
        raise ValueError("profile_grid needs at least one panel")
    columns = columns or min(len(panels), 4)
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, sharex=share_axes, sharey=share_axes, squeeze=False)).ravel()
    for ax, panel in zip(axes, panels):
        draw_profile(ax, panel, legend=False)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    # The distance entry differs per panel (it is annotated on each); keep the shared ones.
    shared = [(h, lab.split(" (")[0]) for h, lab in zip(handles, labels) if not lab.startswith("centroid distance")]
    figure.legend([h for h, _ in shared], [lab for _, lab in shared], loc="outside lower center",
                  ncols=len(shared), fontsize=9)
    if title:
        figure.suptitle(title, fontsize=13)
    return save_png(figure, path)


def profile_panel(profile: "ProfileMap") -> ProfilePanel:
    """The panel of one computed profile (evaluation/visual_profiles.py): its title and value line."""
    user = profile.projection
    title = profile.title if len(profile.title) <= 48 else profile.title[:45] + "..."
    subtitle = f"user {user.user_id} · {profile.entry}@{profile.k} = {user.distance:.3g}"
    return ProfilePanel(title=title, subtitle=subtitle, positives=user.positives, recommended=user.recommended,
                        positive_centroid=user.positive_centroid, recommended_centroid=user.recommended_centroid,
                        value=user.distance)


def write_profile_figures(profiles: Sequence["ProfileMap"], folder: str | Path,
                          columns: int | None = None) -> list[Path]:
    """Every profile as its own PNG, and per user one grid of all her profiles (given order).

    ``visdiv_<entry>_at<k>_user<u>_<model>.png`` and ``visdiv_user<u>_grid.png`` under ``folder``.
    ``columns`` of the grid: default the number of models when there are several VisDiv entries (one
    row each), else at most 4 (a single entry's models wrap onto further rows). Panels share
    axes only when every one comes from the same catalogue-wide map.
    """
    folder = Path(folder)
    written: list[Path] = []
    grids: dict[str, list[ProfilePanel]] = {}
    for profile in profiles:
        panel = profile_panel(profile)
        entry = safe_file_name(profile.entry).replace("[", "_").replace("]", "").replace(",", "_")
        name = (f"visdiv_{entry}_at{profile.k}_user{safe_file_name(profile.user_id)}_"
                f"{safe_file_name(profile.model)}.png")
        written.append(profile_figure(panel, folder / name))
        grids.setdefault(profile.user_id, []).append(panel)
    models = list(dict.fromkeys(p.model for p in profiles))
    entries = len({p.entry for p in profiles})
    share = all(p.shared_map for p in profiles) and entries == 1
    # One row per VisDiv entry; a single entry wraps after 4 models so the picture stays readable.
    columns = columns or (len(models) if entries > 1 else min(len(models), 4))
    for user, panels in grids.items():
        target = folder / f"visdiv_user{safe_file_name(user)}_grid.png"
        written.append(profile_grid(panels, target, title=f"Visual profile of user {user}",
                                    columns=columns, share_axes=share))
    return written


@dataclass(frozen=True)
class TrainingCurve:
    """One trial's history (read from its ``history.tsv``): per-epoch loss, and the validation metric
    on the epochs that were validated; ``best_epoch`` is the epoch whose weights were kept."""

    title: str
    epochs: np.ndarray
    loss: np.ndarray
    metric: str
    validation_epochs: np.ndarray
    validation: np.ndarray
    best_epoch: int | None = None


def training_curves_png(curve: TrainingCurve) -> bytes:
    """Loss (left) and the validation metric (right) per epoch, the kept epoch marked, as PNG bytes
    (the report inlines them; the data stay in the trial's history TSV)."""
    figure = Figure(figsize=(9.0, 3.2), layout="constrained")
    loss_ax, metric_ax = figure.subplots(1, 2)
    loss_ax.plot(curve.epochs, curve.loss, color="#1f77b4", marker="o" if len(curve.epochs) <= 30 else None,
                 markersize=3, linewidth=1.5)
    loss_ax.set_title("training loss (sum over batches)", fontsize=10)
    metric_ax.plot(curve.validation_epochs, curve.validation, color="#d62728", marker="o", markersize=4,
                   linewidth=1.5)
    metric_ax.set_title(f"validation {curve.metric}", fontsize=10)
    for ax in (loss_ax, metric_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(True, linewidth=0.4, alpha=0.4)
        if curve.best_epoch is not None:
            ax.axvline(curve.best_epoch, color="0.4", linestyle="--", linewidth=1,
                       label=f"kept: epoch {curve.best_epoch}")
    if curve.best_epoch is not None:
        metric_ax.legend(fontsize=8, loc="best")
    # Elliot's names print "." as "$", which matplotlib would read as mathtext delimiters.
    figure.suptitle(curve.title.replace("$", r"\$"), fontsize=10)
    return png_bytes(figure)
