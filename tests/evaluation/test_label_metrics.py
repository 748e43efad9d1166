"""P/R/F1@k over labels (the multi-label task's metrics) against values computed by hand."""
from __future__ import annotations

import numpy as np
import pytest

from elliot_visual.evaluation.metrics.labels import label_metric_table, label_metrics, top_labels

SCORES = np.array([[0.9, 0.1, 0.8, 0.3],
                   [0.2, 0.2, 0.5, 0.1],     # labels 0 and 1 tie: the lower index ranks first
                   [0.4, 0.3, 0.2, 0.1]])    # no true label: not averaged
TARGETS = np.array([[1, 0, 0, 1],
                    [0, 1, 0, 0],
                    [0, 0, 0, 0]])


def values(k: int) -> dict[str, float]:
    return label_metrics(SCORES, TARGETS, [k])[k]


def test_ties_keep_the_lower_label_first():
    assert top_labels(SCORES, 4)[1].tolist() == [2, 0, 1, 3]


@pytest.mark.parametrize("k, precision, recall, f1", [
    # u0 ranks 0,2,3,1 (true 0,3); u1 ranks 2,0,1,3 (true 1)
    (1, (1 + 0) / 2, (1 / 2 + 0) / 2, (2 / 3 + 0) / 2),
    (2, (1 / 2 + 0) / 2, (1 / 2 + 0) / 2, (1 / 2 + 0) / 2),
    (3, (2 / 3 + 1 / 3) / 2, (1 + 1) / 2, (4 / 5 + 1 / 2) / 2),
    (5, (2 / 5 + 1 / 5) / 2, 1.0, (4 / 7 + 1 / 3) / 2),     # k > D: P still divides by k
])
def test_precision_recall_f1_at_k_by_hand(k, precision, recall, f1):
    assert values(k) == pytest.approx({"Precision": precision, "Recall": recall, "F1": f1})


def test_per_user_values_leave_out_users_without_labels():
    table = label_metric_table(SCORES, TARGETS, [1, 3])
    assert table[3]["F1"].per_user[:2] == pytest.approx([4 / 5, 1 / 2])
    assert np.isnan(table[3]["F1"].per_user[2])
    assert sorted(table) == [1, 3]


def test_shape_mismatch_and_ranking_only_metrics_are_refused():
    with pytest.raises(ValueError, match="must both be"):
        label_metric_table(SCORES, TARGETS[:2], [1])
    with pytest.raises(ValueError, match="not defined over labels"):
        label_metric_table(SCORES, TARGETS, [1], names=["nDCG"])
