"""Random: uniformly random scores, seeded (Elliot's ``Random`` baseline, named ``Random_seed=42``)."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from elliot_visual.data.interactions import Interactions
from elliot_visual.models.base import HyperParams, Recommender, hp, register_model


@register_model("Random")
class Random(Recommender):
    """Each (user, item) score is drawn once from U(0, 1) with a generator seeded by (seed, user)."""

    class Params(HyperParams):
        seed: int = hp(42, "seed")

    tasks = Recommender.tasks + ("transactions",)

    def __init__(self, params: Params, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)

    def fit(self, data: Interactions) -> None:
        """Nothing to learn."""

    def score(self, users: Tensor) -> Tensor:
        rows = []
        for user in users.tolist():
            generator = torch.Generator().manual_seed(int(self.params.seed) * 1_000_003 + int(user))
            rows.append(torch.rand(self.n_items, generator=generator))
        return torch.stack(rows).to(users.device) if rows else torch.empty(0, self.n_items)
