"""Paired significance tests between models, on per-user metric values (Elliot's stat_* files).

For every unordered pair of models and every metric both have per-user values for, the users
compared are the intersection of the two per-user dicts; the p-value is
``scipy.stats.ttest_rel(a, b).pvalue`` (``paired_ttest``) or ``scipy.stats.wilcoxon(a, b).pvalue``
(``wilcoxon_test``), NaN when every difference is zero (or fewer than two users are shared).
Rows come in both orders, ``(A, B, metric, p)`` then ``(B, A, metric, p)``, as Elliot writes
them; no multiple-testing correction. Unlike Elliot, Wilcoxon does not need ``paired_ttest`` on.
"""
from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from scipy import stats

from elliot_visual.config.schema import Evaluation

Test = Literal["paired_ttest", "wilcoxon_test"]
Row = tuple[str, str, str, float]
PerUser = Mapping[str, Mapping[str, float]]
"""metric -> {public user id: value} of one model at one cutoff."""


def requested_tests(evaluation: Evaluation) -> list[Test]:
    """The tests switched on in the config, in Elliot's order."""
    tests: list[Test] = []
    if evaluation.paired_ttest:
        tests.append("paired_ttest")
    if evaluation.wilcoxon_test:
        tests.append("wilcoxon_test")
    return tests


def paired_p_value(a: Sequence[float], b: Sequence[float], test: Test) -> float:
    """p-value of a paired test on aligned samples; NaN if all differences are zero or n < 2."""
    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a_arr.shape[0] < 2 or np.all(a_arr == b_arr):
        return float("nan")
    with warnings.catch_warnings():
        # Constant differences make the t statistic degenerate; scipy warns and returns NaN or 0.
        warnings.simplefilter("ignore", RuntimeWarning)
        if test == "paired_ttest":
            return float(stats.ttest_rel(a_arr, b_arr).pvalue)
        if test == "wilcoxon_test":
            return float(stats.wilcoxon(a_arr, b_arr).pvalue)
    raise ValueError(f"unknown test {test!r}; use 'paired_ttest' or 'wilcoxon_test'")


def significance_table(per_user: Mapping[str, PerUser], test: Test) -> list[Row]:
    """Rows ``(model_a, model_b, metric, p)`` for every unordered model pair, both orders.

    ``per_user`` maps a model name to its per-user values at one cutoff (the ``per_user[k]`` of
    an :class:`~elliot_visual.evaluation.evaluator.EvaluationResult`). Models in the given order;
    metrics in the first model's order.
    """
    rows: list[Row] = []
    for model_a, model_b in itertools.combinations(list(per_user), 2):
        values_a, values_b = per_user[model_a], per_user[model_b]
        for metric in values_a:
            if metric not in values_b:
                continue
            users = sorted(set(values_a[metric]) & set(values_b[metric]))
            a = [values_a[metric][u] for u in users]
            b = [values_b[metric][u] for u in users]
            p = paired_p_value(a, b, test)
            rows.append((model_a, model_b, metric, p))
            rows.append((model_b, model_a, metric, p))
    return rows


def significance_tables(per_user: Mapping[str, PerUser], evaluation: Evaluation) -> dict[Test, list[Row]]:
    """One table per test requested in ``evaluation`` (see :func:`significance_table`)."""
    return {test: significance_table(per_user, test) for test in requested_tests(evaluation)}


def compare_models(models: Mapping[str, Any] | Iterable[Any], evaluation: Evaluation
                   ) -> dict[Test, dict[int, list[Row]]]:
    """Every requested test at every cutoff: test -> cutoff -> rows (see :func:`significance_table`).

    ``models`` maps a model name to its test :class:`~elliot_visual.evaluation.evaluator.EvaluationResult`,
    or is a sequence of tuning outcomes (anything with ``.best.name`` and ``.best.test``); a later
    model with the same name replaces the earlier one, as Elliot's result dict does.
    """
    if isinstance(models, Mapping):
        results = dict(models)
    else:
        results = {outcome.best.name: outcome.best.test for outcome in models}
    tables: dict[Test, dict[int, list[Row]]] = {}
    for test in requested_tests(evaluation):
        cutoffs = sorted({k for result in results.values() for k in result.per_user})
        tables[test] = {k: significance_table({name: result.per_user.get(k, {}) for name, result in results.items()},
                                              test)
                        for k in cutoffs}
    return tables
