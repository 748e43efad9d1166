"""The ``auc`` task: He & McAuley's exact AUC over all items, and its "Cold Start" column.

AUC = 1/|U| Σ_u 1/|E(u)| Σ_{j ∈ E(u)} δ(x_ui(t) > x_uj(t))  (VBPR eq. 3; TVBPR and I-TVBPR use it),
with i the user's test item, E(u) every catalogue item outside her train, validation and test
items, and t the test event's time (temporal models score with that time epoch's parameters).
``AUC_cold`` is the same average over the users whose test item has at most
``evaluation.exact_auc.cold_max_feedback`` train interactions. A user with several test items
averages over them. Ties count 0 (``strict``, the papers: a constant scorer gets 0, and POP scores
below 0.5 as in Packer et al.'s Table 2) or 1/2 (``half``). This is not Elliot's AUC, which keeps
validation items among the negatives and breaks ties by item index; both columns are written to
the ``rec_cutoff_<k>`` tables like the other ranking metrics (the same values at every cutoff).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from elliot_visual.data.interactions import Interactions
from elliot_visual.data.negatives import excluded_items
from elliot_visual.evaluation.evaluator import EvaluationResult, held_out_part
from elliot_visual.evaluation.tasks.base import Part, Task, register_task, score_function
from elliot_visual.models.base import Recommender

AUC_COLUMNS = ("AUC", "AUC_cold")
_USERS_PER_BLOCK = 512


@register_task("auc")
class ExactAUCTask(Task):
    """Exact AUC over all non-interacted items, overall and on cold test items."""

    def metric_names(self) -> list[str]:
        return list(AUC_COLUMNS)

    def trial_metrics(self) -> list[str]:
        return self.metric_names()

    def selectable(self) -> list[str]:
        return ["AUC"]

    def per_user(self, model: Recommender, data: Interactions, part: Part) -> tuple[np.ndarray, np.ndarray]:
        """(users, (n,) AUC) over every user with an in-catalogue, non-train item in ``part``, and
        (n,) bool: whether that user's items are cold (all of them at most ``cold_max_feedback``)."""
        held = held_out_part(data, part)
        settings = self.evaluation.exact_auc
        excluded = excluded_items(data, data.validation, data.test)
        train = data.train_binary
        keep = (held.items >= 0) & ~(np.asarray(train[held.users, np.maximum(held.items, 0)]).ravel() > 0)
        users, items = held.users[keep], held.items[keep]
        order = np.argsort(users, kind="stable")
        users, items = users[order], items[order]
        score = score_function(model, data, part)
        popularity = data.item_popularity
        values = np.zeros(len(users))
        for start in range(0, len(users), _USERS_PER_BLOCK):
            rows = slice(start, start + _USERS_PER_BLOCK)
            block_users = users[rows]
            distinct, local = np.unique(block_users, return_inverse=True)
            with torch.inference_mode():
                scores = score(torch.from_numpy(distinct).to(self.settings.device)).float().cpu()
            allowed = torch.from_numpy(excluded[distinct].toarray() == 0)[local]           # (n, n_items)
            positive = scores[local, torch.from_numpy(items[rows])].unsqueeze(1)
            candidates = scores[local]
            above = ((positive > candidates) & allowed).sum(1).double()
            if settings.ties == "half":
                above += 0.5 * ((positive == candidates) & allowed).sum(1).double()
            values[rows] = (above / allowed.sum(1).clamp(min=1).double()).numpy()
        cold = popularity[items] <= settings.cold_max_feedback
        per_user = np.unique(users)
        index = np.searchsorted(per_user, users)
        auc = np.bincount(index, weights=values, minlength=len(per_user)) / np.bincount(index, minlength=len(per_user))
        cold_users = np.bincount(index, weights=cold, minlength=len(per_user)) == np.bincount(index,
                                                                                           minlength=len(per_user))
        return per_user, np.stack([auc, cold_users.astype(np.float64)], 1)

    def evaluate(self, model: Recommender, data: Interactions, part: Part, *,
                 metrics: Sequence[str] | None = None, cutoffs: Sequence[int] | None = None,
                 features: Mapping[str, np.ndarray] | None = None,
                 inputs: Mapping[str, Tensor] | None = None) -> EvaluationResult:
        users, table = self.per_user(model, data, part)
        auc, cold = table[:, 0], table[:, 1] > 0
        row = {"AUC": float(auc.mean()) if len(auc) else float("nan"),
               "AUC_cold": float(auc[cold].mean()) if cold.any() else float("nan")}
        if metrics is not None:
            row = {name: value for name, value in row.items() if name in metrics}
        cutoffs = list(cutoffs if cutoffs is not None else self.evaluation.cutoffs) or [self.settings.top_k]
        per_user: dict[int, dict[str, dict[str, float]]] = {}
        if self.evaluation.paired_ttest or self.evaluation.wilcoxon_test:
            ids = [str(data.user_ids[u]) for u in users]
            columns = {"AUC": dict(zip(ids, auc.tolist())),
                       "AUC_cold": {i: v for i, v, c in zip(ids, auc.tolist(), cold) if c}}
            per_user = {k: {name: columns[name] for name in row} for k in cutoffs}
        return EvaluationResult(values={k: dict(row) for k in cutoffs}, recommendations=None, per_user=per_user,
                                part=part)
