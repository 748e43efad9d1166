"""Visual-profile pictures: what is drawn is exactly the coordinates given, labelled, as a PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from elliot_visual.reports.figures import (POSITIVE_COLOUR, RECOMMENDED_COLOUR, ProfilePanel, draw_profile,
                                           profile_figure, profile_grid)


def panel(shift: float = 0.0, title: str = "VBPR") -> ProfilePanel:
    positives = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 1.0]]) + shift
    recommended = np.array([[5.0, 4.0], [7.0, 4.0]]) + shift
    return ProfilePanel(title=title, subtitle="user u7 · VisDiv[global]@2", positives=positives,
                        recommended=recommended, positive_centroid=positives.mean(axis=0),
                        recommended_centroid=recommended.mean(axis=0), value=float(np.hypot(5, 11 / 3)))


def _colour_share(png: Path, hex_colour: str) -> float:
    rgb = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3).astype(int)
    target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return float((np.abs(rgb - target).sum(axis=1) < 40).mean())


def test_profile_draws_the_given_points_centroids_and_joining_segment() -> None:
    ax = Figure().subplots()
    p = panel()
    draw_profile(ax, p)
    offsets = [np.asarray(c.get_offsets()) for c in ax.collections]
    np.testing.assert_array_equal(offsets[0], p.recommended)
    np.testing.assert_array_equal(offsets[1], p.positives)
    np.testing.assert_array_equal(offsets[2][0], p.positive_centroid)
    np.testing.assert_array_equal(offsets[3][0], p.recommended_centroid)
    [segment] = ax.lines
    np.testing.assert_array_equal(np.column_stack(segment.get_data()), [p.positive_centroid, p.recommended_centroid])
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["top-2 recommended", "training positives (3)", "centroid distance = 6.2",
                      "centroid of positives", "centroid of top-k"]
    assert ax.get_xlabel() == "t-SNE dimension 1" and "user u7" in ax.get_title()


def test_profile_figure_is_a_png_with_both_colours(tmp_path: Path) -> None:
    path = profile_figure(panel(), tmp_path / "figures" / "user.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _colour_share(path, POSITIVE_COLOUR) > 0.001
    assert _colour_share(path, RECOMMENDED_COLOUR) > 0.001
    assert not list(path.parent.glob(".*.tmp"))  # written atomically, no temporary left


def test_grid_puts_one_panel_per_model_side_by_side(tmp_path: Path) -> None:
    single = Image.open(profile_figure(panel(), tmp_path / "one.png")).size
    grid = Image.open(profile_grid([panel(0, "VBPR"), panel(1, "DeepStyle"), panel(2, "ACF")],
                                   tmp_path / "grid.png", title="user u7", share_axes=True)).size
    assert grid[0] > 2.5 * single[0]
    assert grid[1] < 1.6 * single[1]
    with pytest.raises(ValueError, match="at least one panel"):
        profile_grid([], tmp_path / "none.png")


def test_training_curves_draw_elliot_names_with_dollar_signs_verbatim() -> None:
    from elliot_visual.reports.figures import TrainingCurve, training_curves_png

    curve = TrainingCurve(title="BPRMF_seed=42_lr=0$01_l_w=0$001_l_b=0$001_l_e=0$1", epochs=np.arange(1, 5),
                          loss=np.array([4.0, 3.0, 2.5, 2.4]), metric="Recall@20",
                          validation_epochs=np.array([2, 4]), validation=np.array([0.1, 0.2]), best_epoch=4)
    png = training_curves_png(curve)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
