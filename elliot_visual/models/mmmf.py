"""MMMF: maximum-margin matrix factorisation for item ranking (MyMediaLite's SoftMarginRankingMF)."""
from __future__ import annotations

import torch
from torch import Tensor

from elliot_visual.data.samplers import Triples
from elliot_visual.models.base import hp, register_model
from elliot_visual.models.bprmf import BPRMF
from elliot_visual.models.pairwise import Real


def margin_ranking_loss(x_uij: Tensor, margin: float) -> Tensor:
    """Σ over the batch of max(0, margin − x_uij): the pairwise hinge ranking loss."""
    return torch.clamp(margin - x_uij, min=0).sum()


@register_model("MMMF")
class MMMF(BPRMF):
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

    class Params(BPRMF.Params):
        lr: Real = hp(0.001, "lr", gt=0)
        l_w: Real = hp(0.01, "l_w", ge=0)
        l_b: Real = hp(0.0, "l_b", ge=0)
        margin: Real = hp(0.0, "margin", ge=0)

    def loss(self, batch: Triples) -> Tensor:
        x_uij, reg = self.pairwise(batch)
        return margin_ranking_loss(x_uij, float(self.params.margin)) + reg
