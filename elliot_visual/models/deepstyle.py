"""DeepStyle: learning user preferences for visual recommendation (Liu et al., SIGIR 2017)."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from elliot_visual.data.samplers import Triples
from elliot_visual.models.base import PairwiseParams, Recommender, hp, register_model
from elliot_visual.models.pairwise import Real, bpr_loss, glorot, l2


@register_model("DeepStyle")
class DeepStyle(Recommender):
    """x_ui = <p_u, E f_i − l_i + q_i>  (eq. 3 of the paper): the item's style is its visual
    embedding E f_i with its category's latent l_i subtracted; BPR loss.

    As in Elliot, ``l_i`` is a learned per-item embedding (Elliot reads no category data). When the
    side information provides ``item_categories`` (an ``ItemCategories`` entry, or ``item_categories``
    in a ``VisualAttribute`` entry), ``l_i`` is instead shared by all items of a category, as in the
    paper. Elliot's parameters: ``Gu`` (p), ``Gi`` (q), ``Li`` (l) and ``E`` (F x factors),
    Glorot-uniform; loss = Σ softplus(−x_uij) + l_w/2 (‖p_u‖² + ‖q_i‖² + ‖q_j‖² + ‖l_i‖² + ‖l_j‖²),
    ``E`` unregularised. Deviation from the paper: Adam, as in Elliot.

    YAML::

        DeepStyle:
          epochs: 20
          batch_size: 256
          factors: 64
          lr: 0.0005
    """

    class Params(PairwiseParams):
        batch_eval: int = hp(512, "be", ge=1)
        factors: int = hp(100, "factors", ge=1)
        lr: Real = hp(0.0005, "lr", gt=0)
        l_w: Real = hp(0.000025, "l_w", ge=0)

    needs = ("visual_features",)
    loader_in_name = True
    optional_needs = ("item_categories",)
    sampler = "bpr"

    def __init__(self, params: Params, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        feats = features["visual_features"]
        self.register_buffer("features", feats.float(), persistent=False)
        categories = features.get("item_categories")
        self.uses_categories = categories is not None
        if categories is None:
            categories = torch.arange(n_items)
        self.register_buffer("category", categories.long(), persistent=False)
        n_latent = int(categories.max()) + 1 if len(categories) else 0
        self.Gu = glorot(n_users, params.factors)
        self.Gi = glorot(n_items, params.factors)
        self.Li = glorot(n_latent, params.factors)
        self.E = glorot(feats.shape[1], params.factors)

    def loss(self, batch: Triples) -> Tensor:
        u, i, j = batch.users, batch.pos, batch.neg
        pu, qi, qj = self.rows(self.Gu, u), self.rows(self.Gi, i), self.rows(self.Gi, j)
        li, lj = self.rows(self.Li, self.category[i]), self.rows(self.Li, self.category[j])
        style_diff = (self.features.index_select(0, i) - self.features.index_select(0, j)) @ self.E
        x_uij = (pu * (style_diff - (li - lj) + (qi - qj))).sum(1)
        return bpr_loss(x_uij) + self.params.l_w * l2(pu, qi, qj, li, lj)

    def item_representation(self, items: slice) -> Tensor:
        """(len(items), factors): E f_i − l_i + q_i."""
        return self.features[items] @ self.E - self.Li[self.category[items]] + self.Gi[items]

    def score_items(self, users: Tensor, items: Tensor) -> Tensor:
        return self.Gu[users] @ items.T
