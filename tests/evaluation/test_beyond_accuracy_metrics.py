"""Coverage, diversity, novelty and bias metrics on the hand-made split of conftest.py.

At k = 2 the evaluated users' lists are u0: [i5, i2], u1: [i0, i1], u2: [i2, i1]; so the counts
are c(i5) = 1, c(i2) = 2, c(i0) = 1, c(i1) = 2, F = 6, over 6 catalogue items. Train popularity:
i0, i1: 2; i2..i5: 1 (8 interactions, 4 train users). Long tail = {i5}.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from elliot_visual.data.interactions import Interactions
from elliot_visual.evaluation.metrics.base import RankingContext
from elliot_visual.evaluation.metrics.bias import long_tail_mask
from elliot_visual.evaluation.ranking import rank
from elliot_visual.registry import METRICS

L3 = math.log2(3)
L6 = math.log2(6)
DISC_SUM_2 = 1 + 1 / L3  # Σ_{r<2} disc(r)


def frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


@pytest.fixture
def ctx(tiny, tiny_scores) -> RankingContext:
    top = rank(tiny_scores, tiny, 4)
    return RankingContext.build(tiny, tiny.test, top, 3)


def value(name: str, ctx: RankingContext, k: int) -> float:
    return METRICS.get(name)().compute(ctx, k).value


@pytest.mark.parametrize("name, k, expected", [
    ("ItemCoverage", 2, 4),                          # {i5, i2, i0, i1}: a count, as in Elliot
    ("ItemCoverageRatio", 2, 4 / 6),
    ("UserCoverage", 2, 3),
    ("UserCoverageRatio", 2, 3 / 3),
    ("UserCoverageAtN", 2, 3),
    ("UserCoverageAtN", 4, 2),                       # u2 has only 3 candidates
    # sorted counts [1, 1, 2, 2], weights 2(j + 6 - 4 + 1) - 6 - 1 = 2j - 1
    ("Gini", 2, 1 - ((-1 * 1 + 1 * 1 + 3 * 2 + 5 * 2) / 6) / (6 - 1)),
    # w_i = Σ 1/|L_u@2|: i5 .5, i2 1, i0 .5, i1 1; novelty -log2(c_i / 6); 3 evaluated users
    ("SEntropy", 2, (0.5 * L6 + 1 * math.log2(3) + 0.5 * L6 + 1 * math.log2(3)) / 3),
    # EFD novelty -log2(n_i / 8): i2 -> 3, i0 -> 2; u0 hit i2 at rank 1, u1 hit i0 at rank 0
    ("EFD", 2, ((3 / L3) / DISC_SUM_2 + (2 * 1) / DISC_SUM_2) / 2),
    # EPC novelty 1 - n_i / 4: i2 -> 3/4, i0 -> 1/2
    ("EPC", 2, ((3 / 4 / L3) / DISC_SUM_2 + (1 / 2) / DISC_SUM_2) / 2),
    # ARP over all evaluated users (u2 too): (1+1)/2, (2+2)/2, (1+2)/2
    ("ARP", 2, ((1 + 1) / 2 + (2 + 2) / 2 + (1 + 2) / 2) / 3),
    ("APLT", 2, (1 / 2 + 0 / 2 + 0 / 2) / 3),
    ("ACLT", 2, (1 + 0 + 0) / 3),
])
def test_beyond_accuracy_metric_on_hand_computed_case(ctx, name, k, expected):
    assert value(name, ctx, k) == pytest.approx(expected)


def test_system_wide_metrics_have_no_per_user_values_and_are_excluded_from_tests(ctx):
    for name in ("AUC", "ItemCoverage", "UserCoverage", "Gini", "SEntropy"):
        assert METRICS.get(name).per_user_stats is False
    for name in ("Precision", "Recall", "nDCG", "MRR", "MAP", "F1", "HR", "GAUC", "LAUC", "EFD", "EPC",
                 "ARP", "APLT", "ACLT"):
        assert METRICS.get(name).per_user_stats is True
    assert METRICS.get("Gini")().compute(ctx, 2).per_user is None


def test_bias_metrics_average_users_without_relevant_items(ctx):
    per_user = METRICS.get("ARP")().compute(ctx, 2).per_user
    np.testing.assert_allclose(per_user, [1.0, 2.0, 1.5])


def test_short_head_includes_the_item_that_crosses_80_percent():
    # popularity 5, 3, 1, 1 (total 10, limit 8): cumulated 5, 8 -> the head is the first two items
    assert long_tail_mask(np.array([1, 5, 1, 3])).tolist() == [True, False, True, False]
    # ties keep index order: 2, 2, 2, 2 (limit 6.4) -> cumulated 2, 4, 6, 8 -> head i0..i3, tail empty
    assert long_tail_mask(np.array([2, 2, 2, 2, 0])).tolist() == [False, False, False, False, True]


def test_efd_gives_items_without_train_users_the_maximum_novelty(tiny_split, fixed_scores):
    train, test = tiny_split
    test = pd.concat([test, frame([("u1", "cold", 5)])])
    data = Interactions.from_frames("tiny", train, test, extra_items=["cold"])
    scores = np.zeros((data.n_users, data.n_items), dtype=np.float32)
    scores[:, data.item_index["cold"]] = 10  # the cold item first for everyone, then u1's i0
    scores[data.user_index["u1"], data.item_index["i0"]] = 5
    ctx = RankingContext.build(data, data.test, rank(fixed_scores(scores), data, 2), 3)
    per_user = METRICS.get("EFD")().compute(ctx, 2).per_user
    # u1: [cold, i0], both relevant; cold gets max novelty -log2(min n_i / 8) = -log2(1/8) = 3
    assert per_user[data.user_index["u1"]] == pytest.approx((1 * 3 + (1 / L3) * 2) / DISC_SUM_2)
    # EPC: cold has no train user -> novelty 1; i0 -> 1 - 2/4
    per_user_epc = METRICS.get("EPC")().compute(ctx, 2).per_user
    assert per_user_epc[data.user_index["u1"]] == pytest.approx((1 * 1 + (1 / L3) * (1 / 2)) / DISC_SUM_2)
    assert METRICS.get("ItemCoverageRatio")().compute(ctx, 1).value == pytest.approx(1 / 7)
