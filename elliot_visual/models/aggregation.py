"""Set aggregation networks: a user's item images -> her product categories (Demochkin & Savchenko, 2019).

A user is the set of her items' visual features x_1..x_M (a fine-tuned MobileNet's, stage 1). A
pooling turns the set into one vector r (average, or neural aggregation with attention blocks,
optionally followed by context gating); a head predicts the probability of each of D categories:
Dense(hidden = 2048) -> ReLU -> Dropout(0.5) -> Dense(D) -> sigmoid, trained with binary
cross-entropy weighted by ``pos_weight`` on the positive classes (the paper's best: 36). Adam 1e-3.

Deviations, where the paper is silent or its notebooks differ: the first attention query starts at
zero (uniform attention; the paper gives no initialisation); the head's dropout uses a generator
seeded by the model's seed; sets longer than ``max_set_size`` (40, the paper's largest set) are a
seeded random subset each epoch rather than being dropped; no set is padded to a fixed size, the
padding of each batch is masked out (the notebooks padded to 8 without a mask).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

from elliot_visual.data.samplers import UserSets
from elliot_visual.models.average_pooling import AveragePooling
from elliot_visual.models.base import Recommender, UserSetParams, hp, register_model
from elliot_visual.models.context_gating import ContextGating
from elliot_visual.models.neural_aggregation import NeuralAggregation
from elliot_visual.models.pairwise import Real, SeededDropout


class CategoryHead(nn.Module):
    """r (B, F) -> D category logits: Dense(hidden) -> ReLU -> Dropout -> Dense(D) (the paper's head).

    Dropout masks come from a generator seeded by the model's seed (:class:`SeededDropout`), so a
    run is reproducible without torch's global random state; it is active in training mode only.
    """

    def __init__(self, dim: int, hidden: int, n_labels: int, dropout: float, seed: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(dim, hidden)
        self.output = nn.Linear(hidden, n_labels)
        self.rate = float(dropout)
        self._dropout = SeededDropout(seed)

    def forward(self, pooled: Tensor) -> Tensor:
        hidden = torch.relu(self.hidden(pooled))
        if self.training:
            hidden = self._dropout(hidden, self.rate)
        return self.output(hidden)


class SetCategoryParams(UserSetParams):
    """Hyperparameters shared by every set -> categories network (the paper's defaults; sets of
    more than ``max_set_size`` = 40 items are subsampled, seeded, by the ``user_sets`` sampler)."""

    lr: Real = hp(0.001, "lr", gt=0)
    hidden: int = hp(2048, "hidden", ge=1)
    dropout: Real = hp(0.5, "drop", ge=0, lt=1)
    pos_weight: Real = hp(36.0, "pw", gt=0, description="BCE weight of positive classes (paper: 10, 36, 72, 140)")
    context_gating: bool = hp(False, "cg", description="gate the pooled vector, y = σ(Wr + b) ⊙ r")


class SetCategoryModel(Recommender):
    """Pooling (subclass) -> optional context gating -> :class:`CategoryHead`; see the module docstring.

    Reads ``visual_features`` (n_items, F), bound by the entry's ``loader``, and the width D of
    ``item_labels`` (n_items, D); a batch is a :class:`UserSets` (items (B, L) padded, mask (B, L),
    targets (B, D)). The item labels themselves never enter ``predict``: only the images do.
    """

    Params: ClassVar[type[SetCategoryParams]] = SetCategoryParams
    needs = ("visual_features", "item_labels")
    tasks = ("multilabel",)
    sampler = "user_sets"
    loader_in_name = True

    def __init__(self, params: SetCategoryParams, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        features = features or {}
        vectors, labels = features["visual_features"], features["item_labels"]
        self.register_buffer("features", vectors.float(), persistent=False)
        self.n_labels = int(labels.shape[1])
        dim = int(vectors.shape[1])
        self.pooling = self.build_pooling(dim)
        self.gating = ContextGating(dim) if params.context_gating else nn.Identity()
        self.head = CategoryHead(dim, int(params.hidden), self.n_labels, float(params.dropout), int(params.seed))
        self.register_buffer("pos_weight", torch.full((self.n_labels,), float(params.pos_weight)),
                             persistent=False)

    def build_pooling(self, dim: int) -> nn.Module:
        """The set pooling: (B, L, F), (B, L) -> (B, F)."""
        raise NotImplementedError

    def logits(self, items: Tensor, mask: Tensor) -> Tensor:
        """(B, D) category logits of the padded item sets ``items`` (B, L) with ``mask`` (B, L)."""
        x = self.features[items]
        return self.head(self.gating(self.pooling(x, mask)))

    def predict(self, batch: UserSets) -> Tensor:
        """(B, D) category probabilities σ(logits) of a ``UserSets`` batch."""
        return torch.sigmoid(self.logits(batch.items, batch.mask))

    def loss(self, batch: UserSets) -> Tensor:
        """Weighted BCE: mean over users and categories of −[w y log σ(z) + (1 − y) log(1 − σ(z))]."""
        return nn.functional.binary_cross_entropy_with_logits(
            self.logits(batch.items, batch.mask), batch.targets.float(), pos_weight=self.pos_weight)


@register_model("AveragePooling")
class AveragePoolingModel(SetCategoryModel):
    """The paper's baseline: r = mean of the set's features, then the head (optionally gated)."""

    def build_pooling(self, dim: int) -> nn.Module:
        return AveragePooling()


class NeuralAggregationParams(SetCategoryParams):
    blocks: int = hp(2, "blocks", ge=1, description="attention blocks in the cascade (the paper: 1 or 2)")


@register_model("NeuralAggregation")
class NeuralAggregationModel(SetCategoryModel):
    """Neural aggregation (Yang et al. 2017) with ``blocks`` attention blocks, then the head.

    The paper's best: ``blocks: 2, context_gating: true``. Deviations from the authors'
    notebooks (a Fashion variant): a sigmoid gate (they used tanh), sets of any size with the
    padding masked out of the softmax (they truncated/padded to 8 without a mask).
    """

    Params: ClassVar[type[NeuralAggregationParams]] = NeuralAggregationParams

    def build_pooling(self, dim: int) -> nn.Module:
        return NeuralAggregation(dim, int(self.params.blocks))

    def attention(self, batch: UserSets) -> Tensor:
        """(B, L) the last attention block's weights over each set (zero on padding)."""
        return self.pooling.attention(self.features[batch.items], batch.mask)
