"""FM: a factorisation machine over one-hot user, one-hot item and item feature vectors, trained with BPR."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from elliot_visual.data.samplers import Triples
from elliot_visual.models.base import PairwiseParams, Recommender, hp, register_model
from elliot_visual.models.pairwise import Real, bpr_loss, l2


@register_model("FM")
class FM(Recommender):
    """Rendle (ICDM 2010), eq. 1: ŷ(x) = w0 + Σ_k w_k x_k + Σ_{k<l} <v_k, v_l> x_k x_l, here with
    x = [onehot(u) ‖ onehot(i) ‖ f_i] (f_i the item's ``visual_features`` of the feature set the
    config entry binds with ``loader``; unbound, only the two one-hots), trained on BPR triples: Σ softplus(−(ŷ(u,i) − ŷ(u,j))).

    The pairwise term is computed as in eq. 5 of the paper, ½ Σ_f [(Σ_k v_kf x_k)² − Σ_k v_kf² x_k²],
    which for this x splits into a user part (cancels in BPR and in a user's ranking), ⟨v_u, r_i⟩
    with r_i = v_i + f_i V_F, and an item part c_i = ⟨v_i, f_i V_F⟩ + ½ (‖f_i V_F‖² − Σ_f (f_i² · V_F²)_f).
    With one-hots only it reduces to BPR-MF with an item bias (ImgRec's FM row with no image
    features). Regularisation: l_w/2 on the factors of the active one-hots and on V_F, l_b/2 on the
    active biases and w_F. ``score`` returns ŷ(u, i) without w0 and the user's own terms (constant
    per user). Deviation: Adam on batches (the project's loop), not the paper's SGD / MCMC.

    YAML::

        FM:
          epochs: 20
          batch_size: 256
          factors: 64
          lr: 0.001
    """

    class Params(PairwiseParams):
        factors: int = hp(10, "factors", ge=1)
        lr: Real = hp(0.001, "lr", gt=0)
        l_w: Real = hp(0.01, "l_w", ge=0)
        l_b: Real = hp(0.001, "l_b", ge=0)

    optional_needs = ("visual_features",)
    sampler = "bpr"

    def __init__(self, params: Params, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        feats = (features or {}).get("visual_features")
        feats = torch.zeros(n_items, 0) if feats is None else feats.float().reshape(n_items, -1)
        self.register_buffer("features", feats, persistent=False)
        k, d = params.factors, feats.shape[1]
        self.user_factors = nn.Parameter(torch.empty(n_users, k).normal_(0, 0.1))
        self.item_factors = nn.Parameter(torch.empty(n_items, k).normal_(0, 0.1))
        self.feature_factors = nn.Parameter(torch.empty(d, k).normal_(0, 0.1 / max(1, d) ** 0.5))
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.feature_bias = nn.Parameter(torch.zeros(d))

    def item_terms(self, items: Tensor | slice) -> tuple[Tensor, Tensor]:
        """(r_i (len, k), c_i (len,)) of the docstring for ``items``."""
        f = self.features[items]
        fv = f @ self.feature_factors
        r = self.item_factors[items] + fv
        pair = 0.5 * (fv.pow(2).sum(1) - (f.pow(2) @ self.feature_factors.pow(2)).sum(1))
        c = self.item_bias[items] + f @ self.feature_bias + (self.item_factors[items] * fv).sum(1) + pair
        return r, c

    def loss(self, batch: Triples) -> Tensor:
        u, i, j = batch.users, batch.pos, batch.neg
        vu = self.user_factors[u]
        ri, ci = self.item_terms(i)
        rj, cj = self.item_terms(j)
        x_uij = ci - cj + (vu * (ri - rj)).sum(1)
        reg = self.params.l_w * (l2(vu, self.item_factors[i], self.item_factors[j], self.feature_factors)) \
            + self.params.l_b * l2(self.item_bias[i], self.item_bias[j], self.feature_bias)
        return bpr_loss(x_uij) + reg

    def item_representation(self, items: slice) -> Tensor:
        """(len(items), factors + 1): [r_i, c_i] of the docstring."""
        r, c = self.item_terms(items)
        return torch.cat([r, c.unsqueeze(1)], 1)

    def score_items(self, users: Tensor, items: Tensor) -> Tensor:
        ones = torch.ones(len(users), 1, device=items.device, dtype=items.dtype)
        return torch.cat([self.user_factors[users], ones], 1) @ items.T
