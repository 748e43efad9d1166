"""Precision, recall and F1 at k over predicted labels (user-level multi-label classification).

For each user the model scores D labels (product categories); the k highest-scoring labels are her
predicted set T_u@k and the labels of her items her true set Y_u (Demochkin & Savchenko 2019,
Sec. 4): P@k = |T_u@k ∩ Y_u| / k, R@k = |T_u@k ∩ Y_u| / |Y_u|, F1@k = 2PR / (P + R) (0 when
both are 0), each computed per user and averaged over users with a non-empty Y_u (macro average).
With k > D the list has D labels and P@k still divides by k. Ties among scores are broken by the
lower label index, as the item rankings are.

This is the ranking problem Elliot's metrics already define, with labels in place of items, so the
module builds a :class:`~elliot_visual.evaluation.metrics.base.RankingContext` over labels and lets
the registered ``Precision``, ``Recall`` and ``F1`` compute it: one definition of each metric.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from elliot_visual.evaluation.metrics.accuracy import F1, Precision, Recall
from elliot_visual.evaluation.metrics.base import Metric, MetricValue, Ragged, RankingContext, compute_table

LABEL_METRICS = ("Precision", "Recall", "F1")
_BY_NAME: dict[str, type[Metric]] = {cls.name.lower(): cls for cls in (Precision, Recall, F1)}


def top_labels(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, min(k, D)) label indices by descending score, ties by lower index."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), axis=1, kind="stable")
    return order[:, :min(k, scores.shape[1])]


def label_context(scores: np.ndarray, targets: np.ndarray, k: int,
                  user_ids: np.ndarray | None = None) -> RankingContext:
    """The ranking context of ``scores`` (n, D) against multi-hot ``targets`` (n, D), top ``k`` labels."""
    scores, truth = np.asarray(scores), np.asarray(targets) > 0
    if scores.shape != truth.shape or scores.ndim != 2:
        raise ValueError(f"label scores {scores.shape} and targets {truth.shape} must both be (users, labels)")
    n_users, n_labels = scores.shape
    top = top_labels(scores, k)
    if top.shape[1] < k:
        top = np.concatenate([top, np.full((n_users, k - top.shape[1]), -1, dtype=top.dtype)], axis=1)
    relevance = sp.csr_matrix(truth.astype(np.float64))
    relevance.sort_indices()
    counts = truth.sum(axis=1).astype(np.int64)
    indptr = np.concatenate(([0], np.cumsum(counts)))
    users = np.arange(n_users)
    return RankingContext(users=users, user_ids=users if user_ids is None else np.asarray(user_ids),
                          items=top, relevance=relevance, n_relevant=counts,
                          relevant_ratings=Ragged(indptr, np.ones(int(indptr[-1]))),
                          n_candidates=np.full(n_users, n_labels), train_size=np.zeros(n_users, np.int64),
                          item_popularity=np.zeros(n_labels, np.int64), n_items=n_labels,
                          n_train_users=n_users, relevance_threshold=1.0)


def label_metric_table(scores: np.ndarray, targets: np.ndarray, cutoffs: Sequence[int],
                       names: Sequence[str] = LABEL_METRICS) -> dict[int, dict[str, MetricValue]]:
    """cutoff -> metric -> value with per-user values (NaN for users whose true set is empty)."""
    if not cutoffs:
        raise ValueError("give at least one cutoff")
    unknown = [m for m in names if m.lower() not in _BY_NAME]
    if unknown:
        raise ValueError(f"metrics {unknown} are not defined over labels; use {', '.join(LABEL_METRICS)}")
    context = label_context(scores, targets, max(cutoffs))
    table = compute_table(context, [_BY_NAME[m.lower()]() for m in names], sorted({int(k) for k in cutoffs}))
    return {k: {name: row[_BY_NAME[name.lower()].name] for name in names} for k, row in table.items()}


def label_metrics_per_user(scores: np.ndarray, targets: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """{metric: (n,) per-user value} at ``k``; NaN for users whose true set is empty.

    ``scores`` (n, D) higher = more likely; ``targets`` (n, D) multi-hot."""
    return {name: value.per_user for name, value in label_metric_table(scores, targets, [k])[k].items()}


def label_metrics(scores: np.ndarray, targets: np.ndarray, cutoffs: Sequence[int],
                  names: Sequence[str] = LABEL_METRICS) -> dict[int, dict[str, float]]:
    """cutoff -> metric -> mean over users with a non-empty true set (NaN when there is none)."""
    if len(scores) == 0:
        return {int(k): {name: float("nan") for name in names} for k in cutoffs}
    table = label_metric_table(scores, targets, cutoffs, names)
    return {int(k): {name: table[int(k)][name].value for name in names} for k in cutoffs}
