"""ProxyRecommender: evaluates an existing recommendation TSV (user, item, score) as Elliot's does."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from elliot_visual.data.interactions import Interactions
from elliot_visual.models.base import HyperParams, Recommender, hp, register_model


@register_model("ProxyRecommender")
class ProxyRecommender(Recommender):
    """Scores come from a saved list: listed items keep their score order, all others rank last.

    ``path`` is a headerless TSV ``user \\t item \\t score`` with public ids (Elliot's recs format).
    Users or items of the file that the dataset does not know are ignored and counted in the log.
    """

    class Params(HyperParams):
        path: Path = hp(..., "path", in_name=False)
        name: str = hp("ProxyRecommender", "name", in_name=False)

    def __init__(self, params: Params, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        self.register_buffer("scores", torch.full((n_users, n_items), float("-inf")))

    @classmethod
    def report_name(cls, params: HyperParams) -> str:
        return str(params.name)

    def fit(self, data: Interactions) -> None:
        path = Path(self.params.path)
        if not path.exists():
            raise FileNotFoundError(f"ProxyRecommender: recommendation file {path} does not exist")
        recs = pd.read_csv(path, sep="\t", header=None, names=["user", "item", "score"],
                           dtype={"user": str, "item": str, "score": float}, keep_default_na=False)
        users = recs["user"].map(data.user_index)
        items = recs["item"].map(data.item_index)
        known = users.notna() & items.notna()
        rank_order = recs.groupby("user", sort=False).cumcount().to_numpy()
        # Rank by list position (not raw score) so ties or unscored files keep the file's order.
        value = (1e6 - rank_order[known.to_numpy()]).astype(np.float32)
        scores = torch.full((self.n_users, self.n_items), float("-inf"))
        rows = torch.from_numpy(users[known].to_numpy(np.int64, copy=True))
        columns = torch.from_numpy(items[known].to_numpy(np.int64, copy=True))
        scores[rows, columns] = torch.from_numpy(value)
        self.scores = scores.to(self.scores.device)

    def score(self, users: Tensor) -> Tensor:
        return self.scores[users]
