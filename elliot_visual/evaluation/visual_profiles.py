"""Visual profiles: a few users' VisDiv maps, computed here and drawn by ``reports/figures.py``.

A profile is what the study's Figure 2 shows for one user under one model: her training
positives and her top-k in a 2-D t-SNE map of item visual features, and the distance between the
two centroids (her VisDiv). The t-SNE runs here (evaluation computes, reports only draw), through
the same :class:`~elliot_visual.evaluation.metrics.visdiv.VisDivEngine` as the metric, so a
picture shows the number in the performance table.

Two callers: the experiment runner, after tuning, for each model entry's best configuration
(:func:`best_model_profiles`); and ``elliot-visual visdiv``, for saved recommendation files
(:func:`visual_profiles`). The users drawn are each VisDiv entry's ``figure_users``, or
``figure_sample`` users drawn with ``figure_seed`` among those with positives and
recommendations under every model, the same users for every model and entry so that a grid
compares like with like.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from elliot_visual.config.schema import Evaluation
from elliot_visual.data.interactions import Interactions
from elliot_visual.evaluation.metrics.visdiv import (UserProjection, VisDiv, VisDivEngine, pick_users,
                                                     positives_in_training_order)
from elliot_visual.evaluation.ranking import TopK
from elliot_visual.registry import METRICS

if TYPE_CHECKING:
    from elliot_visual.config.schema import Evaluation

log = logging.getLogger(__name__)


class ItemFeatures(Protocol):
    """What VisDiv reads from a feature store: ``get(loader_name, kind) -> (n_items, ...)``."""

    def get(self, loader_name: str, kind: str) -> np.ndarray: ...


@dataclass(frozen=True)
class ProfileMap:
    """One user's map under one model for one VisDiv entry.

    ``model`` names the model in file names, ``title`` in the picture; ``entry`` is the VisDiv
    column (``VisDiv[global,resnet50]``) at cutoff ``k``; ``shared_map`` is true when the
    coordinates come from one catalogue-wide map (``global``/``identity``), so panels of one user
    can share axes.
    """

    model: str
    title: str
    entry: str
    k: int
    projection: UserProjection
    shared_map: bool

    @property
    def user_id(self) -> str:
        return self.projection.user_id


def visdiv_entries(evaluation: Evaluation) -> list[VisDiv]:
    """The ``VisDiv`` entries of ``evaluation.complex_metrics``, constructed (none: an empty list)."""
    return [METRICS.get(entry.metric)(**dict(entry.model_extra or {}))
            for entry in evaluation.complex_metrics if METRICS.canonical(entry.metric) == "VisDiv"]


def engine_for(metric: VisDiv, store: ItemFeatures, data: Interactions) -> VisDivEngine:
    """The VisDiv engine of one entry, on the store's features aligned to ``data``."""
    options = metric.options
    source = f"{options.loader}-{options.kind}"
    origin = getattr(store, "source", None)
    if origin is not None:  # a FeatureStore: name the cached map after the feature file it came from
        source += "-" + Path(str(origin(options.loader, options.kind).origin)).name
    return VisDivEngine(options, store.get(options.loader, options.kind), data.item_ids,
                        train_items=data.train_item_mask, source=source)


def evaluated_lists(data: Interactions, top: TopK) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Users with a test row: dense indices (n,), their train items in training order, their lists (n, K).

    A user absent from ``top`` gets an empty list (``-1``), as in an evaluation.
    """
    users = data.test.user_set()
    row = np.full(data.n_users, -1, dtype=np.int64)
    row[top.users] = np.arange(top.users.shape[0])
    items = np.full((users.shape[0], top.k), -1, dtype=np.int64)
    ranked = row[users] >= 0
    items[ranked] = top.items[row[users[ranked]]]
    return users, positives_in_training_order(data, users), items


def visual_profiles(data: Interactions, recommendations: Mapping[str, TopK], metrics: Sequence[VisDiv],
                    engines: Sequence[VisDivEngine], default_cutoffs: Sequence[int],
                    titles: Mapping[str, str] | None = None) -> list[ProfileMap]:
    """Every (entry, model, user) map for the chosen users, entry by entry, model by model.

    Each entry draws at its largest cutoff (``cutoffs`` option, else ``default_cutoffs``); users
    come from the first entry naming ``figure_users``, else the first entry's seeded sample.
    """
    if not recommendations or not metrics:
        return []
    evaluated = {model: evaluated_lists(data, top) for model, top in recommendations.items()}
    users = next(iter(evaluated.values()))[0]
    eligible = np.ones(users.shape[0], dtype=bool)
    for _, positives, items in evaluated.values():
        eligible &= np.array([len(p) > 0 for p in positives], dtype=bool) & (items >= 0).any(axis=1)
    lead = next((m for m in metrics if m.options.figure_users), metrics[0])
    rows = pick_users(data.user_ids[users], lead.options.figure_users, lead.options.figure_sample,
                      lead.options.figure_seed, eligible)
    if rows.size == 0:
        log.warning("VisDiv pictures: no user has training positives and recommendations under every model")
        return []
    ids = [str(u) for u in data.user_ids[users[rows]]]
    maps: list[ProfileMap] = []
    for metric, engine in zip(metrics, engines):
        k = max(metric.options.cutoffs or default_cutoffs)
        shared = metric.options.projection != "per_user"
        for model, (_, positives, items) in evaluated.items():
            for projection in engine.profiles([positives[r] for r in rows], items[rows], k, ids):
                maps.append(ProfileMap(model, (titles or {}).get(model, model), metric.column(k), k,
                                       projection, shared))
    return maps


def top_k_from_public_ids(data: Interactions, user_ids: np.ndarray, item_ids: np.ndarray) -> TopK:
    """Lists in public ids ((n,) users, (n, K) items, ``None`` padding) as a :class:`TopK` on ``data``.

    Users unknown to ``data`` are left out; an item unknown to its catalogue is an error naming it.
    """
    item_ids = np.asarray(item_ids, dtype=object)
    user_rows = pd.Series(np.asarray(user_ids, dtype=object)).map(data.user_index)
    kept = user_rows.notna().to_numpy()
    public = pd.Series(item_ids[kept].ravel())
    index = public.map(data.item_index)
    unknown = public[index.isna() & public.notna()].unique()
    if unknown.size:
        raise ValueError(f"{unknown.size} recommended items are not in the dataset's catalogue "
                         f"(first: {', '.join(map(str, unknown[:10]))})")
    items = index.fillna(-1).to_numpy(np.int64).reshape(int(kept.sum()), item_ids.shape[1])
    users = user_rows[kept].to_numpy(np.int64)
    scores = np.where(items >= 0, 0.0, -np.inf).astype(np.float32)
    return TopK(users=users, items=items, scores=scores)


def best_model_profiles(evaluation: "Evaluation", outcomes: Sequence[Any], folds: Sequence[Sequence[Interactions]],
                        features: Any) -> list[ProfileMap]:
    """The runner's pictures: each model entry's best configuration, on the split it was tested on.

    ``outcomes`` are the tuner's (anything with ``.family``, ``.best.params`` and
    ``.best.recommendations`` in public ids); ``features`` has ``store(split)``. Nothing is
    computed when the config has no VisDiv entry or no model kept its lists.
    """
    metrics = visdiv_entries(evaluation)
    outcomes = [o for o in outcomes if o.best.recommendations is not None]
    if not metrics or not outcomes:
        return []
    if len(folds) > 1 or len(folds[0]) > 1:
        log.warning("VisDiv pictures use the first test fold's last validation fold (of %d x %d)",
                    len(folds), len(folds[0]))
    data = folds[0][-1]
    store = features.store(data)
    engines = [engine_for(m, store, data) for m in metrics]
    recommendations: dict[str, TopK] = {}
    titles: dict[str, str] = {}
    for outcome in outcomes:
        loader = getattr(outcome, "loader", None)
        model = f"{outcome.family}_{loader}" if loader else outcome.family
        if model in recommendations:  # two entries of one family on one backbone: the full names
            model = outcome.best.name
        lists = outcome.best.recommendations
        recommendations[model] = top_k_from_public_ids(data, lists.user_ids, lists.item_ids)
        titles[model] = f"{outcome.family} · {loader}" if loader else outcome.family
    return visual_profiles(data, recommendations, metrics, engines, evaluation.cutoffs, titles)
