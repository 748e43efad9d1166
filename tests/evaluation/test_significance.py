"""Paired t-test / Wilcoxon tables: planted differences, zero differences, user intersection, both orders."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from elliot_visual.config.schema import Evaluation
from elliot_visual.evaluation.evaluator import EvaluationResult
from elliot_visual.evaluation.significance import compare_models, paired_p_value, significance_table


def users(n: int) -> list[str]:
    return [f"u{i}" for i in range(n)]


@pytest.fixture
def planted(rng) -> dict[str, dict[str, dict[str, float]]]:
    """Model 'better' = 'base' + 0.1 on Recall for every user; 'twin' equals 'base'."""
    base = rng.random(200)
    noise = rng.normal(0, 0.01, 200)
    recall = lambda values: dict(zip(users(200), values.tolist()))  # noqa: E731
    return {"base": {"Recall": recall(base)},
            "better": {"Recall": recall(base + 0.1 + noise)},
            "twin": {"Recall": recall(base)}}


@pytest.mark.parametrize("test", ["paired_ttest", "wilcoxon_test"])
def test_planted_difference_is_significant_and_identical_models_give_nan(planted, test):
    rows = significance_table(planted, test)
    assert [r[:3] for r in rows] == [("base", "better", "Recall"), ("better", "base", "Recall"),
                                     ("base", "twin", "Recall"), ("twin", "base", "Recall"),
                                     ("better", "twin", "Recall"), ("twin", "better", "Recall")]
    p = {(a, b): value for a, b, _, value in rows}
    assert p[("base", "better")] < 1e-10 and p[("base", "better")] == p[("better", "base")]
    assert math.isnan(p[("base", "twin")])


def test_p_values_are_scipys_on_the_intersection_of_users():
    a = {"Recall": {"u0": 0.1, "u1": 0.5, "u2": 0.3, "u3": 0.9}}
    b = {"Recall": {"u1": 0.4, "u2": 0.35, "u3": 0.7, "u4": 0.0}}
    ((_, _, _, p_t), _) = significance_table({"a": a, "b": b}, "paired_ttest")
    ((_, _, _, p_w), _) = significance_table({"a": a, "b": b}, "wilcoxon_test")
    assert p_t == pytest.approx(stats.ttest_rel([0.5, 0.3, 0.9], [0.4, 0.35, 0.7]).pvalue)
    assert p_w == pytest.approx(stats.wilcoxon([0.5, 0.3, 0.9], [0.4, 0.35, 0.7]).pvalue)


def test_metrics_missing_from_one_model_are_skipped():
    rows = significance_table({"a": {"Recall": {"u0": 1.0, "u1": 0.0}, "EFD": {"u0": 1.0}},
                               "b": {"Recall": {"u0": 0.0, "u1": 0.5}}}, "paired_ttest")
    assert {r[2] for r in rows} == {"Recall"}


def test_compare_models_runs_each_requested_test_at_each_cutoff(planted):
    results = {name: EvaluationResult(values={}, recommendations=None, per_user={10: values, 50: values})
               for name, values in planted.items()}
    tables = compare_models(results, Evaluation(paired_ttest=False, wilcoxon_test=True))
    assert list(tables) == ["wilcoxon_test"]       # wilcoxon alone works (Elliot needs paired_ttest too)
    assert list(tables["wilcoxon_test"]) == [10, 50]
    assert len(tables["wilcoxon_test"][10]) == 6
    assert compare_models(results, Evaluation()) == {}


def test_too_few_shared_users_give_nan():
    assert math.isnan(paired_p_value([0.1], [0.2], "paired_ttest"))
    assert math.isnan(paired_p_value(np.zeros(5), np.zeros(5), "wilcoxon_test"))
