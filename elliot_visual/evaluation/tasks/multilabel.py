"""The multilabel task: from a user's set of items, predict the labels (categories) she buys from.

Inputs are the user's items in the evaluated part (a user-level split holds out whole users), the
target the union of those items' labels (the ``item_labels`` feature the model reads); metrics are
Precision, Recall and F1 at k over labels (:mod:`elliot_visual.evaluation.metrics.labels`), named
in ``evaluation.simple_metrics`` as for ranking. No item is ranked, so the task writes its own
report table (``multilabel_cutoff_<k>_...tsv``) and no recommendation lists.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from elliot_visual.data.interactions import Interactions
from elliot_visual.data.samplers import held_out_sets, user_sets
from elliot_visual.evaluation.evaluator import EvaluationResult, held_out_part
from elliot_visual.evaluation.metrics.labels import LABEL_METRICS, label_metrics, label_metrics_per_user
from elliot_visual.evaluation.tasks.base import Part, Task, register_task
from elliot_visual.models.base import Recommender
from elliot_visual.registry import METRICS

_USERS_PER_BATCH = 256
_EVAL_SEED = 0  # subsampling of sets longer than the model's max_set_size at evaluation


@register_task("multilabel")
class MultilabelTask(Task):
    """User-level multi-label classification, P/R/F1@k over labels."""

    table = "multilabel"

    def metric_names(self) -> list[str]:
        return [m for m in super().metric_names() if m in LABEL_METRICS]

    def trial_metrics(self) -> list[str]:
        return self.metric_names()

    def selectable(self) -> list[str]:
        return self.metric_names()

    def predictions(self, model: Recommender, data: Interactions, part: Part,
                    labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, scores (n, D), targets (n, D)) for every user with an item in ``part``."""
        sets = held_out_sets(data, held_out_part(data, part))
        users = np.flatnonzero(np.diff(sets.indptr) > 0)
        limit = int(getattr(model.params, "max_set_size", 0)) or max(1, int(np.diff(sets.indptr).max(initial=1)))
        rng = np.random.default_rng(_EVAL_SEED)
        scores, targets = [], []
        for start in range(0, len(users), _USERS_PER_BATCH):
            batch = user_sets(sets, users[start:start + _USERS_PER_BATCH], labels, limit, rng)
            with torch.inference_mode():
                scores.append(model.predict(batch.to(self.settings.device)).float().cpu().numpy())
            targets.append(batch.targets.numpy())
        width = labels.shape[1]
        return (users, np.concatenate(scores) if scores else np.zeros((0, width)),
                np.concatenate(targets) if targets else np.zeros((0, width)))

    def evaluate(self, model: Recommender, data: Interactions, part: Part, *,
                 metrics: Sequence[str] | None = None, cutoffs: Sequence[int] | None = None,
                 features: Mapping[str, np.ndarray] | None = None,
                 inputs: Mapping[str, Tensor] | None = None) -> EvaluationResult:
        if not inputs or "item_labels" not in inputs:
            raise ValueError(f"{model.family}: the multilabel task needs the item_labels feature; list it in the "
                             "model's needs and add an ItemLabels entry under data_config.side_information")
        names = [METRICS.canonical(m) for m in metrics] if metrics is not None else self.metric_names()
        unknown = [m for m in names if m not in LABEL_METRICS]
        if unknown:
            raise ValueError(f"the multilabel task computes {', '.join(LABEL_METRICS)} over labels, not "
                             f"{', '.join(unknown)}; list those under evaluation.simple_metrics")
        cutoffs = list(cutoffs if cutoffs is not None else self.evaluation.cutoffs)
        users, scores, targets = self.predictions(model, data, part, inputs["item_labels"].cpu().numpy())
        values = label_metrics(scores, targets, cutoffs, names)
        per_user: dict[int, dict[str, dict[str, float]]] = {}
        if self.evaluation.paired_ttest or self.evaluation.wilcoxon_test:
            for k in cutoffs:
                rows = label_metrics_per_user(scores, targets, k)
                per_user[k] = {name: {str(data.user_ids[u]): float(v) for u, v in zip(users, rows[name])
                                      if not np.isnan(v)} for name in names}
        return EvaluationResult(values=values, recommendations=None, per_user=per_user, part=part)
