"""VBPR: Visual Bayesian Personalized Ranking (He & McAuley, AAAI 2016)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import model_validator
from torch import Tensor, nn

from elliot_visual.data.samplers import Triples
from elliot_visual.models.base import PairwiseParams, Recommender, hp, register_model
from elliot_visual.models.pairwise import Real, bpr_loss, glorot, l2


@register_model("VBPR")
class VBPR(Recommender):
    """x_ui = b_i + <γ_u, γ_i> + <θ_u, E f_i> + <β', f_i>  (eq. 2 of the paper), trained with BPR.

    ``f_i`` are the item's CNN features (``visual_features``, e.g. 2048-d ResNet-50 or McAuley's
    4096-d), used raw as in Elliot. Parameters and regularisation are Elliot's: ``Bi`` item biases
    (zeros), ``Gu``/``Gi`` (``factors``), ``Tu`` (``factors_d``), ``E`` (F x ``factors_d``) and the
    visual bias ``Bp`` (F x 1), Glorot-uniform; loss = Σ softplus(−x_uij) + l_w/2 (‖γ_u‖² + ‖γ_i‖²
    + ‖γ_j‖² + ‖θ_u‖²) + l_b/2 b_i² + l_b/20 b_j² + l_e/2 (‖E‖² + ‖β'‖²) (Elliot divides the
    negative bias term by 10). ``l_e`` defaults to ``l_w`` (the Elliot-Reproducible-VRSs fork; main
    Elliot's default is 0.002). Deviations from the paper: no global or user bias (they cancel in
    BPR), Adam instead of SGD, as in Elliot.

    Speed: the visual term is linear in f, so x_uij's visual part is (f_i − f_j)[E | β'] — one
    (B x F)(F x (factors_d+1)) product per batch instead of two; the item side [γ_i, E f_i,
    b_i + β'·f_i] is one representation (evaluation computes it once, in blocks of ``batch_eval``
    items) and a user's scores are one matrix product with [γ_u, θ_u, 1].

    YAML::

        VBPR:
          epochs: 20
          batch_size: 256
          factors: 64
          lr: 0.001
    """

    class Params(PairwiseParams):
        batch_eval: int = hp(512, "be", ge=1)
        factors: int = hp(100, "factors", ge=1)
        factors_d: int = hp(20, "factors_d", ge=1)
        lr: Real = hp(0.0005, "lr", gt=0)
        l_w: Real = hp(0.000025, "l_w", ge=0)
        l_b: Real = hp(0, "l_b", ge=0)
        l_e: Real | None = hp(None, "l_e", ge=0, description="None means the value of l_w")

        @model_validator(mode="before")
        @classmethod
        def _l_e_defaults_to_l_w(cls, values: Any) -> Any:
            if isinstance(values, dict) and values.get("l_e") is None:
                own = cls.model_fields["l_e"].default   # a subclass may give l_e its own default
                values = {**values, "l_e": own if own is not None else values.get("l_w", cls.model_fields["l_w"].default)}
            return values

    needs = ("visual_features",)
    loader_in_name = True
    sampler = "bpr"

    def __init__(self, params: Params, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        feats = features["visual_features"]
        self.register_buffer("features", feats.float(), persistent=False)
        n_feats = feats.shape[1]
        self.Bi = nn.Parameter(torch.zeros(n_items))
        self.Gu = glorot(n_users, params.factors)
        self.Gi = glorot(n_items, params.factors)
        self.Tu = glorot(n_users, params.factors_d)
        self.E = glorot(n_feats, params.factors_d)
        self.Bp = glorot(n_feats, 1)

    def loss(self, batch: Triples) -> Tensor:
        p = self.params
        u, i, j = batch.users, batch.pos, batch.neg
        gu, gi, gj, tu = self.rows(self.Gu, u), self.rows(self.Gi, i), self.rows(self.Gi, j), self.rows(self.Tu, u)
        bi, bj = self.Bi[i], self.Bi[j]
        # (f_i - f_j) [E | β']: visual preference and visual-bias differences in one product.
        visual = (self.features.index_select(0, i) - self.features.index_select(0, j)) @ torch.cat([self.E, self.Bp], 1)
        x_uij = bi - bj + (gu * (gi - gj)).sum(1) + (tu * visual[:, :-1]).sum(1) + visual[:, -1]
        reg = p.l_w * l2(gu, gi, gj, tu) + p.l_b * l2(bi) + p.l_b * l2(bj) / 10 + p.l_e * l2(self.E, self.Bp)
        return bpr_loss(x_uij) + reg

    def item_representation(self, items: slice) -> Tensor:
        """(len(items), factors + factors_d + 1): [γ_i, E f_i, b_i + β'·f_i]."""
        visual = self.features[items] @ torch.cat([self.E, self.Bp], 1)
        return torch.cat([self.Gi[items], visual[:, :-1], (self.Bi[items] + visual[:, -1]).unsqueeze(1)], 1)

    def score_items(self, users: Tensor, items: Tensor) -> Tensor:
        ones = torch.ones(len(users), 1, device=self.Gu.device, dtype=self.Gu.dtype)
        return torch.cat([self.Gu[users], self.Tu[users], ones], 1) @ items.T

    def score_with_features(self, users: Tensor, items: Tensor, features: Tensor) -> Tensor:
        """x_ui of eq. 2 with item i's visual features replaced by a row of ``features``: (len(users), len(items)).

        ``features`` is (len(items), F). Introspection asks "how would u score item i if it looked
        like this?" (the I-TVBPR affinity vector, eq. 5, puts the one-hot of one feature here).
        """
        visual = features.to(self.E.dtype) @ torch.cat([self.E, self.Bp], 1)
        return (self.Bi[items] + visual[:, -1]).unsqueeze(0) + self.Gu[users] @ self.Gi[items].T \
            + self.Tu[users] @ visual[:, :-1].T


@register_model("IVBPR")
class IVBPR(VBPR):
    """VBPR over interpretable attribute features (Packer, McAuley & Ramisa 2018, I-VBPR): bind the
    entry's ``loader`` to a feature set of per-item attribute probabilities with names (the affinity
    tools read the names). That paper's defaults: K = K′ = 10, λθ = 5, the other regularisers 0;
    here λθ is ``l_e`` (on E and β′, the attribute projection), since the project's VBPR folds θ_u
    into ``l_w`` (a deviation: the paper regularises θ_u with λθ too)."""

    class Params(VBPR.Params):
        factors: int = hp(10, "factors", ge=1)
        factors_d: int = hp(10, "factors_d", ge=1)
        l_w: Real = hp(0, "l_w", ge=0)
        l_e: Real | None = hp(5, "l_e", ge=0)
