"""A model's scores for one evaluation: item representations blocked, cached, users chunked.

Evaluation owns the memory side of scoring, so a model file keeps only its maths. A model that
exposes its item side (``Recommender.item_representation`` + ``score_items``) has that side
(for a temporal model, every time epoch's) computed once per :class:`ModelScores`, in blocks of
``params.batch_eval`` items (Elliot's key; all items at once when the model declares none), and
reused by every batch of users the ranking asks for. A model that says how much one user's scoring materialises (``score_cost``) has each
batch split into consecutive chunks within :data:`SCORE_BUDGET` elements.

The cache lives as long as the :class:`ModelScores` object: one evaluation, during which the
weights do not change. Every evaluation (each validation epoch, the final test) builds a new one,
so a cached value can never outlive the weights it came from, whatever the optimiser does in
place.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from elliot_visual.models.base import Recommender

# Upper bound on the elements one chunk of users materialises when a model reports its cost.
SCORE_BUDGET = 1 << 25

ScoreFn = Callable[[Tensor], Tensor]


class ModelScores:
    """``scores(users) -> (len(users), n_items)`` for one evaluation of ``model`` (see the module doc)."""

    def __init__(self, model: Recommender, budget: int = SCORE_BUDGET) -> None:
        self.model, self.budget = model, max(1, int(budget))
        self._items: Tensor | None = None
        self.item_passes = 0  # how many times the item side was computed (once per evaluation)

    def item_representations(self) -> Tensor:
        """(n_items, d) the model's item side, computed on first use in blocks, then reused."""
        if self._items is None:
            model, n = self.model, self.model.n_items
            block = int(getattr(model.params, "batch_eval", 0) or n) or 1
            with torch.no_grad():
                parts = [model.item_representation(slice(start, min(start + block, n)))
                         for start in range(0, n, block)]
                self._items = torch.cat(parts, dim=-2) if parts else model.item_representation(slice(0, 0))
            self.item_passes += 1
        return self._items

    def __call__(self, users: Tensor, at: Tensor | None = None) -> Tensor:
        """Scores of ``users``; ``at`` (len(users),) event times go to a time-aware model
        (``uses_time``): to its ``score_items`` with the cached item side (every time epoch's),
        or to its ``score(users, at=)``."""
        chunks = self.user_chunks(users)
        times = at.split([len(c) for c in chunks]) if at is not None else [None] * len(chunks)
        timed = at is not None and getattr(self.model, "uses_time", False)
        if self.model.has_item_representation():
            items = self.item_representations()
            scores = [self.model.score_items(part, items, at=when) if timed else self.model.score_items(part, items)
                      for part, when in zip(chunks, times)]
        else:
            scores = [self.model.score(part, at=when) if at is not None else self.model.score(part)
                      for part, when in zip(chunks, times)]
        return scores[0] if len(scores) == 1 else torch.cat(scores)

    def user_chunks(self, users: Tensor) -> list[Tensor]:
        """Consecutive chunks of ``users`` whose summed ``score_cost`` stays within the budget
        (a single user above it forms a chunk of its own)."""
        cost = self.model.score_cost(users) if len(users) else None
        if cost is None:
            return [users]
        cost = cost.to(torch.long)
        chunk_of = (torch.cumsum(cost, 0) - cost) // self.budget
        sizes = torch.unique_consecutive(chunk_of, return_counts=True)[1].tolist()
        return list(users.split(sizes))


def scores_of(model: Recommender | ScoreFn) -> ScoreFn:
    """The score function of one evaluation: a model gets a fresh :class:`ModelScores`; a plain
    ``score_fn`` (a closure, a baseline in a test) is used as given."""
    return ModelScores(model) if isinstance(model, Recommender) else model
