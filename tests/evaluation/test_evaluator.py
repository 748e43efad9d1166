"""evaluate(): Elliot's evaluated users, metric order, options, validation fallback; validation_metric rules."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from elliot_visual.config.schema import ComplexMetric, Evaluation
from elliot_visual.data.interactions import Interactions
from elliot_visual.evaluation.evaluator import build_metrics, evaluate
from elliot_visual.evaluation.metrics.base import Metric, MetricValue, RankingContext
from elliot_visual.registry import METRICS


def test_evaluate_reports_every_cutoff_in_configured_order(tiny, tiny_scores):
    evaluation = Evaluation(cutoffs=[1, 2], simple_metrics=["recall", "HR", "ItemCoverage", "auc"],
                            relevance_threshold=3)
    result = evaluate(tiny_scores, tiny, "test", evaluation, top_k=4)
    assert list(result.values) == [1, 2]
    assert list(result.values[2]) == ["Recall", "HR", "ItemCoverage", "AUC"]  # canonical spellings
    assert result.values[1]["HR"] == pytest.approx((0 + 1) / 2)
    assert result.values[2]["Recall"] == pytest.approx((1 / 2 + 1 / 1) / 2)
    assert result.values[1]["AUC"] == result.values[2]["AUC"] == pytest.approx((2 / 3 + 1) / 2)
    # recommendations: every train user (u3 too, although she has no test rows)
    assert result.recommendations.users.tolist() == [0, 1, 2, 3]
    assert result.recommendations.items.shape == (4, 4)
    assert result.per_user == {}  # no significance test requested


def test_per_user_values_are_keyed_by_public_id_for_test_eligible_metrics(tiny, tiny_scores):
    evaluation = Evaluation(cutoffs=[2], simple_metrics=["Recall", "AUC", "ARP", "Gini"], relevance_threshold=3,
                            wilcoxon_test=True)
    per_user = evaluate(tiny_scores, tiny, "test", evaluation, top_k=2).per_user[2]
    assert set(per_user) == {"Recall", "ARP"}          # AUC, Gini: system-wide, as in Elliot
    assert per_user["Recall"] == pytest.approx({"u0": 1 / 2, "u1": 1.0})   # u2 has no relevant item
    assert per_user["ARP"] == pytest.approx({"u0": 1.0, "u1": 2.0, "u2": 1.5})


def test_validation_without_a_validation_split_uses_test(tiny, tiny_scores):
    evaluation = Evaluation(cutoffs=[2], simple_metrics=["Recall"], relevance_threshold=3)
    assert tiny.validation is None
    validation = evaluate(tiny_scores, tiny, "validation", evaluation, top_k=2)
    assert validation.values == evaluate(tiny_scores, tiny, "test", evaluation, top_k=2).values


def test_validation_part_is_evaluated_on_validation_rows(tiny_split, tiny_scores):
    train, test = tiny_split
    validation = pd.DataFrame([("u3", "i0", 5.0)], columns=["user", "item", "rating"])
    data = Interactions.from_frames("tiny", train, test, validation)
    evaluation = Evaluation(cutoffs=[1], simple_metrics=["Recall", "UserCoverage"], relevance_threshold=3)
    values = evaluate(tiny_scores, data, "validation", evaluation, top_k=2).values[1]
    assert values == {"Recall": 1.0, "UserCoverage": 1.0}  # only u3; her first candidate is i0


def test_metrics_argument_restricts_to_a_subset(tiny, tiny_scores):
    evaluation = Evaluation(cutoffs=[1, 2], simple_metrics=["Recall", "nDCG", "HR"], relevance_threshold=3)
    result = evaluate(tiny_scores, tiny, "validation", evaluation, top_k=2, metrics=["hr"], cutoffs=[2])
    assert result.values == {2: {"HR": 1.0}}


def test_cutoffs_beyond_top_k_are_an_error(tiny, tiny_scores):
    evaluation = Evaluation(cutoffs=[5], simple_metrics=["Recall"])
    with pytest.raises(ValueError, match="top_k=2"):
        evaluate(tiny_scores, tiny, "test", evaluation, top_k=2)


class _Shifted(Metric):
    """A complex metric with an option, to see options travel from the config."""

    def __init__(self, shift: float) -> None:
        self.shift = shift

    def column(self, k: int) -> str:
        return f"Shifted_{self.shift}"

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        return MetricValue(float(ctx.n_users) + self.shift)


def test_complex_metrics_receive_their_options_and_name_their_column(tiny, tiny_scores, monkeypatch):
    monkeypatch.setitem(METRICS._entries, "shifted", _Shifted)
    monkeypatch.setitem(METRICS._spelling, "shifted", "Shifted")
    _Shifted.name = "Shifted"
    evaluation = Evaluation(cutoffs=[2], simple_metrics=["HR"],
                            complex_metrics=[ComplexMetric(metric="shifted", shift=0.5)])
    values = evaluate(tiny_scores, tiny, "test", evaluation, top_k=2).values[2]
    assert values == {"HR": pytest.approx(1.0), "Shifted_0.5": 3.5}  # 3 evaluated users + 0.5


def test_unknown_or_misconfigured_metrics_fail_with_names():
    with pytest.raises(KeyError, match="Recall"):
        build_metrics(Evaluation(simple_metrics=["Recal"]))
    with pytest.raises(ValueError, match="alpha"):
        build_metrics(Evaluation(complex_metrics=[ComplexMetric(metric="nDCG", alpha=1)]))


def test_batch_size_does_not_change_results(tiny, tiny_scores):
    evaluation = Evaluation(cutoffs=[2], simple_metrics=["nDCG", "GAUC", "Gini"], relevance_threshold=0)
    one = evaluate(tiny_scores, tiny, "test", evaluation, top_k=3, batch_size=1)
    many = evaluate(tiny_scores, tiny, "test", evaluation, top_k=3, batch_size=1024)
    assert one.values == many.values
    np.testing.assert_array_equal(one.recommendations.items, many.recommendations.items)
