"""VisRank: content-based ranking by visual similarity to the user's items (Messina et al., 2018)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor

from elliot_visual.data.interactions import Interactions
from elliot_visual.features.store import train_positives
from elliot_visual.models.base import HyperParams, Recommender, hp, register_model

# Up to this many items the item-item cosine matrix (n_items² floats, 200 MB at 7,000) is computed
# once and max-aggregation becomes a gather; beyond, similarities are computed per batch of users.
SIMILARITY_MATRIX_ITEMS = 16_384


@register_model("VisRank")
class VisRank(Recommender):
    """score(u, i) = max_{l ∈ P(u)} cos(f_l, f_i)  (``aggregation: max``) or the mean over P(u)
    (``aggregation: mean``), with f the item's visual features and P(u) the user's train items.

    No training: ``fit(data)`` only records the train items. Cold items are ranked like any other
    (only their features are read). Users without train items score 0 everywhere.

    YAML::

        VisRank:
          aggregation: max
    """

    class Params(HyperParams):
        aggregation: Literal["max", "mean"] = hp("max", "agg")

    needs = ("visual_features", "train_positives")
    loader_in_name = True
    tasks = Recommender.tasks + ("transactions",)  # per transaction: del Rio et al. 2018

    def __init__(self, params: Params, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        normalised = torch.nn.functional.normalize(features["visual_features"].float(), dim=1)
        self.register_buffer("unit_features", normalised, persistent=False)
        self.register_buffer("positives", features["train_positives"].long())
        self._similarity: Tensor | None = None

    def fit(self, data: Interactions) -> None:
        self.positives = train_positives(data).to(self.unit_features.device)

    def similarity(self) -> Tensor | None:
        """(n_items, n_items) cosine similarities, computed once (None for large catalogues)."""
        if self.n_items > SIMILARITY_MATRIX_ITEMS:
            return None
        if self._similarity is None or self._similarity.device != self.unit_features.device:
            with torch.no_grad():
                self._similarity = self.unit_features @ self.unit_features.T
        return self._similarity

    def score_cost(self, users: Tensor) -> Tensor | None:
        """(users x profile items x catalogue items) similarities of max-aggregation (evaluation chunks users)."""
        if self.params.aggregation == "mean":
            return None
        return (self.positives[users] >= 0).sum(1).clamp(min=1) * self.n_items

    def score(self, users: Tensor) -> Tensor:
        items = self.positives[users]
        items = items[:, :max(1, int((items >= 0).sum(1).max()) if len(users) else 1)]
        mask = items >= 0
        safe = items.clamp(min=0)
        if self.params.aggregation == "mean":
            profile = (self.unit_features[safe] * mask.unsqueeze(-1)).sum(1)
            return profile / mask.sum(1, keepdim=True).clamp(min=1) @ self.unit_features.T
        similarity = self.similarity()
        sims = similarity[safe] if similarity is not None else \
            self.unit_features[safe] @ self.unit_features.T                                  # (B, L, n_items)
        sims = sims.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
        return torch.where(mask.any(1, keepdim=True), sims, torch.zeros((), device=sims.device))
