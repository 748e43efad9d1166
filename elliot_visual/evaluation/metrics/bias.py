"""Popularity-bias metrics of Abdollahpouri et al., as Elliot computes them (elliot-semantics.md §4).

Popularity φ(i) = number of train users who interacted with i. The short head is the most popular
items (by φ descending, ties by item index) taken until their cumulated popularity reaches 80% of
the train interactions, the item that crosses the line included; every other catalogue item
(never-seen items too) is the long tail. These average over **all** evaluated users, whether or
not any of their held-out items is relevant.
"""
from __future__ import annotations

import numpy as np

from elliot_visual.evaluation.metrics.base import Metric, MetricValue, RankingContext, register_metric, \
    user_mean

SHORT_HEAD_SHARE = 0.8


def long_tail_mask(popularity: np.ndarray, share: float = SHORT_HEAD_SHARE) -> np.ndarray:
    """(n_items,) True for long-tail items (see the module docstring)."""
    order = np.argsort(-popularity, kind="stable")
    cumulated = np.cumsum(popularity[order])
    limit = popularity.sum() * share
    head_size = int(np.searchsorted(cumulated, limit, side="left")) + 1
    tail = np.ones(popularity.shape[0], dtype=bool)
    tail[order[:head_size]] = False
    return tail


def _long_tail_in_list(ctx: RankingContext, k: int) -> np.ndarray:
    """(n,) |L_u@k ∩ LongTail|."""
    tail = ctx.cached("long_tail", lambda: long_tail_mask(ctx.item_popularity))
    items = ctx.items[:, :k]
    return ((items >= 0) & tail[np.maximum(items, 0)]).sum(axis=1)


def _all_users(ctx: RankingContext) -> np.ndarray:
    return np.ones(ctx.n_users, dtype=bool)


@register_metric("ARP")
class ARP(Metric):
    """Average Recommendation Popularity: Σ_{i ∈ L_u@k} φ(i) / |L_u@k| (0 for an empty list),
    mean over all evaluated users.

    YAML: ``simple_metrics: [ARP]``
    """

    higher_is_better = False  # the popularity of what is recommended: lower is less popularity bias

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        items = ctx.items[:, :k]
        pop = np.where(items >= 0, ctx.item_popularity[np.maximum(items, 0)], 0).sum(axis=1)
        lengths = ctx.lengths(k)
        arp = np.divide(pop, lengths, out=np.zeros(ctx.n_users), where=lengths > 0)
        return user_mean(arp, _all_users(ctx))


@register_metric("APLT")
class APLT(Metric):
    """Average Percentage of Long Tail items: |L_u@k ∩ LongTail| / |L_u@k| (0 for an empty list),
    mean over all evaluated users.

    YAML: ``simple_metrics: [APLT]``
    """

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        lengths = ctx.lengths(k)
        share = np.divide(_long_tail_in_list(ctx, k), lengths, out=np.zeros(ctx.n_users), where=lengths > 0)
        return user_mean(share, _all_users(ctx))


@register_metric("ACLT")
class ACLT(Metric):
    """Average Coverage of Long Tail items: |L_u@k ∩ LongTail|, mean over all evaluated users.

    YAML: ``simple_metrics: [ACLT]``
    """

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        return user_mean(_long_tail_in_list(ctx, k), _all_users(ctx))
