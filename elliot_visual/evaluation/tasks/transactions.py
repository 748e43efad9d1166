"""The per-transaction task: del Rio et al.'s rolling protocol (:mod:`..transactions`) as a task.

Every purchase transaction of a user after her first is ranked from her earlier purchases only, and
the metrics are averaged over transactions (settings: ``evaluation.transactions``, or its defaults
when an entry picks ``meta.task: transactions`` without it). The protocol rolls over the whole
purchase history, so ``validation`` and ``test`` evaluate the same transactions: there is no
held-out part to select on (the paper tunes nothing; a searched entry selects on the evaluated
transactions, and the run says so once). The model is refitted on the rolling profiles (a
profile-based model's ``fit`` only records them); the lists rank transactions, not users, so the
result carries no user recommendation lists.
"""
from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping, Sequence

import numpy as np
from torch import Tensor

from elliot_visual.config.schema import Transactions
from elliot_visual.data.interactions import Interactions
from elliot_visual.evaluation.evaluator import EvaluationResult, build_metrics
from elliot_visual.evaluation.tasks.base import Part, Task, TaskSettings, register_task
from elliot_visual.evaluation.ranking import TopK
from elliot_visual.evaluation.transactions import (TransactionView, evaluate_transactions, rank_transactions,
                                                   transaction_view)
from elliot_visual.models.base import Recommender

log = logging.getLogger(__name__)


@register_task("transactions")
class TransactionsTask(Task):
    """Rolling per-transaction ranking, metrics averaged over transactions."""

    def __init__(self, settings: TaskSettings) -> None:
        super().__init__(settings)
        self.options = settings.evaluation.transactions or Transactions()
        self._views: dict[int, tuple[Interactions, TransactionView]] = {}
        self._warned = False
        self._lists: dict[tuple[int, int], tuple[weakref.ref, TopK]] = {}

    def view(self, data: Interactions) -> TransactionView:
        """The transactions of ``data`` (built once per split)."""
        cached = self._views.get(id(data))
        if cached is None or cached[0] is not data:
            view = transaction_view(data, self.options)
            log.info("%s: %d transactions evaluated (%d skipped), one_of_a_kind=%s, window=%gs", data.name,
                     view.profiles.n_users, view.skipped, self.options.one_of_a_kind, self.options.window)
            cached = self._views[id(data)] = (data, view)
        return cached[1]

    def evaluate(self, model: Recommender, data: Interactions, part: Part, *,
                 metrics: Sequence[str] | None = None, cutoffs: Sequence[int] | None = None,
                 features: Mapping[str, np.ndarray] | None = None,
                 inputs: Mapping[str, Tensor] | None = None) -> EvaluationResult:
        if part == "validation" and not self._warned:
            self._warned = True
            log.warning("the transactions task has no held-out validation: selection sees the evaluated "
                        "transactions (give fixed hyperparameters, as the paper does)")
        view = self.view(data)
        chosen = [m for m in build_metrics(self.evaluation, metrics) if not m.needs_features]
        cutoffs = list(cutoffs if cutoffs is not None else self.evaluation.cutoffs) or [self.settings.top_k]
        positions = any(m.needs_positions for m in chosen)
        lists = self._lists.get((id(model), id(data)))
        if lists is None or lists[0]() is not model or (positions and lists[1].positions is None):
            # validation and test rank the same transactions: rank once per fitted model
            ranked = rank_transactions(model, view, self.settings.top_k, device=self.settings.device,
                                       positions=positions)
            lists = self._lists[(id(model), id(data))] = (weakref.ref(model), ranked)
        result = evaluate_transactions(model, view, chosen, cutoffs, self.settings.top_k,
                                       device=self.settings.device, lists=lists[1])
        per_user = {}
        if self.evaluation.paired_ttest or self.evaluation.wilcoxon_test:
            ids = view.profiles.user_ids
            per_user = {k: {col: {str(ids[r]): float(v) for r, v in enumerate(values) if not np.isnan(v)}
                            for col, values in row.items()} for k, row in result.per_transaction.items()}
        return EvaluationResult(values=result.values, recommendations=None, per_user=per_user, part=part)
