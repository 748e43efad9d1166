"""WARP: Weighted Approximate-Rank Pairwise loss (Weston, Bengio & Usunier, IJCAI 2011), LightFM's sampling rule."""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from elliot_visual.data.samplers import PointwiseBatch
from elliot_visual.models.base import Recommender, TrainParams, hp, register_model
from elliot_visual.models.pairwise import Real, l2

# LightFM clips the rank weight of one update at this value (MAX_LOSS in _lightfm_fast.pyx.template).
MAX_WEIGHT = 10.0


def first_violator(pos: Tensor, neg: Tensor, allowed: Tensor, margin: float = 1.0) -> tuple[Tensor, Tensor]:
    """(found (B,) bool, first (B,) int64): whether and where the first allowed margin violator lies."""
    violates = (neg > (pos.unsqueeze(1) - margin)) & allowed
    return violates.any(1), violates.to(torch.int8).argmax(1)


def warp_loss(pos: Tensor, neg: Tensor, allowed: Tensor, n_items: int, margin: float = 1.0) -> Tensor:
    """Σ over positives of L(rank) · max(0, margin − x_ui + x_uj*) (eq. 6 of the paper).

    ``pos`` (B,) scores of the positives; ``neg`` (B, S) scores of S uniform draws in draw order;
    ``allowed`` (B, S) False where the draw is one of the user's positives. As LightFM's
    ``fit_warp``: j* is the first allowed draw violating the margin (x_uj > x_ui − margin); the
    number of draws up to it, ``n`` (positives drawn before it count, as in LightFM), estimates the
    rank as floor((n_items − 1) / n), and the weight is L = log(max(1, that)), clipped at 10. A
    positive with no violator in S draws contributes nothing. The weight carries no gradient.
    """
    found, first = first_violator(pos, neg, allowed, margin)
    draws = (first + 1).to(pos.dtype)
    rank = torch.floor((n_items - 1) / draws)
    weight = torch.log(torch.clamp(rank, min=1.0)).clamp(max=MAX_WEIGHT)
    hinge = torch.clamp(margin - pos + neg.gather(1, first.unsqueeze(1)).squeeze(1), min=0)
    return (torch.where(found, weight.detach() * hinge, torch.zeros_like(hinge))).sum()


@register_model("WARP")
class WARP(Recommender):
    """x_ui = b_i + <p_u, q_i> (LightFM's model without features; its user bias cancels in a
    ranking), trained with :func:`warp_loss` over every train pair once per epoch, shuffled (the
    ``positives`` sampler: WARP draws its own negatives, up to ``max_sampled`` per positive,
    uniformly from the catalogue, from a generator seeded by ``seed``).

    Regularisation: l_w/2 (‖p_u‖² + ‖q_i‖² + ‖q_j*‖²) + l_b/2 (b_i² + b_j*²) over the updated pairs (LightFM's
    ``user_alpha``/``item_alpha`` act in its per-sample SGD). Deviations from LightFM: Adam on
    batches instead of per-pair Adagrad; the S candidate scores of a batch are computed with one
    gather instead of a loop that stops at the violator (same j*, same weight).

    YAML::

        WARP:
          epochs: 20
          batch_size: 256
          factors: 64
          lr: 0.001
          max_sampled: 10
    """

    class Params(TrainParams):
        factors: int = hp(10, "factors", ge=1)
        lr: Real = hp(0.001, "lr", gt=0)
        l_w: Real = hp(0.0, "l_w", ge=0)
        l_b: Real = hp(0.0, "l_b", ge=0)
        max_sampled: int = hp(10, "max_sampled", ge=1)
        margin: Real = hp(1.0, in_name=False, gt=0, description="the hinge margin (1 in the paper and LightFM)")

    needs = ("train_positives",)
    sampler = "positives"

    def __init__(self, params: Params, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        positives = features["train_positives"].long()
        users = torch.arange(n_users).unsqueeze(1).expand_as(positives)
        keys = (users * n_items + positives)[positives >= 0]
        self.register_buffer("positive_keys", torch.sort(keys).values, persistent=False)
        self.user_factors = nn.Parameter(torch.empty(n_users, params.factors).normal_(0, 1 / math.sqrt(params.factors)))
        self.item_factors = nn.Parameter(torch.empty(n_items, params.factors).normal_(0, 1 / math.sqrt(params.factors)))
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self._generators: dict[torch.device, torch.Generator] = {}

    def is_positive(self, users: Tensor, items: Tensor) -> Tensor:
        """Bool, same shape as ``items``: (user, item) is a train pair."""
        keys = users.unsqueeze(-1) * self.n_items + items if items.dim() > users.dim() else users * self.n_items + items
        where = torch.searchsorted(self.positive_keys, keys).clamp(max=max(0, len(self.positive_keys) - 1))
        return self.positive_keys[where] == keys if len(self.positive_keys) else torch.zeros_like(keys, dtype=torch.bool)

    def draw(self, n: int, device: torch.device) -> Tensor:
        """(n, max_sampled) uniform catalogue items from the model's own seeded generator."""
        generator = self._generators.get(device)
        if generator is None:
            generator = self._generators[device] = torch.Generator(device=device).manual_seed(int(self.params.seed))
        return torch.randint(0, self.n_items, (n, int(self.params.max_sampled)), generator=generator, device=device)

    def loss(self, batch: PointwiseBatch) -> Tensor:
        u, i = batch.users, batch.items
        j = self.draw(len(u), u.device)
        p = self.user_factors[u]
        pos = self.item_bias[i] + (p * self.item_factors[i]).sum(1)
        neg = self.item_bias[j] + torch.einsum("bk,bsk->bs", p, self.item_factors[j])
        allowed = ~self.is_positive(u, j)
        margin = float(self.params.margin)
        loss = warp_loss(pos, neg, allowed, self.n_items, margin)
        found, first = first_violator(pos.detach(), neg.detach(), allowed, margin)
        updated = found.unsqueeze(1).to(p.dtype)  # LightFM regularises only the pairs it updates
        j_star = j.gather(1, first.unsqueeze(1)).squeeze(1)
        reg = self.params.l_w * l2(p * updated, self.item_factors[i] * updated, self.item_factors[j_star] * updated) \
            + self.params.l_b * l2(self.item_bias[i] * updated[:, 0], self.item_bias[j_star] * updated[:, 0])
        return loss + reg

    def score(self, users: Tensor) -> Tensor:
        return self.item_bias.unsqueeze(0) + self.user_factors[users] @ self.item_factors.T
