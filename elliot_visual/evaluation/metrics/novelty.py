"""Novelty metrics of Vargas & Castells (RecSys 2011), as Elliot computes them (elliot-semantics.md §4).

Both are relevance-aware and rank-discounted, normalised by the discounts of the list itself:
value_u = Σ_{r < |L_u@k|} rel_u(L[r]) · disc(r) · nov(L[r]) / Σ_{r < |L_u@k|} disc(r), with binary
relevance rel_u(i) = 1 if i ∈ Rel_u; averaged over the users with Rel_u ≠ ∅. Item popularity n_i
is the number of train users who interacted with i.
"""
from __future__ import annotations

import numpy as np

from elliot_visual.evaluation.metrics.base import Metric, MetricValue, RankingContext, register_metric, \
    user_mean


def discounted_relevant_novelty(ctx: RankingContext, k: int, novelty: np.ndarray) -> np.ndarray:
    """(n,) Σ_r rel·disc(r)·nov / Σ_r disc(r) over each user's first k recommendations (0 if empty)."""
    items = ctx.items[:, :k]
    valid = items >= 0
    disc = np.where(valid, ctx.discount(k), 0.0)
    nov = np.where(valid, novelty[np.maximum(items, 0)], 0.0)
    numerator = (ctx.hits[:, :k] * disc * nov).sum(axis=1)
    norm = disc.sum(axis=1)
    return np.divide(numerator, norm, out=np.zeros_like(numerator), where=norm > 0)


@register_metric("EFD")
class EFD(Metric):
    """Expected Free Discovery: nov(i) = −log2(n_i / Σ_j n_j); an item without train users gets
    the maximum novelty −log2(min_{n_j > 0} n_j / Σ_j n_j). Discounted as in the module docstring.

    YAML: ``simple_metrics: [EFD]``
    """

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        pop = ctx.item_popularity.astype(np.float64)
        seen = pop > 0
        if not seen.any():
            return user_mean(np.zeros(ctx.n_users), ctx.has_relevant)
        norm = pop.sum()
        novelty = np.full(pop.shape, -np.log2(pop[seen].min() / norm))
        novelty[seen] = -np.log2(pop[seen] / norm)
        return user_mean(discounted_relevant_novelty(ctx, k, novelty), ctx.has_relevant)


@register_metric("EPC")
class EPC(Metric):
    """Expected Popularity Complement: nov(i) = 1 − n_i / |U_train| (1 for items without train
    users). Discounted as in the module docstring.

    YAML: ``simple_metrics: [EPC]``
    """

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        novelty = 1.0 - ctx.item_popularity / max(ctx.n_train_users, 1)
        return user_mean(discounted_relevant_novelty(ctx, k, novelty), ctx.has_relevant)
