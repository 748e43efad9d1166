"""CategoryPop: the category-popularity baseline of user-level label prediction."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor

from elliot_visual.data.interactions import Interactions
from elliot_visual.data.samplers import UserSets
from elliot_visual.models.base import HyperParams, Recommender, hp, register_model


@register_model("CategoryPop")
class CategoryPop(Recommender):
    """Predicts the labels (categories) most frequent among a user's items; no training.

    ``scope: user`` (default) scores label d for user u by how many of her set's items carry d,
    ties broken by d's popularity over the train users' items (then the lower label index);
    ``scope: global`` gives every user the labels most frequent over the train users' items (the
    non-personalised floor of Demochkin & Savchenko's (2019) setting). Note that ``scope: user``
    reads the labels of the very items whose labels form the target, which the pooling networks see
    only through the items' images: it is a reference point from label access, not a floor.
    """

    class Params(HyperParams):
        scope: Literal["user", "global"] = hp("user", "scope")

    needs = ("item_labels",)
    tasks = ("multilabel",)
    sampler = "user_sets"

    def __init__(self, params: HyperParams, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        labels = features["item_labels"].float()
        self.register_buffer("labels", labels, persistent=False)
        self.register_buffer("popularity", torch.zeros(labels.shape[1]))

    def fit(self, data: Interactions) -> None:
        counts = torch.as_tensor(data.item_popularity, dtype=torch.float32, device=self.labels.device)
        self.popularity = counts @ self.labels       # label frequency over every train interaction

    def predict(self, batch: UserSets) -> Tensor:
        tie_break = self.popularity / (self.popularity.max() + 1.0)   # in [0, 1): never outweighs one item
        if self.params.scope == "global":
            return tie_break.unsqueeze(0).expand(len(batch.users), -1)
        counts = (self.labels[batch.items] * batch.mask.unsqueeze(-1)).sum(dim=1)
        return counts + tie_break
