"""Evaluate a model's scores the Elliot way: rank every train user once, then every metric at every cutoff.

The recommendation lists are top-``top_k`` over all non-train catalogue items (Elliot's lists);
the metrics are computed for the users with a non-empty held-out set of the chosen part, in the
configured order (``simple_metrics`` then ``complex_metrics``). With
``evaluation.negative_sampling`` the metric values come from the sampled protocol instead
(:mod:`elliot_visual.evaluation.sampled`), with ``<metric>_std`` columns.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from elliot_visual.config.schema import Evaluation
from elliot_visual.data.interactions import HeldOut, Interactions
from elliot_visual.evaluation.metrics.base import Metric, MetricValue, RankingContext, compute_table
from elliot_visual.evaluation.ranking import ScoreFn, TopK, rank
from elliot_visual.evaluation.sampled import evaluate_sampled
from elliot_visual.evaluation.scoring import scores_of
from elliot_visual.models.base import Recommender
from elliot_visual.registry import METRICS

Part = Literal["validation", "test"]


@dataclass
class EvaluationResult:
    """``values`` cutoff -> column -> value (configured order); ``per_user`` cutoff -> metric ->
    {public user id: value} for metrics eligible for paired tests (filled when
    ``paired_ttest`` or ``wilcoxon_test`` is on); ``recommendations`` the full-ranking top-K of
    every train user (None for tasks that rank no item)."""

    values: dict[int, dict[str, float]]
    recommendations: TopK | None
    per_user: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)
    part: Part = "test"


def held_out_part(data: Interactions, part: Part) -> HeldOut:
    """The held-out rows to evaluate on; without a validation split, validation uses test (Elliot)."""
    if part not in ("validation", "test"):
        raise ValueError(f"part must be 'validation' or 'test', got {part!r}")
    if part == "validation" and data.validation is not None:
        return data.validation
    return data.test


def build_metrics(evaluation: Evaluation, names: Sequence[str] | None = None) -> list[Metric]:
    """The configured metrics, constructed: ``simple_metrics`` then ``complex_metrics`` (with options).

    ``names`` restricts to a subset (case-insensitive, in configured order); a name that is not
    configured is still computed, without options.
    """
    configured: list[tuple[str, dict[str, Any]]] = [(METRICS.canonical(n), {}) for n in evaluation.simple_metrics]
    configured += [(METRICS.canonical(c.metric), dict(c.model_extra or {})) for c in evaluation.complex_metrics]
    if names is not None:
        wanted = [METRICS.canonical(n) for n in names]
        chosen = [entry for entry in configured if entry[0] in wanted]
        present = {name for name, _ in chosen}
        chosen += [(name, {}) for name in dict.fromkeys(wanted) if name not in present]
        configured = chosen
    metrics = []
    for name, options in configured:
        try:
            metrics.append(METRICS.get(name)(**options))
        except TypeError as error:
            raise ValueError(f"evaluation.complex_metrics entry {name}: bad options {sorted(options)} "
                             f"({error})") from None
    return metrics


def evaluate(score_fn: Recommender | ScoreFn, data: Interactions, part: Part, evaluation: Evaluation, top_k: int,
             device: torch.device = torch.device("cpu"), metrics: list[str] | None = None,
             features: Mapping[str, np.ndarray] | None = None, *, cutoffs: Sequence[int] | None = None,
             batch_size: int = 1024, progress: bool = False) -> EvaluationResult:
    """Rank every train user once (top ``top_k``) and compute the metrics at every cutoff.

    ``score_fn`` is the model (scored through :mod:`.scoring`: its item side computed once for
    this evaluation, shared by the ranking and the sampled protocol) or any
    ``score_fn(users) -> (len(users), n_items)``; ``metrics`` and
    ``cutoffs`` restrict the computation (cheap per-epoch validation of one metric at one cutoff);
    ``features`` maps a name to an item-aligned array for metrics that need side information (VisDiv).
    """
    held = held_out_part(data, part)
    score_fn = scores_of(score_fn)
    chosen = build_metrics(evaluation, metrics)
    cutoffs = list(cutoffs if cutoffs is not None else evaluation.cutoffs) or [top_k]
    missing_features = [m.name for m in chosen if m.needs_features and not features]
    if missing_features:
        raise ValueError(f"metrics {missing_features} need item features; pass features=... to evaluate()")
    threshold = evaluation.relevance_threshold
    relevance = held.relevance(data.n_users, data.n_items, threshold)
    full_positions = evaluation.negative_sampling is None and any(m.needs_positions for m in chosen)
    top = rank(score_fn, data, top_k, batch_size=batch_size, device=device,
               relevant=relevance if full_positions else None, progress=progress)
    want_per_user = evaluation.paired_ttest or evaluation.wilcoxon_test
    if evaluation.negative_sampling is not None:
        sampled = evaluate_sampled(score_fn, data, held, evaluation.negative_sampling, chosen, cutoffs, top_k,
                                   threshold, part=part, device=device, batch_size=batch_size, features=features)
        per_user = ({k: {col: _by_user_id(data, sampled.users, arr) for col, arr in cols.items()}
                     for k, cols in sampled.per_user.items()} if want_per_user else {})
        return EvaluationResult(values=sampled.values, recommendations=top, per_user=per_user, part=part)
    return evaluate_lists(top, data, part, evaluation, chosen, features, cutoffs=cutoffs, relevance=relevance)


def evaluate_lists(top: TopK, data: Interactions, part: Part, evaluation: Evaluation, metrics: Sequence[Metric],
                   features: Mapping[str, np.ndarray] | None = None, *, cutoffs: Sequence[int] | None = None,
                   relevance: Any = None, per_user: bool | None = None) -> EvaluationResult:
    """The metrics of already ranked lists (``top``, dense indices): what :func:`evaluate` does after
    ranking, also used to add a metric to lists ranked earlier without scoring the model again, and
    by ``elliot-visual visdiv`` on saved lists. ``per_user`` keeps per-user values (default: when
    a paired test is on)."""
    held = held_out_part(data, part)
    cutoffs = list(cutoffs if cutoffs is not None else evaluation.cutoffs) or [top.k]
    if relevance is None:
        relevance = held.relevance(data.n_users, data.n_items, evaluation.relevance_threshold)
    ctx = RankingContext.build(data, held, top, evaluation.relevance_threshold, relevance=relevance,
                               features=features)
    table = compute_table(ctx, list(metrics), cutoffs)
    values = {k: {col: v.value for col, v in row.items()} for k, row in table.items()}
    want_per_user = evaluation.paired_ttest or evaluation.wilcoxon_test if per_user is None else per_user
    users = {k: _per_user_dicts(data, ctx.users, row) for k, row in table.items()} if want_per_user else {}
    return EvaluationResult(values=values, recommendations=top, per_user=users, part=part)


def _per_user_dicts(data: Interactions, users: np.ndarray, row: Mapping[str, MetricValue]
                    ) -> dict[str, dict[str, float]]:
    return {col: _by_user_id(data, users, v.per_user) for col, v in row.items() if v.per_user is not None}


def _by_user_id(data: Interactions, users: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """{public user id: value} for the users with a defined (non-NaN) value."""
    keep = ~np.isnan(values)
    return dict(zip(data.user_ids[users[keep]].tolist(), values[keep].tolist()))
