"""BPR-MF (Rendle et al., UAI 2009) with Elliot's parameter names and defaults."""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elliot_visual.data.samplers import Triples
from elliot_visual.models.base import Recommender, PairwiseParams, hp, register_model


@register_model("BPRMF")
class BPRMF(Recommender):
    """Matrix factorisation trained on BPR triples: x_ui = b_i + <p_u, q_i> (eq. 4 of the paper).

    Loss (Elliot's batch BPR-MF): sum over the batch of softplus(-(x_ui - x_uj)) +
    l_w/2 (|p_u|^2 + |q_i|^2 + |q_j|^2) + l_b/2 (b_i^2 + b_j^2).
    """

    class Params(PairwiseParams):
        factors: int = hp(10, "factors", ge=1)
        lr: float = hp(0.001, "lr", gt=0)
        l_w: float = hp(0.1, "l_w", ge=0)
        l_b: float = hp(0.001, "l_b", ge=0)

    def __init__(self, params: Params, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        self.user_factors = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_users, params.factors)))
        self.item_factors = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_items, params.factors)))
        self.item_bias = nn.Parameter(torch.zeros(n_items))

    def pairwise(self, batch: Triples) -> tuple[Tensor, Tensor]:
        """(x_uij per triple, the batch's regularisation): what every pairwise loss over this
        factorisation reads (BPR here, the hinge in MMMF)."""
        p = self.rows(self.user_factors, batch.users)
        qi, qj = self.rows(self.item_factors, batch.pos), self.rows(self.item_factors, batch.neg)
        bi, bj = self.item_bias[batch.pos], self.item_bias[batch.neg]
        x_uij = (bi - bj) + (p * (qi - qj)).sum(-1)
        reg = self.params.l_w * (p.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / 2 \
            + self.params.l_b * (bi.pow(2).sum() + bj.pow(2).sum()) / 2
        return x_uij, reg

    def loss(self, batch: Triples) -> Tensor:
        x_uij, reg = self.pairwise(batch)
        return F.softplus(-x_uij).sum() + reg

    def score(self, users: Tensor) -> Tensor:
        return self.item_bias.unsqueeze(0) + self.user_factors[users] @ self.item_factors.T
