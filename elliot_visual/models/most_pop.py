"""MostPop: every user gets the items most users interacted with in train (non-personalised)."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from elliot_visual.data.interactions import Interactions
from elliot_visual.models.base import HyperParams, Recommender, register_model


@register_model("MostPop")
class MostPop(Recommender):
    """Score of item i = number of distinct train users of i; ties go to the lower item index.

    Deviation from Elliot: Elliot returns empty lists for users whose train items plus k exceed
    the catalogue (which zeroes AUC when full lists are requested); here every user is ranked.
    """

    class Params(HyperParams):
        pass

    def __init__(self, params: HyperParams, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        self.register_buffer("popularity", torch.zeros(n_items))

    def fit(self, data: Interactions) -> None:
        self.popularity = torch.as_tensor(data.item_popularity, dtype=torch.float32,
                                          device=self.popularity.device)

    def score(self, users: Tensor) -> Tensor:
        return self.popularity.unsqueeze(0).expand(len(users), -1)
