"""Coverage and distributional diversity, as Elliot computes them (elliot-semantics.md §4).

These are system-wide figures over all evaluated users (users with a non-empty raw held-out set,
whether or not any of their items is relevant). ``c_i`` is the number of evaluated users whose
L_u@k contains item i and ``F = Σ_i c_i`` the number of recommended slots.
"""
from __future__ import annotations

import numpy as np

from elliot_visual.evaluation.metrics.base import Metric, MetricValue, RankingContext, register_metric, \
    system_value


def item_counts(ctx: RankingContext, k: int) -> np.ndarray:
    """(n_items,) c_i: how many evaluated users have item i in their first k recommendations."""
    def build() -> np.ndarray:
        items = ctx.items[:, :k]
        return np.bincount(items[items >= 0], minlength=ctx.n_items)
    return ctx.cached(("item_counts", k), build)


@register_metric("ItemCoverage")
class ItemCoverage(Metric):
    """ItemCoverage@k = |∪_u L_u@k|, the number (a count, not a ratio) of distinct items recommended.

    YAML: ``simple_metrics: [ItemCoverage]``
    """

    per_user_stats = False

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        return system_value(np.count_nonzero(item_counts(ctx, k)))


@register_metric("ItemCoverageRatio")
class ItemCoverageRatio(Metric):
    """ItemCoverageRatio@k = |∪_u L_u@k| / n_items, the catalogue share recommended (not Elliot's).

    Elliot's ``ItemCoverage`` (and the papers' "iCov") is the count; this is its normalised form.
    YAML: ``simple_metrics: [ItemCoverageRatio]``
    """

    per_user_stats = False

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        return system_value(np.count_nonzero(item_counts(ctx, k)) / ctx.n_items)


@register_metric("UserCoverage")
class UserCoverage(Metric):
    """UserCoverage = number of evaluated users with a non-empty recommendation list (ignores k).

    YAML: ``simple_metrics: [UserCoverage]``
    """

    per_user_stats = False

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        return system_value(np.count_nonzero(ctx.lengths(ctx.k) > 0))


@register_metric("UserCoverageRatio")
class UserCoverageRatio(Metric):
    """UserCoverageRatio = UserCoverage / number of evaluated users (not Elliot's; normalised form).

    YAML: ``simple_metrics: [UserCoverageRatio]``
    """

    per_user_stats = False

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        covered = np.count_nonzero(ctx.lengths(ctx.k) > 0)
        return system_value(covered / ctx.n_users if ctx.n_users else float("nan"))


@register_metric("UserCoverageAtN")
class UserCoverageAtN(Metric):
    """UserCoverageAtN@k = number of evaluated users whose full list has at least k items.

    YAML: ``simple_metrics: [UserCoverageAtN]``
    """

    per_user_stats = False

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        return system_value(np.count_nonzero(ctx.lengths(ctx.k) >= k))


@register_metric("Gini")
class Gini(Metric):
    """Elliot's "Gini" = 1 − Gini index of the recommendation counts (higher = more equal).

    With the n_rec recommended items' counts sorted ascending c_(0..n_rec−1), I = n_items and the
    never-recommended items as implicit zeros below them:
    Gini = 1 − [Σ_j (2(j + I − n_rec + 1) − I − 1) · c_(j) / F] / (I − 1).
    YAML: ``simple_metrics: [Gini]``
    """

    per_user_stats = False

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        counts = item_counts(ctx, k)
        total = counts.sum()
        n = ctx.n_items
        if n < 2:
            return system_value(float("nan"))
        if total == 0:  # nothing recommended: Elliot's sum is empty, so 1 - 0
            return system_value(1.0)
        recommended = np.sort(counts[counts > 0]).astype(np.float64)
        j = np.arange(recommended.shape[0])
        weights = 2.0 * (j + n - recommended.shape[0] + 1) - n - 1
        gini = float((weights * recommended / total).sum()) / (n - 1)
        return system_value(1.0 - gini)


@register_metric("SEntropy")
class SEntropy(Metric):
    """Shannon entropy of recommendations, Elliot's form:
    Σ_i w_i · (−log2(c_i / F)) / n_users, with w_i = Σ_{u : i ∈ L_u@k} 1 / |L_u@k| and n_users all
    evaluated users.

    YAML: ``simple_metrics: [SEntropy]``
    """

    per_user_stats = False

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        counts = item_counts(ctx, k)
        total = counts.sum()
        if total == 0:
            return system_value(float("nan") if ctx.n_users == 0 else 0.0)
        items = ctx.items[:, :k]
        lengths = ctx.lengths(k)
        per_slot = np.broadcast_to((1.0 / np.maximum(lengths, 1))[:, None], items.shape)
        valid = items >= 0
        weights = np.bincount(items[valid], weights=per_slot[valid], minlength=ctx.n_items)
        seen = counts > 0
        novelty = -np.log2(counts[seen] / total)
        return system_value(float((weights[seen] * novelty).sum()) / ctx.n_users)
