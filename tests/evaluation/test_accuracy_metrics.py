"""Accuracy metrics on the hand-made split of conftest.py, expected values written as derivations.

At k = 2 with threshold 3 the lists are u0: [i5, i2] (hit at rank 1), u1: [i0, i1] (hit at rank 0),
u2: [i2, i1] (no relevant item, so not averaged). disc(r) = 1 / log2(r + 2).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from elliot_visual.data.interactions import Interactions
from elliot_visual.evaluation.metrics.base import RankingContext
from elliot_visual.evaluation.ranking import rank
from elliot_visual.registry import METRICS

L3 = math.log2(3)  # 1 / disc(1)


def context(data: Interactions, score_fn, threshold: float, k: int = 4) -> RankingContext:
    relevance = data.test.relevance(data.n_users, data.n_items, threshold)
    top = rank(score_fn, data, k, relevant=relevance)
    return RankingContext.build(data, data.test, top, threshold, relevance=relevance)


def value(name: str, ctx: RankingContext, k: int) -> float:
    return METRICS.get(name)().compute(ctx, k).value


@pytest.fixture
def ctx3(tiny, tiny_scores) -> RankingContext:
    return context(tiny, tiny_scores, threshold=3)


@pytest.mark.parametrize("name, k, expected", [
    ("Precision", 2, (1 / 2 + 1 / 2) / 2),
    ("Precision", 4, (1 / 4 + 1 / 4) / 2),           # divides by k
    ("Recall", 2, (1 / 2 + 1 / 1) / 2),              # u0's |Rel| = 2 counts iX, outside the catalogue
    ("F1", 2, (1 / 2 + 2 * (1 / 2) * 1 / (1 / 2 + 1)) / 2),
    ("HR", 1, (0 + 1) / 2),
    ("HR", 2, (1 + 1) / 2),
    ("MRR", 2, (1 / 2 + 1 / 1) / 2),
    ("MAP", 2, ((0 / 1 + 1 / 2) / 2 + (1 / 1 + 1 / 2) / 2) / 2),
    ("MAP", 4, ((0 / 1 + 1 / 2 + 1 / 3 + 1 / 4) / 4 + (1 / 1 + 1 / 2 + 1 / 3 + 1 / 4) / 4) / 2),
    # gains 2^(r - 3 + 1) - 1: i2 (r=5) -> 7, iX (r=4) -> 3, i0 (r=4) -> 3
    ("nDCG", 2, ((7 / L3) / (7 + 3 / L3) + 3 / 3) / 2),
    # AUC: u0 N_neg = 6 - 2 - 2 + 1 = 3, i2 at R=1, p=0; u1 N_neg = 6 - 2 - 1 + 1 = 4, i0 at R=0
    ("AUC", 2, ((3 - 1 + 0) / 3 + (4 - 0 + 0) / 4) / 2),
    ("GAUC", 2, (((3 - 1 + 0) / 3) / 2 + ((4 - 0 + 0) / 4) / 1) / 2),
    ("LAUC", 1, (0 / 1 + ((4 - 0 + 0) / 4) / 1) / 2),
    ("LAUC", 2, (((3 - 1 + 0) / 3) / 2 + ((4 - 0 + 0) / 4) / 1) / 2),
])
def test_accuracy_metric_on_hand_computed_case(ctx3, name, k, expected):
    assert value(name, ctx3, k) == pytest.approx(expected)


def test_relevance_threshold_zero_makes_every_held_out_item_relevant(tiny, tiny_scores):
    ctx0 = context(tiny, tiny_scores, threshold=0)
    # Rel(u0) = {i2, i4, iX}, Rel(u1) = {i0}, Rel(u2) = {i1} (rating 1): u2 is averaged now
    assert value("Recall", ctx0, 2) == pytest.approx((1 / 3 + 1 / 1 + 1 / 1) / 3)
    assert value("Precision", ctx0, 2) == pytest.approx((1 / 2 + 1 / 2 + 1 / 2) / 3)
    # gains 2^(r + 1) - 1: u0 i2 -> 63, iX -> 31, i4 -> 7; u1 i0 -> 31; u2 i1 at rank 1 -> 3
    expected_ndcg = ((63 / L3) / (63 + 31 / L3) + 31 / 31 + (3 / L3) / 3) / 3
    assert value("nDCG", ctx0, 2) == pytest.approx(expected_ndcg)


def test_users_without_relevant_items_are_not_averaged_and_get_no_per_user_value(ctx3):
    result = METRICS.get("Recall")().compute(ctx3, 2)
    assert ctx3.user_ids.tolist() == ["u0", "u1", "u2"]  # u3 has no test rows: not evaluated
    np.testing.assert_allclose(result.per_user, [1 / 2, 1.0, np.nan])


def test_items_outside_catalogue_lower_recall_are_skipped_by_auc_and_zero_in_gauc(tiny_split, tiny_scores):
    train, test = tiny_split
    extra = pd.DataFrame([("u3", "iZ", 5.0)], columns=["user", "item", "rating"])
    data = Interactions.from_frames("tiny", train, pd.concat([test, extra]))
    ctx = context(data, tiny_scores, threshold=3)
    # u3's only relevant item iZ cannot be recommended: Recall 0 and GAUC 0 for u3, no AUC term
    assert value("Recall", ctx, 2) == pytest.approx((1 / 2 + 1 / 1 + 0) / 3)
    assert value("AUC", ctx, 2) == pytest.approx(((3 - 1 + 0) / 3 + (4 - 0 + 0) / 4) / 2)
    assert value("GAUC", ctx, 2) == pytest.approx((((3 - 1 + 0) / 3) / 2 + 1 + 0) / 3)


def test_auc_is_a_micro_average_while_gauc_averages_users(fixed_scores):
    # user a: 2 relevant items ranked first and last of 4 candidates; user b: 1 relevant ranked first
    train = pd.DataFrame([("a", "t", 1.0), ("b", "t", 1.0)] + [("c", f"i{i}", 1.0) for i in range(4)],
                         columns=["user", "item", "rating"])
    test = pd.DataFrame([("a", "i0", 1.0), ("a", "i3", 1.0), ("b", "i0", 1.0)], columns=["user", "item", "rating"])
    data = Interactions.from_frames("auc", train, test)
    scores = np.zeros((3, data.n_items), dtype=np.float32)
    for u in (0, 1):
        scores[u, [data.item_index[f"i{i}"] for i in range(4)]] = [4, 3, 2, 1]
    ctx = context(data, fixed_scores(scores), threshold=0)
    # a: N_neg = 5 - 1 - 2 + 1 = 3; i0 at R=0, p=0 -> 3/3; i3 at R=3, p=1 -> (3-3+1)/3
    # b: N_neg = 5 - 1 - 1 + 1 = 4; i0 at R=0 -> 4/4
    assert value("AUC", ctx, 2) == pytest.approx((3 / 3 + 1 / 3 + 4 / 4) / 3)
    assert value("GAUC", ctx, 2) == pytest.approx(((3 / 3 + 1 / 3) / 2 + 4 / 4) / 2)


def test_auc_without_positions_says_how_to_get_them(tiny, tiny_scores):
    top = rank(tiny_scores, tiny, 2)
    ctx = RankingContext.build(tiny, tiny.test, top, 3)
    with pytest.raises(ValueError, match="relevant="):
        value("AUC", ctx, 2)


def test_short_lists_keep_precision_denominator_k(tiny, tiny_scores):
    ctx0 = context(tiny, tiny_scores, threshold=0)
    # u2 has 3 candidates: list [i2, i1, i3], i1 relevant -> Precision@4 = 1/4, not 1/3
    per_user = METRICS.get("Precision")().compute(ctx0, 4).per_user
    assert per_user[2] == pytest.approx(1 / 4)


def test_simple_metrics_reject_options():
    with pytest.raises(ValueError, match="takes no options"):
        METRICS.get("Recall")(alpha=1)
