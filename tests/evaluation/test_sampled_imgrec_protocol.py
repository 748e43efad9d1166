"""The sampled protocol's ImgRec settings: negatives outside every held-out part, eq. 6 AUC with ties.

Hand-made split (items numbered in order of first train appearance: i0..i5):

====  ========  ==========  ====  =============================================
user  train     validation  test  scores
====  ========  ==========  ====  =============================================
u0    i0, i1    i2          i3    i2 2.0, i3 1.0, i4 1.0, i5 0.0
u1    i2        i3          i4    i3 2.0, i1 1.0, i4 0.5, i0 0.5, i5 0.0
u2    i3 i4 i5  --          --    (not evaluated)
====  ========  ==========  ====  =============================================

With ``num_items`` above the catalogue every allowed item is a negative, whatever the seed.
"""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from elliot_visual.config.schema import Evaluation, NegativeSampling
from elliot_visual.data.interactions import Interactions
from elliot_visual.evaluation.evaluator import build_metrics
from elliot_visual.evaluation.sampled import evaluate_sampled, sample_negatives

SCORES = {"u0": {"i2": 2.0, "i3": 1.0, "i4": 1.0, "i5": 0.0},
          "u1": {"i3": 2.0, "i1": 1.0, "i4": 0.5, "i0": 0.5, "i5": 0.0}}


@pytest.fixture
def split() -> Interactions:
    rows = lambda pairs: pd.DataFrame([(u, i, 1.0) for u, i in pairs], columns=["user", "item", "rating"])  # noqa: E731
    train = rows([("u0", "i0"), ("u0", "i1"), ("u1", "i2"), ("u2", "i3"), ("u2", "i4"), ("u2", "i5")])
    data = Interactions.from_frames("hand", train, rows([("u0", "i3"), ("u1", "i4")]),
                                    rows([("u0", "i2"), ("u1", "i3")]))
    assert list(data.item_ids) == [f"i{k}" for k in range(6)]
    return data


def score_fn(data: Interactions):
    table = torch.full((data.n_users, data.n_items), -5.0)
    for user, row in SCORES.items():
        for item, value in row.items():
            table[data.user_index[user], data.item_index[item]] = value
    return lambda users: table[users]


def negatives_of(data: Interactions, sampling: NegativeSampling, part: str) -> dict[str, set[str]]:
    held = data.test if part == "test" else data.validation
    other = (data.validation if part == "test" else data.test) if sampling.exclude_all_held_out else None
    import numpy as np
    drawn = sample_negatives(data, held, sampling.num_items, np.random.default_rng(0), other)
    return {data.user_ids[u]: set(data.item_ids[drawn.indices[drawn.indptr[u]:drawn.indptr[u + 1]]])
            for u in held.user_set()}


def run(data: Interactions, part: str = "test", **settings) -> dict[str, float]:
    sampling = NegativeSampling(num_items=50, trials=3, seed=7, **settings)
    evaluation = Evaluation(cutoffs=[1], simple_metrics=["AUC", "GAUC", "HR"])
    held = data.test if part == "test" else data.validation
    result = evaluate_sampled(score_fn(data), data, held, sampling, build_metrics(evaluation), [1], 1, 0, part=part)
    return result.values[1]


def test_negatives_leave_out_train_validation_and_test_items_when_asked(split):
    asked = NegativeSampling(num_items=50, exclude_all_held_out=True)
    assert negatives_of(split, asked, "test") == {"u0": {"i4", "i5"}, "u1": {"i0", "i1", "i5"}}
    assert negatives_of(split, asked, "validation") == {"u0": {"i4", "i5"}, "u1": {"i0", "i1", "i5"}}
    # Today's default (Elliot's): only the evaluated part's items are left out.
    default = NegativeSampling(num_items=50)
    assert negatives_of(split, default, "test") == {"u0": {"i2", "i4", "i5"}, "u1": {"i0", "i1", "i3", "i5"}}


def test_pairwise_auc_counts_ties_as_lost_or_as_half(split):
    # u0: negatives i4 (tied with i3) and i5 (below): strict (2 - 0 - 1) / 2, half (2 - 0 - .5) / 2.
    # u1: negatives i0 (tied with i4), i1 (above), i5 (below): strict (3 - 1 - 1) / 3, half (3 - 1 - .5) / 3.
    strict = run(split, exclude_all_held_out=True, auc="pairwise")
    assert strict["AUC"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert strict["GAUC"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert strict["AUC_std"] == pytest.approx(0.0, abs=1e-12)
    half = run(split, exclude_all_held_out=True, auc="pairwise", ties="half")
    assert half["AUC"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    # HR@1 ranks the same lists, ties by item index: u0's top is i3 (tied with i4, lower index): a hit;
    # u1's top is i1: a miss.
    assert strict["HR"] == pytest.approx(0.5) and half["HR"] == pytest.approx(0.5)


def test_pairwise_auc_without_exclusion_counts_the_other_part_as_negatives(split):
    # u0: negatives i2 (above), i4 (tied), i5: (3 - 1 - 1) / 3; u1: i0 (tied), i1, i3 (above), i5: (4 - 2 - 1) / 4.
    assert run(split, auc="pairwise")["AUC"] == pytest.approx((1 / 3 + 1 / 4) / 2)


def test_validation_part_leaves_out_test_items(split):
    # u0's validation item i2 (2.0) beats i4, i5: 1; u1's i3 (2.0) beats i0, i1, i5: 1.
    assert run(split, "validation", exclude_all_held_out=True, auc="pairwise")["AUC"] == pytest.approx(1.0)


def test_elliot_auc_is_unchanged_by_default(split):
    # Elliot's form, N_neg = candidates - |Rel| + 1, ties by index: u0 candidates i3, i4, i2, i5:
    # i3 at position 1 (i2 above; i4 tied, higher index) -> (4 - 1) / 4; u1 candidates i4, i0, i1, i3, i5:
    # i4 after i3, i1 and i0 (tied, lower index) -> (5 - 3) / 5.
    assert run(split)["AUC"] == pytest.approx((3 / 4 + 2 / 5) / 2)


def test_ties_setting_needs_pairwise_auc():
    with pytest.raises(ValidationError, match="auc: pairwise"):
        NegativeSampling(ties="half")


def test_extra_negative_counts_add_test_columns(split):
    # One negative per user, then "all of them" (50): u0 with i4 and i5 -> pairwise strict AUC .5,
    # u1 with i0, i1, i5 -> 1/3 (as above); validation gets no extra columns.
    values = run(split, exclude_all_held_out=True, auc="pairwise", extra_num_items=[50])
    assert values["AUC_neg50"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert values["HR_neg50"] == pytest.approx(0.5) and "AUC_neg50_std" in values
    assert "AUC_neg50" not in run(split, "validation", extra_num_items=[50])
    with pytest.raises(ValidationError, match="extra_num_items must be positive"):
        NegativeSampling(extra_num_items=[0])
