"""The metric protocol: a class, registered by its Elliot name, computing one figure from a context.

A metric is constructed with its options (the extra keys of a ``complex_metrics`` entry; none for
``simple_metrics``) and computes ``compute(ctx, k) -> MetricValue`` from a :class:`RankingContext`,
which holds everything vectorised: the evaluated users, their top-K matrix, the relevance of the
held-out items, full-rank positions, train popularity. Formulas are written over the
(n_users, k) hit matrix, as RecBole does, and follow Elliot's definitions exactly
(``/work/shared/reference/elliot-semantics.md`` §4).

Vocabulary used in every docstring: ``L_u@k`` the first k recommended items of u (0-based rank r),
``Rel_u`` the held-out items of u with rating >= ``relevance_threshold`` (items outside the
catalogue included), ``disc(r) = 1 / log2(r + 2)``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, TypeVar

import numpy as np
import scipy.sparse as sp

from elliot_visual.data.interactions import HeldOut, Interactions
from elliot_visual.evaluation.ranking import TopK, csr_row_entries, csr_row_search
from elliot_visual.registry import METRICS

M = TypeVar("M", bound=type)


@dataclass(frozen=True)
class MetricValue:
    """One metric at one cutoff: the reported ``value`` and, for per-user metrics, ``per_user``.

    ``per_user`` is aligned with :attr:`RankingContext.users`; ``NaN`` marks a user the metric
    does not average over (e.g. no relevant item). It feeds the paired significance tests.
    """

    value: float
    per_user: np.ndarray | None = None


class Metric:
    """Base of every metric. Subclasses set the class attributes and implement :meth:`compute`.

    ``per_user_stats``: the metric is a mean of per-user values and can enter paired t-tests /
    Wilcoxon (False for system-wide figures such as AUC, ItemCoverage, Gini, as in Elliot).
    ``needs_positions``: it reads full-rank positions of relevant items (AUC, GAUC).
    ``needs_features``: it reads ``ctx.features`` (item-aligned side information).
    ``higher_is_better``: the direction a summary table marks as best (False for popularity bias: ARP).
    """

    name: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    per_user_stats: ClassVar[bool] = True
    needs_positions: ClassVar[bool] = False
    needs_features: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        if options:
            raise ValueError(f"metric {self.name} takes no options, got {sorted(options)}; "
                             "remove them from its evaluation.complex_metrics entry")

    def compute(self, ctx: "RankingContext", k: int) -> MetricValue:
        """The metric at cutoff ``k`` (k <= ctx.k)."""
        raise NotImplementedError

    def column(self, k: int) -> str:
        """Header of this metric's column in the performance TSV."""
        return self.name


def register_metric(name: str) -> Callable[[M], M]:
    """Class decorator: register a :class:`Metric` under its Elliot name and set ``cls.name``."""

    def add(cls: M) -> M:
        cls.name = name
        METRICS.register(name, cls)
        return cls

    return add


@dataclass(frozen=True)
class Ragged:
    """Rows of varying length: row ``u`` is ``values[indptr[u]:indptr[u + 1]]``."""

    indptr: np.ndarray
    values: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def rows(self) -> np.ndarray:
        """(n_values,) the row of every value."""
        return np.repeat(np.arange(self.indptr.shape[0] - 1), self.lengths)

    def ranks(self) -> np.ndarray:
        """(n_values,) 0-based position of every value within its row."""
        return np.arange(self.values.shape[0]) - np.repeat(self.indptr[:-1], self.lengths)


@dataclass(frozen=True, eq=False)
class RankingContext:
    """Everything a metric needs, one row per evaluated user (see the module docstring).

    Shapes: n evaluated users, K = recommendation list length, I = ``n_items``.
    ``users`` (n,) dense indices, ``user_ids`` (n,) public ids; ``items`` (n, K) top-K dense item
    indices (-1 padding); ``relevance`` (n, I) CSR of the ratings of relevant in-catalogue items
    (sorted indices, rating-0 entries kept); ``n_relevant`` (n,) |Rel_u| counting items outside the
    catalogue; ``relevant_ratings`` ratings of all of Rel_u per user, sorted descending;
    ``positions`` 0-based full-rank position of every ``relevance`` entry (CSR order) or None;
    ``n_candidates`` (n,) rankable items per user (I - |train_u| in full ranking);
    ``train_size`` (n,) |train_u|; ``item_popularity`` (I,) #train users per item;
    ``n_train_users`` users in the train set.
    """

    users: np.ndarray
    user_ids: np.ndarray
    items: np.ndarray
    relevance: sp.csr_matrix
    n_relevant: np.ndarray
    relevant_ratings: Ragged
    n_candidates: np.ndarray
    train_size: np.ndarray
    item_popularity: np.ndarray
    n_items: int
    n_train_users: int
    relevance_threshold: float
    positions: np.ndarray | None = None
    train: sp.csr_matrix | None = None
    features: Mapping[str, np.ndarray] | None = None
    data: Interactions | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, data: Interactions, held_out: HeldOut, top: TopK, relevance_threshold: float, *,
              relevance: sp.csr_matrix | None = None, n_candidates: np.ndarray | None = None,
              features: Mapping[str, np.ndarray] | None = None) -> "RankingContext":
        """The context of the users with a non-empty raw held-out set (Elliot's evaluated users).

        ``top`` must contain those users. ``relevance`` is the (n_users, I) matrix whose
        positions ``top.positions`` holds (default: built from ``held_out``); ``n_candidates``
        is aligned with ``top.users`` (default: full ranking, I - |train_u|).
        """
        users = held_out.user_set()
        row_in_top = np.full(data.n_users, -1, dtype=np.int64)
        row_in_top[top.users] = np.arange(top.users.shape[0])
        rows = row_in_top[users]
        if (rows < 0).any():
            missing = data.user_ids[users[rows < 0]]
            raise ValueError(f"{missing.shape[0]} evaluated users were not ranked (first: {missing[0]}); "
                             "rank every user with a held-out row")
        if relevance is None:
            relevance = held_out.relevance(data.n_users, data.n_items, relevance_threshold)
        relevance = sp.csr_matrix(relevance)
        relevance.sort_indices()
        positions = None
        if top.positions is not None:
            _, _, offsets = csr_row_entries(relevance[top.users], rows)
            positions = top.positions[offsets]
        train_size = np.diff(data.train.indptr)[users]
        if n_candidates is None:
            cand = data.n_items - train_size
        else:
            cand = np.asarray(n_candidates)[rows]
        keep = held_out.ratings >= relevance_threshold
        order = np.lexsort((-held_out.ratings[keep], held_out.users[keep]))
        rel_users = held_out.users[keep][order]
        rel_ratings = held_out.ratings[keep][order]
        local = np.searchsorted(users, rel_users)
        indptr = np.concatenate(([0], np.cumsum(np.bincount(local, minlength=users.shape[0]))))
        return cls(users=users, user_ids=data.user_ids[users], items=top.items[rows],
                   relevance=relevance[users], n_relevant=np.diff(indptr),
                   relevant_ratings=Ragged(indptr, rel_ratings), n_candidates=cand,
                   train_size=train_size, item_popularity=data.item_popularity,
                   n_items=data.n_items, n_train_users=data.n_users,
                   relevance_threshold=float(relevance_threshold), positions=positions,
                   train=data.train, features=features, data=data)

    # --- shared derived arrays (computed once per context) ---------------------------------
    @property
    def n_users(self) -> int:
        return int(self.users.shape[0])

    @property
    def k(self) -> int:
        return int(self.items.shape[1])

    @cached_property
    def has_relevant(self) -> np.ndarray:
        """(n,) users with at least one relevant held-out item (those accuracy metrics average)."""
        return self.n_relevant > 0

    @cached_property
    def valid(self) -> np.ndarray:
        """(n, K) the list has an item at this rank."""
        return self.items >= 0

    @cached_property
    def hit_ratings(self) -> np.ndarray:
        """(n, K) rating of the recommended item if it is relevant, else NaN."""
        rows = np.repeat(np.arange(self.n_users), self.k)
        flat = self.items.ravel()
        out = np.full(flat.shape[0], np.nan)
        ok = flat >= 0
        found, before = csr_row_search(self.relevance, rows[ok], flat[ok])
        offsets = self.relevance.indptr[rows[ok]] + before
        values = np.full(found.shape[0], np.nan)
        values[found] = self.relevance.data[offsets[found]]
        out[ok] = values
        return out.reshape(self.items.shape)

    @cached_property
    def hits(self) -> np.ndarray:
        """(n, K) bool: the recommended item at this rank is relevant."""
        return ~np.isnan(self.hit_ratings)

    def lengths(self, k: int) -> np.ndarray:
        """(n,) |L_u@k|: number of recommended items within the first k."""
        return self.valid[:, :k].sum(axis=1)

    @staticmethod
    def discount(k: int) -> np.ndarray:
        """(k,) disc(r) = 1 / log2(r + 2) for r = 0..k-1 (Elliot's logarithmic ranking discount)."""
        return 1.0 / np.log2(np.arange(k) + 2.0)

    def gain(self, ratings: np.ndarray) -> np.ndarray:
        """Elliot's graded gain 2^(r - t + 1) - 1 of ratings r >= threshold t."""
        return np.power(2.0, ratings - self.relevance_threshold + 1.0) - 1.0

    @cached_property
    def neg_count(self) -> np.ndarray:
        """(n,) N_neg = n_candidates - |Rel_u| + 1, Elliot's AUC denominator."""
        return (self.n_candidates - self.n_relevant + 1).astype(np.float64)

    def require_positions(self, metric: str) -> np.ndarray:
        if self.positions is None:
            raise ValueError(f"{metric} needs full-rank positions of the relevant items; "
                             "rank with relevant=... (evaluate() does this when the metric is configured)")
        return self.positions

    def cached(self, key: Any, build: Callable[[], Any]) -> Any:
        """A value shared by several metrics (e.g. item counts at k), computed once."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]


def user_mean(values: np.ndarray, mask: np.ndarray) -> MetricValue:
    """Elliot's macro average: mean of ``values`` over the users in ``mask`` (NaN when none)."""
    values = np.asarray(values, dtype=np.float64)
    chosen = values[mask]
    value = float(chosen.mean()) if chosen.size else float("nan")
    return MetricValue(value=value, per_user=np.where(mask, values, np.nan))


def system_value(value: float) -> MetricValue:
    """A system-wide figure without per-user values."""
    return MetricValue(value=float(value), per_user=None)


def compute_table(ctx: RankingContext, metrics: Sequence[Metric], cutoffs: Sequence[int]
                  ) -> dict[int, dict[str, MetricValue]]:
    """cutoff -> column -> value, metrics in the given order; ``per_user`` kept only for metrics
    eligible for paired tests (``per_user_stats``)."""
    too_long = [k for k in cutoffs if k > ctx.k]
    if too_long:
        raise ValueError(f"cutoffs {too_long} exceed the recommendation list length top_k={ctx.k}")
    table: dict[int, dict[str, MetricValue]] = {}
    for k in cutoffs:
        row: dict[str, MetricValue] = {}
        for metric in metrics:
            value = metric.compute(ctx, k)
            if not metric.per_user_stats and value.per_user is not None:
                value = MetricValue(value.value, None)
            row[metric.column(k)] = value
        table[k] = row
    return table
