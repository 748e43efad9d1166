"""MMMF: maximum-margin matrix factorisation for item ranking (MyMediaLite's SoftMarginRankingMF)."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from elliot_visual.data.samplers import Triples
from elliot_visual.models.base import PairwiseParams, Recommender, hp, register_model
from elliot_visual.models.pairwise import Real, l2


def margin_ranking_loss(x_uij: Tensor, margin: float) -> Tensor:
    """Σ over the batch of max(0, margin − x_uij): the pairwise hinge ranking loss."""
    return torch.clamp(margin - x_uij, min=0).sum()


@register_model("MMMF")
class MMMF(Recommender):
    """x_ui = b_i + <p_u, q_i>, trained on BPR triples with the pairwise hinge
    Σ max(0, margin − x_uij) + l_w/2 (‖p_u‖² + ‖q_i‖² + ‖q_j‖²) + l_b/2 (b_i² + b_j²).

    MyMediaLite's SoftMarginRankingMF steps on x_uij < 0 only, i.e. the hinge at ``margin: 0``
    (the default here); ``margin: 1`` is the classic maximum-margin hinge of Srebro et al. (2005).
    Deviations from MyMediaLite: Adam on batches (the project's loop) instead of per-triple SGD,
    Xavier-uniform initialisation instead of N(0, 0.1).

    YAML::

        MMMF:
          epochs: 20
          batch_size: 256
          factors: 64
          lr: 0.001
    """

    class Params(PairwiseParams):
        factors: int = hp(10, "factors", ge=1)
        lr: Real = hp(0.001, "lr", gt=0)
        l_w: Real = hp(0.01, "l_w", ge=0)
        l_b: Real = hp(0.0, "l_b", ge=0)
        margin: Real = hp(0.0, "margin", ge=0)

    sampler = "bpr"

    def __init__(self, params: Params, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        self.user_factors = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_users, params.factors)))
        self.item_factors = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_items, params.factors)))
        self.item_bias = nn.Parameter(torch.zeros(n_items))

    def loss(self, batch: Triples) -> Tensor:
        p = self.user_factors[batch.users]
        qi, qj = self.item_factors[batch.pos], self.item_factors[batch.neg]
        bi, bj = self.item_bias[batch.pos], self.item_bias[batch.neg]
        x_uij = bi - bj + (p * (qi - qj)).sum(1)
        reg = self.params.l_w * l2(p, qi, qj) + self.params.l_b * l2(bi, bj)
        return margin_ranking_loss(x_uij, float(self.params.margin)) + reg

    def score(self, users: Tensor) -> Tensor:
        return self.item_bias.unsqueeze(0) + self.user_factors[users] @ self.item_factors.T
