"""The per-transaction rolling protocol on a case small enough to compute by hand.

Three users, nine items on the unit circle (angles in degrees), VisRank (max cosine):

    a 0   b 10   c 100   d 30   e 205   f 170   g 315   h 70   i 125      (f, h never bought)

    u1: a@100  b@200  c@230  d@500      u2: e@150  i@400      u3: g@120  d@450

With a 60 s window u1's b@200 and c@230 are one transaction, so the evaluated transactions
(each user's second onwards) are T1 = u1@200 {b, c}, T2 = u1@500 {d}, T3 = u2@400 {i},
T4 = u3@450 {d}. First purchases: a 100, g 120, e 150, b 200, c 230, i 400, d 450.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from elliot_visual.config.schema import Evaluation, Transactions
from elliot_visual.data.interactions import Interactions
from elliot_visual.evaluation.evaluator import build_metrics
from elliot_visual.evaluation.transactions import (evaluate_transactions, group_transactions,
                                                   transaction_view)
from elliot_visual.features.store import train_positives
from elliot_visual.models.base import build_model
from elliot_visual.models.random import Random
from elliot_visual.models.visrank import VisRank

ANGLES = {"a": 0, "b": 10, "c": 100, "d": 30, "e": 205, "f": 170, "g": 315, "h": 70, "i": 125}
EVENTS = [("u1", "a", 100), ("u1", "b", 200), ("u1", "c", 230), ("u1", "d", 500),
          ("u2", "e", 150), ("u2", "i", 400), ("u3", "g", 120), ("u3", "d", 450)]
METRICS = ["Precision", "Recall", "F1", "MAP", "MRR", "nDCG"]
L3 = 1 / math.log2(3)  # the discount of rank 2 (0-based rank 1)


@pytest.fixture
def data() -> Interactions:
    frame = pd.DataFrame(EVENTS, columns=["user", "item", "timestamp"]).assign(rating=1.0)
    empty = frame.iloc[:0]
    return Interactions.from_frames("hand", frame, empty, extra_items=["f", "h"])


def ids(data: Interactions, items) -> set[str]:
    return {str(data.item_ids[i]) for i in np.asarray(items)}


def visrank(view) -> VisRank:
    angles = np.radians([ANGLES[i] for i in view.profiles.item_ids])
    features = torch.tensor(np.stack([np.cos(angles), np.sin(angles)], 1), dtype=torch.float32)
    return build_model(VisRank, VisRank.Params(), view.profiles.n_users, view.profiles.n_items,
                       {"visual_features": features, "train_positives": train_positives(view.profiles)})


def run(data: Interactions, model_of=visrank, **options):
    view = transaction_view(data, Transactions(**options))
    metrics = build_metrics(Evaluation(simple_metrics=METRICS))
    return view, evaluate_transactions(model_of(view), view, metrics, [1, 3], top_k=3)


def test_window_groups_purchases_of_one_user_from_the_first_purchase_of_the_transaction() -> None:
    users = np.array([0, 0, 0, 0, 1])
    items = np.array([3, 1, 2, 1, 0])
    times = np.array([100.0, 130.0, 160.0, 161.0, 100.0])
    tight = group_transactions(users, items, times, window=0)
    assert tight.times.tolist() == [100, 130, 160, 161, 100] and tight.ordinal.tolist() == [0, 1, 2, 3, 0]
    wide = group_transactions(users, items, times, window=60)  # 160 - 100 <= 60, 161 - 100 > 60
    assert wide.times.tolist() == [100, 161, 100] and wide.users.tolist() == [0, 0, 1]
    assert [sorted(wide.items_of(t).tolist()) for t in range(3)] == [[1, 2, 3], [1], [0]]


def test_rolling_profiles_and_candidates_without_one_of_a_kind(data: Interactions) -> None:
    view, _ = run(data, window=60)
    profiles = view.profiles
    assert profiles.user_ids.tolist() == ["u1@200", "u1@500", "u2@400", "u3@450"]
    assert [ids(data, profiles.user_positives(r)) for r in range(4)] == [{"a"}, {"a", "b", "c"}, {"e"}, {"g"}]
    relevant = [ids(data, profiles.test.items[profiles.test.users == r]) for r in range(4)]
    assert relevant == [{"b", "c"}, {"d"}, {"i"}, {"d"}]
    everything = set(ANGLES)
    candidates = [ids(data, np.flatnonzero(row)) for row in view.candidate_mask(np.arange(4))]
    assert candidates == [everything - {"a"}, everything - {"a", "b", "c"}, everything - {"e"},
                          everything - {"g"}]
    assert view.candidates.tolist() == [8, 6, 8, 8] and view.skipped == 0


def test_one_of_a_kind_removes_every_item_bought_earlier_and_skips_emptied_transactions(data: Interactions) -> None:
    view, result = run(data, window=60, one_of_a_kind=True)
    # T2 = u1@500 wants d, first bought by u3 at 450: nothing of it is left, so it is skipped.
    assert view.profiles.user_ids.tolist() == ["u1@200", "u2@400", "u3@450"] and view.skipped == 1
    candidates = [ids(data, np.flatnonzero(row)) for row in view.candidate_mask(np.arange(3))]
    assert candidates == [{"b", "c", "d", "f", "h", "i"},   # minus a, g, e (bought before 200)
                          {"d", "f", "h", "i"},             # minus a, g, e, b, c
                          {"d", "f", "h"}]                  # minus a, g, e, b, c, i
    assert result.n_transactions == 3 and result.skipped == 1


def test_a_zero_window_splits_purchases_made_at_different_times(data: Interactions) -> None:
    view, _ = run(data, window=0)
    assert view.profiles.user_ids.tolist() == ["u1@200", "u1@230", "u1@500", "u2@400", "u3@450"]
    assert ids(data, view.profiles.user_positives(1)) == {"a", "b"}


def test_visrank_lists_and_every_metric_match_the_hand_computation(data: Interactions) -> None:
    view, result = run(data, window=60)
    # max cosine to the profile, top 3 among the candidates:
    # T1 prof a:     b .985, d .866, g .707 | h .342 ...   hits 1 0 0 (of {b, c})
    # T2 prof a,b,c: d .940, i .906, h .866 | ...          hits 1 0 0
    # T3 prof e:     f .819, i .174, c -.259 | ...         hits 0 1 0
    # T4 prof g:     a .707, b .574, d .259 | ...          hits 0 0 1
    top = result.recommendations
    assert [[str(data.item_ids[i]) for i in row] for row in top.items] == [
        ["b", "d", "g"], ["d", "i", "h"], ["f", "i", "c"], ["a", "b", "d"]]
    at1, at3 = result.values[1], result.values[3]
    assert at1["Precision"] == pytest.approx((1 + 1 + 0 + 0) / 4)
    assert at1["Recall"] == pytest.approx((1 / 2 + 1) / 4)
    assert at1["F1"] == pytest.approx((2 / 3 + 1) / 4)
    assert at1["MRR"] == pytest.approx(2 / 4)
    assert at1["MAP"] == pytest.approx(2 / 4)
    assert at1["nDCG"] == pytest.approx(2 / 4)
    assert at3["Precision"] == pytest.approx(1 / 3)
    assert at3["Recall"] == pytest.approx((1 / 2 + 1 + 1 + 1) / 4)
    assert at3["F1"] == pytest.approx((2 / 5 + 1 / 2 + 1 / 2 + 1 / 2) / 4)
    assert at3["MRR"] == pytest.approx((1 + 1 + 1 / 2 + 1 / 3) / 4)
    # Elliot's MAP@k: the mean of Precision@1..k
    assert at3["MAP"] == pytest.approx(((1 + 1 / 2 + 1 / 3) / 3 * 2 + (0 + 1 / 2 + 1 / 3) / 3 + (1 / 3) / 3) / 4)
    assert at3["nDCG"] == pytest.approx((1 / (1 + L3) + 1 + L3 + 1 / 2) / 4)
    assert result.per_transaction[3]["MRR"].tolist() == pytest.approx([1, 1, 1 / 2, 1 / 3])


def test_one_of_a_kind_metrics_match_the_hand_computation(data: Interactions) -> None:
    _, result = run(data, window=60, one_of_a_kind=True)
    # T1: b .985, d .866, h .342 (hits 1 0 0 of {b, c}); T3: f, i, h (0 1 0); T4: d, h, f (1 0 0)
    assert [[str(data.item_ids[i]) for i in row] for row in result.recommendations.items] == [
        ["b", "d", "h"], ["f", "i", "h"], ["d", "h", "f"]]
    assert result.values[1]["Precision"] == pytest.approx(2 / 3)
    assert result.values[3]["Recall"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    assert result.values[3]["MRR"] == pytest.approx((1 + 1 / 2 + 1) / 3)
    assert result.values[3]["nDCG"] == pytest.approx((1 / (1 + L3) + L3 + 1) / 3)


def test_random_ranks_only_the_candidates_of_each_transaction(data: Interactions) -> None:
    def random(view):
        return build_model(Random, Random.Params(seed=3), view.profiles.n_users, view.profiles.n_items)

    view, result = run(data, model_of=random, window=60, one_of_a_kind=True)
    allowed = view.candidate_mask(np.arange(3))
    for row, items in enumerate(result.recommendations.items):
        listed = items[items >= 0]
        assert allowed[row, listed].all() and len(listed) == min(3, allowed[row].sum())


def test_a_gradient_model_is_refused_with_the_reason(data: Interactions) -> None:
    from elliot_visual.models.bprmf import BPRMF

    view = transaction_view(data, Transactions(window=60))
    model = build_model(BPRMF, BPRMF.Params(), view.profiles.n_users, view.profiles.n_items)
    with pytest.raises(ValueError, match="profile-based"):
        evaluate_transactions(model, view, build_metrics(Evaluation(simple_metrics=["Recall"])), [1], 3)


def test_events_without_timestamps_are_an_error_naming_the_dataset() -> None:
    frame = pd.DataFrame([("u", "a"), ("u", "b")], columns=["user", "item"]).assign(rating=1.0)
    data = Interactions.from_frames("nostamps", frame, frame.iloc[:0])
    with pytest.raises(ValueError, match="nostamps.*timestamps"):
        transaction_view(data, Transactions())


def test_auc_counts_full_rank_positions_among_the_candidates(data: Interactions) -> None:
    view = transaction_view(data, Transactions(window=60))
    metrics = build_metrics(Evaluation(simple_metrics=["AUC"]))
    result = evaluate_transactions(visrank(view), view, metrics, [3], top_k=3)
    # Elliot's (N_neg - R + p) / N_neg, N_neg = candidates - |Rel| + 1, per relevant item:
    # T1 (8 candidates, {b, c}): b R=0 -> 7/7, c R=4 after b -> (7 - 4 + 1)/7;  T2 (6, {d}) R=0 -> 1;
    # T3 (8, {i}) R=1 -> 7/8;  T4 (8, {d}) R=2 -> 6/8
    assert result.values[3]["AUC"] == pytest.approx((1 + 4 / 7 + 1 + 7 / 8 + 6 / 8) / 5)


def test_data_without_a_second_transaction_is_an_error_naming_the_window() -> None:
    frame = pd.DataFrame([("u", "a", 100), ("u", "b", 130), ("v", "a", 100)],
                         columns=["user", "item", "timestamp"]).assign(rating=1.0)
    data = Interactions.from_frames("once", frame, frame.iloc[:0])
    assert transaction_view(data, Transactions(window=0)).profiles.n_users == 1
    with pytest.raises(ValueError, match="once.*no transaction to evaluate.*window 60s"):
        transaction_view(data, Transactions(window=60))


def test_the_registered_task_refits_a_model_built_for_the_users_and_matches_the_hand_values(
        data: Interactions) -> None:
    from elliot_visual.evaluation.tasks import TaskSettings, build_task, default_task

    evaluation = Evaluation(simple_metrics=["Recall", "MRR"], cutoffs=[3], transactions=Transactions(window=60))
    assert default_task(VisRank.tasks, evaluation) == "transactions"
    assert default_task(VisRank.tasks, Evaluation()) == "ranking"
    task = build_task("transactions", TaskSettings(evaluation, top_k=3))
    angles = np.radians([ANGLES[i] for i in data.item_ids])
    features = torch.tensor(np.stack([np.cos(angles), np.sin(angles)], 1), dtype=torch.float32)
    model = build_model(VisRank, VisRank.Params(), data.n_users, data.n_items,  # as the tuner builds it
                        {"visual_features": features, "train_positives": train_positives(data)})
    model.fit(data)
    result = task.evaluate(model, data, "test")
    assert result.values[3]["Recall"] == pytest.approx((1 / 2 + 1 + 1 + 1) / 4)
    assert result.values[3]["MRR"] == pytest.approx((1 + 1 + 1 / 2 + 1 / 3) / 4)
    assert result.recommendations is None  # lists rank transactions, not users
    selection = task.selection("MRR@3")
    assert task.validate(model, data, [selection]) == {"MRR@3": pytest.approx(17 / 24)}
