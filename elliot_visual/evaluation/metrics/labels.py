"""Precision, recall and F1 at k over predicted labels (user-level multi-label classification).

For each user the model scores D labels (product categories); the k highest-scoring labels are her
predicted set and the labels of her items her true set T (Demochkin & Savchenko 2019, Sec. 4):
P@k = |top_k ∩ T| / k, R@k = |top_k ∩ T| / |T|, F1@k = 2 P R / (P + R) (0 when both are 0),
each computed per user and averaged over users with a non-empty T. Ties among scores are broken by
the lower label index, as the item rankings are.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LABEL_METRICS = ("Precision", "Recall", "F1")


def top_labels(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, min(k, D)) label indices by descending score, ties by lower index."""
    k = min(k, scores.shape[1])
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=1)
    return order[:, :k]


def label_metrics_per_user(scores: np.ndarray, targets: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """{metric: (n,) per-user value} at ``k``; NaN for users whose true set is empty.

    ``scores`` (n, D) higher = more likely; ``targets`` (n, D) multi-hot."""
    truth = targets > 0
    top = top_labels(scores, k)
    hits = np.take_along_axis(truth, top, axis=1).sum(axis=1).astype(np.float64)
    sizes = truth.sum(axis=1).astype(np.float64)
    valid = sizes > 0
    precision = np.where(valid, hits / k, np.nan)
    recall = np.divide(hits, sizes, out=np.full(hits.shape, np.nan), where=valid)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(hits.shape), where=valid & (both > 0))
    f1[~valid] = np.nan
    return {"Precision": precision, "Recall": recall, "F1": f1}


def label_metrics(scores: np.ndarray, targets: np.ndarray, cutoffs: Sequence[int],
                  names: Sequence[str] = LABEL_METRICS) -> dict[int, dict[str, float]]:
    """cutoff -> metric -> mean over users with a non-empty true set (NaN when there is none)."""
    out: dict[int, dict[str, float]] = {}
    for k in cutoffs:
        per_user = label_metrics_per_user(scores, targets, k)
        out[k] = {name: float(np.nanmean(per_user[name])) if np.isfinite(per_user[name]).any() else float("nan")
                  for name in names}
    return out
