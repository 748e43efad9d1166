"""The P/R/F1-against-k figure draws exactly the values given, one line per method and panel."""
from __future__ import annotations

import pytest
from matplotlib.figure import Figure
from PIL import Image

from elliot_visual.reports.label_curves import draw_label_curves, label_curves_figure

CURVES = {
    "AveragePooling": {1: {"Precision": 0.5, "Recall": 0.1, "F1": 0.17}, 5: {"Precision": 0.4, "Recall": 0.5, "F1": 0.44}},
    "NA-2+CG": {5: {"Precision": 0.6, "Recall": 0.7, "F1": 0.65}, 1: {"Precision": 0.9, "Recall": 0.2, "F1": 0.33}},
}


def test_each_panel_has_one_line_per_method_with_the_given_points():
    axes = Figure().subplots(1, 3)
    draw_label_curves(axes, CURVES)
    assert [ax.get_title() for ax in axes] == ["Precision@k", "Recall@k", "F1@k"]
    recall = axes[1].get_lines()
    assert [line.get_label() for line in recall] == ["AveragePooling", "NA-2+CG"]
    assert list(recall[1].get_xdata()) == [1, 5]                    # cutoffs sorted
    assert list(recall[1].get_ydata()) == [0.2, 0.7]


def test_figure_is_a_png_three_panels_wide(tmp_path):
    path = label_curves_figure(CURVES, tmp_path / "figures" / "labels.png", title="Home & Kitchen")
    width, height = Image.open(path).size
    assert width > 2.5 * height


def test_missing_metric_is_an_error_naming_the_method():
    with pytest.raises(ValueError, match="method A has no F1"):
        draw_label_curves(Figure().subplots(1, 3), {"A": {1: {"Precision": 1.0, "Recall": 1.0}}})


def test_write_label_curves_draws_every_trial_of_searched_multilabel_entries(tmp_path):
    from types import SimpleNamespace as NS

    from elliot_visual.reports.label_curves import label_curves_of, write_label_curves

    def trial(blocks, f1):
        return NS(params=NS(blocks=blocks), test=NS(values={1: {"Precision": f1, "Recall": f1, "F1": f1}}))

    searched = NS(table="multilabel", family="NeuralAggregation", loader="tuned", spec=NS(is_tuned=True,
                  search={"blocks": [1, 2]}), trials=[trial(1, 0.5), trial(2, 0.6)], best=None)
    fixed = NS(table="multilabel", family="CategoryPop", loader=None, spec=NS(is_tuned=False, search={}),
               trials=[], best=trial(0, 0.4))
    ranking = NS(table="rec", family="VBPR", loader="tuned", spec=NS(is_tuned=False, search={}), trials=[],
                 best=trial(0, 0.9))
    curves = label_curves_of([searched, fixed, ranking])
    assert {label: table[1]["F1"] for label, table in curves.items()} == {
        "NeuralAggregation blocks=1": 0.5, "NeuralAggregation blocks=2": 0.6, "CategoryPop": 0.4}
    (path,) = write_label_curves([searched, fixed, ranking], tmp_path, "stamp")
    assert path.name == "multilabel_curves_stamp.png" and path.is_file()
    assert write_label_curves([ranking], tmp_path, "none") == []
