"""Accuracy metrics, as Elliot computes them (elliot-semantics.md §4).

All but AUC are macro averages: the per-user value is averaged over the evaluated users with at
least one relevant held-out item. ``H`` below is the (n_users, k) hit matrix (``H[u, r]`` = the
item at rank r of u's list is in Rel_u); lists shorter than k simply have fewer hits.
"""
from __future__ import annotations

import numpy as np

from elliot_visual.evaluation.metrics.base import Metric, MetricValue, RankingContext, register_metric, \
    system_value, user_mean


def _hit_counts(ctx: RankingContext, k: int) -> np.ndarray:
    """(n,) |L_u@k ∩ Rel_u|."""
    return ctx.cached(("hit_counts", k), lambda: ctx.hits[:, :k].sum(axis=1))


def _per_relevant(ctx: RankingContext, k: int) -> np.ndarray:
    """(n,) hits / |Rel_u| (0 for users without relevant items; they are not averaged)."""
    return _hit_counts(ctx, k) / np.maximum(ctx.n_relevant, 1)


@register_metric("Precision")
class Precision(Metric):
    """Precision@k = |L_u@k ∩ Rel_u| / k (k, not the list length), mean over users with Rel_u ≠ ∅.

    YAML: ``simple_metrics: [Precision]``
    """

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        return user_mean(_hit_counts(ctx, k) / k, ctx.has_relevant)


@register_metric("Recall")
class Recall(Metric):
    """Recall@k = |L_u@k ∩ Rel_u| / |Rel_u| (Rel_u counts items outside the catalogue), user mean.

    YAML: ``simple_metrics: [Recall]``
    """

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        return user_mean(_per_relevant(ctx, k), ctx.has_relevant)


@register_metric("F1")
class F1(Metric):
    """F1@k = 2·P·R / (P + R) with P = hits/k, R = hits/|Rel_u|; 0 when P + R = 0. User mean.

    YAML: ``simple_metrics: [F1]``
    """

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        precision = _hit_counts(ctx, k) / k
        recall = _per_relevant(ctx, k)
        total = precision + recall
        f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
        return user_mean(f1, ctx.has_relevant)


@register_metric("HR")
class HR(Metric):
    """Hit rate HR@k = 1 if |L_u@k ∩ Rel_u| > 0 else 0, user mean.

    YAML: ``simple_metrics: [HR]``
    """

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        return user_mean((_hit_counts(ctx, k) > 0).astype(np.float64), ctx.has_relevant)


@register_metric("MRR")
class MRR(Metric):
    """MRR@k = 1 / (r + 1) for the first relevant item of L_u@k (0-based rank r), else 0. User mean.

    YAML: ``simple_metrics: [MRR]``
    """

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        hits = ctx.hits[:, :k]
        first = hits.argmax(axis=1)
        rr = np.where(hits.any(axis=1), 1.0 / (first + 1.0), 0.0)
        return user_mean(rr, ctx.has_relevant)


@register_metric("MAP")
class MAP(Metric):
    """MAP@k = (1/k) · Σ_{n=1..k} Precision@n, Precision@n = |L_u@n ∩ Rel_u| / n. User mean.

    Elliot averages the precision at *every* position 1..k, not only at the relevant ones.
    YAML: ``simple_metrics: [MAP]``
    """

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        precision_at = np.cumsum(ctx.hits[:, :k], axis=1) / np.arange(1, k + 1)
        return user_mean(precision_at.sum(axis=1) / k, ctx.has_relevant)


@register_metric("nDCG")
class NDCG(Metric):
    """nDCG@k = DCG / IDCG (0 when DCG = 0), user mean; Elliot's graded gains.

    DCG = Σ_{r<k} g(L[r]) · disc(r) with g(i) = 2^(rating_ui − t + 1) − 1 for relevant i (t the
    relevance threshold), 0 otherwise; IDCG = Σ_{r < min(k, |Rel_u|)} g_(r) · disc(r) over Rel_u's
    gains sorted descending (items outside the catalogue included).
    YAML: ``simple_metrics: [nDCG]``
    """

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        disc = ctx.discount(k)
        ratings = ctx.hit_ratings[:, :k]
        gains = np.where(np.isnan(ratings), 0.0, ctx.gain(np.nan_to_num(ratings)))
        dcg = (gains * disc).sum(axis=1)
        ranked = ctx.relevant_ratings
        ranks = ranked.ranks()
        top = ranks < k
        idcg = np.bincount(ranked.rows()[top], weights=ctx.gain(ranked.values[top]) * disc[ranks[top]],
                           minlength=ctx.n_users)
        ndcg = np.divide(dcg, idcg, out=np.zeros_like(dcg), where=dcg > 0)
        return user_mean(ndcg, ctx.has_relevant)


def _auc_terms(ctx: RankingContext, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per (user, relevant in-catalogue item) pair: (row, (N_neg − R + p) / N_neg).

    R is the item's 0-based position in the user's full ranking, p the number of the user's
    relevant items ranked before it, N_neg = n_candidates − |Rel_u| + 1.
    """
    positions = ctx.require_positions(metric)

    def build() -> tuple[np.ndarray, np.ndarray]:
        rows = np.repeat(np.arange(ctx.n_users), np.diff(ctx.relevance.indptr))
        order = np.lexsort((positions, rows))
        rows_sorted, ranked = rows[order], positions[order]
        before = np.arange(rows_sorted.shape[0]) - ctx.relevance.indptr[rows_sorted]
        neg = ctx.neg_count[rows_sorted]
        return rows_sorted, (neg - ranked + before) / neg

    return ctx.cached("auc_terms", build)


@register_metric("AUC")
class AUC(Metric):
    """Global AUC: micro average over every (user, relevant in-catalogue item) pair of
    (N_neg − R + p) / N_neg, R the item's full-rank position, p the number of the user's relevant
    items ranked above it, N_neg = n_items − |train_u| − |Rel_u| + 1. Relevant items outside the
    catalogue are skipped (not counted as 0). Cutoff-independent; no per-user values (as Elliot).

    YAML: ``simple_metrics: [AUC]``
    """

    per_user_stats = False
    needs_positions = True

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        _, terms = _auc_terms(ctx, self.name)
        return system_value(terms.mean() if terms.size else float("nan"))


@register_metric("GAUC")
class GAUC(Metric):
    """Group AUC: per user Σ (N_neg − R + p) / N_neg over her relevant in-catalogue items, divided
    by |Rel_u| (items outside the catalogue count in |Rel_u| only); user mean. Cutoff-independent.

    YAML: ``simple_metrics: [GAUC]``
    """

    needs_positions = True

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        rows, terms = _auc_terms(ctx, self.name)
        per_user = np.bincount(rows, weights=terms, minlength=ctx.n_users) / np.maximum(ctx.n_relevant, 1)
        return user_mean(per_user, ctx.has_relevant)


@register_metric("LAUC")
class LAUC(Metric):
    """Limited AUC@k: Σ over relevant items at rank r < k of (N_neg − r + p) / N_neg (p = relevant
    items above it), divided by min(k, |Rel_u|); user mean.

    YAML: ``simple_metrics: [LAUC]``
    """

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        hits = ctx.hits[:, :k]
        before = np.cumsum(hits, axis=1) - 1
        neg = ctx.neg_count[:, None]
        terms = np.where(hits, (neg - np.arange(k) + before) / neg, 0.0).sum(axis=1)
        per_user = terms / np.maximum(np.minimum(k, ctx.n_relevant), 1)
        return user_mean(per_user, ctx.has_relevant)
