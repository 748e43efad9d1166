"""ImgRec (Elsayed, Brinkmeyer & Schmidt-Thieme): an attribute-aware, GraphRec-style recommender whose
item input concatenates the item's one-hot vector with its image features, in three variants.

* ``ImgRecDir``: φ(x_i) = the frozen pooled CNN features (``visual_features``, e.g. 2048-d ResNet50);
* ``ImgRecFT``: φ(x_i) = ReLU(x_i W_ft + b_ft), a trained layer over them (width ``ft_units``);
* ``ImgRecEtE``: φ(x_i) = ReLU(CNN(image_i) W_ft + b_ft), the CNN's last layers fine-tuned
  end to end from raw ``images`` in two stages (see :class:`ImgRecEtE`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elliot_visual.data.samplers import PointwiseBatch
from elliot_visual.models.base import Recommender, TrainParams, hp, register_model
from elliot_visual.models.pairwise import Real, WeightsCache, glorot


class ImgRecParams(TrainParams):
    """Defaults of the official code for Amazon Fashion (``ImgRecV1``/``V2``; Men: factors 20)."""

    factors: int = hp(30, "factors", ge=1)
    lr: Real = hp(0.0001, "lr", gt=0)
    l_w: Real = hp(0.1, "l_w", ge=0, description="Keras l2 on the user and item kernels W_u, W_i")
    negatives: int = hp(1, "neg", ge=1, description="sampled negatives per observed pair")
    batch_eval: int = hp(1024, in_name=False, ge=1)


class ImgRec(Recommender):
    """ŷ_ui = σ(z_u · z_i) with z_u = onehot_u W_u + b_u and z_i = [onehot_i ‖ φ(x_i)] W_i + b_i
    (eqs. 1-3 of the paper), i.e. z_i = E_i[i] + φ(x_i) W_img + b_i; trained pointwise with binary
    cross-entropy (eq. 4, whose typo in the (1 − y) term is not repeated) over every observed pair
    and ``negatives`` sampled non-train items per pair (label 0).

    Loss, as the official Keras code computes it: the batch mean of the cross-entropy plus
    ``l_w`` Σ W² (Keras' ``l2``: no ½) over the whole kernels W_u and W_i (id rows and image rows),
    plus the variant's own terms. ``score`` returns the logit z_u · z_i (σ is monotone: the same
    ranking, and no float32 saturation into ties). W and b are Glorot-uniform / zero (Keras' Dense).

    Deviations from the official code, stated: every observed pair is visited once per epoch with
    its ``negatives`` (the project's ``pointwise`` sampler) instead of drawing users uniformly;
    negatives are never the user's train items (the code's check tested a pandas index and so
    never excluded them).
    """

    Params: ClassVar[type[TrainParams]] = ImgRecParams
    sampler = "pointwise"

    def __init__(self, params: ImgRecParams, n_users: int, n_items: int, visual_dim: int) -> None:
        super().__init__(params, n_users, n_items)
        k = params.factors
        self.W_u = glorot(n_users, k)
        self.b_u = nn.Parameter(torch.zeros(k))
        self.W_i = glorot(n_items, k)
        self.W_img = glorot(visual_dim, k)
        self.b_i = nn.Parameter(torch.zeros(k))
        self._items = WeightsCache(self)

    # --- what a variant defines -------------------------------------------------------------
    def visual(self, items: Tensor) -> Tensor:
        """φ(x_i) for ``items``: (len(items), visual_dim)."""
        raise NotImplementedError

    def variant_penalty(self) -> Tensor:
        """The variant's own regularisation (Keras l2 on its layers)."""
        return torch.zeros((), device=self.W_u.device)

    # --- the shared maths -------------------------------------------------------------------
    def sampler_options(self) -> dict[str, int]:
        return {"negatives": int(self.params.negatives)}

    def user_vectors(self, users: Tensor) -> Tensor:
        """z_u = onehot_u W_u + b_u: (len(users), factors)."""
        return self.W_u[users] + self.b_u

    def item_vectors(self, items: Tensor) -> Tensor:
        """z_i = [onehot_i ‖ φ(x_i)] W_i + b_i: (len(items), factors)."""
        return self.W_i[items] + self.visual(items) @ self.W_img + self.b_i

    def logits(self, users: Tensor, items: Tensor) -> Tensor:
        return (self.user_vectors(users) * self.item_vectors(items)).sum(1)

    def loss(self, batch: PointwiseBatch) -> Tensor:
        logits = self.logits(batch.users, batch.items)
        bce = F.binary_cross_entropy_with_logits(logits, batch.labels.to(logits.dtype))
        reg = self.params.l_w * (self.W_u.pow(2).sum() + self.W_i.pow(2).sum() + self.W_img.pow(2).sum())
        return bce + reg + self.variant_penalty()

    def all_item_vectors(self) -> Tensor:
        """(n_items, factors) z_i of every item, in blocks of ``batch_eval``; cached between scoring calls."""
        block = int(self.params.batch_eval)

        def compute() -> Tensor:
            device = self.W_i.device
            return torch.cat([self.item_vectors(torch.arange(s, min(s + block, self.n_items), device=device))
                              for s in range(0, self.n_items, block)])

        return self._items.get(self, list(self.parameters()), compute)

    def score(self, users: Tensor) -> Tensor:
        return self.user_vectors(users) @ self.all_item_vectors().to(self.W_u.dtype).T


@register_model("ImgRecDir")
class ImgRecDir(ImgRec):
    """ImgRec-Dir: φ(x_i) = x_i, the frozen pooled CNN features of the item's image (``visual_features``).

    YAML::

        ImgRecDir:
          epochs: 150
          batch_size: 1024
          factors: 30
          lr: 0.0001
          l_w: 0.1
    """

    needs = ("visual_features",)

    def __init__(self, params: ImgRecParams, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        feats = features["visual_features"].float().reshape(n_items, -1)
        super().__init__(params, n_users, n_items, feats.shape[1])
        self.register_buffer("features", feats, persistent=False)

    def visual(self, items: Tensor) -> Tensor:
        return self.features[items]


class ImgRecFTParams(ImgRecParams):
    ft_units: int = hp(150, "ft", ge=1, description="width of the trained ReLU layer φ")
    l_ft: Real = hp(0.00001, "l_ft", ge=0, description="Keras l2 on the φ layer's kernel")


@register_model("ImgRecFT")
class ImgRecFT(ImgRecDir):
    """ImgRec-FT: φ(x_i) = ReLU(x_i W_ft + b_ft) over the frozen CNN features, W_ft trained with the
    rest (width ``ft_units``: 150 Fashion, 120 Men in the official code; ``l_ft`` Σ W_ft², 1e-5).

    YAML::

        ImgRecFT:
          epochs: 150
          batch_size: 1024
          factors: 30
          ft_units: 150
    """

    Params = ImgRecFTParams

    def __init__(self, params: ImgRecFTParams, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        feats = features["visual_features"].float().reshape(n_items, -1)
        ImgRec.__init__(self, params, n_users, n_items, params.ft_units)
        self.register_buffer("features", feats, persistent=False)
        self.ft = nn.Linear(feats.shape[1], params.ft_units)
        nn.init.xavier_uniform_(self.ft.weight)
        nn.init.zeros_(self.ft.bias)

    def visual(self, items: Tensor) -> Tensor:
        return torch.relu(self.ft(self.features[items]))

    def variant_penalty(self) -> Tensor:
        return self.params.l_ft * self.ft.weight.pow(2).sum()
