"""ACF: Attentive Collaborative Filtering (Chen et al., SIGIR 2017), over CNN feature-map regions."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from pydantic import field_validator
from torch import Tensor, nn

from elliot_visual.data.samplers import Triples
from elliot_visual.models.base import IntTuple, PairwiseParams, Recommender, hp, register_model
from elliot_visual.models.pairwise import Real, bpr_loss, glorot, l2

@register_model("ACF")
class ACF(Recommender):
    """x_ui = <u_i + Σ_{l∈R(u)} α(u,l) p_l, v_i>  (eq. 1 of the paper) with two attentions:

    * component level (eq. 5-6): β(u,l,m) = softmax_m(w·relu(W_u u + W_x x_lm + b)) over the
      regions m of item l's feature map, x̄_l = Σ_m β x_lm;
    * item level (eq. 3-4): α(u,l) = softmax_l(w·relu(W_u u + W_v v_l + W_p p_l + W_x x̄_l + b))
      over the user's train items R(u).

    Elliot's parameters: ``Gu`` (u), ``Gi`` (v), ``Pi`` (p), N(0, 0.01); attention weights
    Glorot-uniform, biases too; ``layers_component`` / ``layers_item`` give the attention MLPs
    (relu after the first layer, linear after, last width 1); BPR loss + l_w/2 (‖u‖² + ‖v_i‖² +
    ‖v_j‖² + ‖p_i‖² + ‖p_j‖² + every attention weight). Feature maps are (regions, channels),
    e.g. (49, 2048) for ResNet-50's last block.

    Batched: a batch of users is processed at once as the packed list of its (user, train item)
    pairs (``train_positives`` gives each user's items, -1 padded), with the item-level softmax
    taken per user over her pairs, so ACF trains with the standard BPR sampler at any
    ``batch_size``. Packed, not padded: with the skewed set sizes of real data (Amazon Baby:
    median 4 train items, longest 101) a padded (users x longest set) batch is ~90 % padding and
    every attention tensor is that much larger. Because W_x x̄_l = Σ_m β x_lm W_x, the maps are
    projected once per distinct item of the batch and never materialised per (user, item).

    As in Elliot, α is the paper's softmax over R(u): the item-level weights of a user sum to one
    (Elliot takes the softmax over the items axis of its one-user batches; here over each user's
    packed pairs, the same values). The one deviation: cold items (no train interaction) have
    untrained v_i, so none of ACF's terms can rank them; their v_i is imputed at scoring time as
    the similarity-weighted mean of the v of their ``cold_neighbours`` visually nearest train
    items (cosine of region-averaged maps). Set ``cold_neighbours: 0`` for Elliot's behaviour;
    warm items are unaffected either way.

    YAML::

        ACF:
          epochs: 20
          batch_size: 256
          factors: 64
          layers_component: (64, 1)
          layers_item: (64, 1)
    """

    class Params(PairwiseParams):
        factors: int = hp(100, "factors", ge=1)
        lr: Real = hp(0.0005, "lr", gt=0)
        l_w: Real = hp(0.000025, "l_w", ge=0)
        layers_component: IntTuple = hp((64, 1), "layers_component")
        layers_item: IntTuple = hp((64, 1), "layers_item")
        cold_neighbours: int = hp(10, in_name=False, ge=0)

        @field_validator("layers_component", "layers_item")
        @classmethod
        def _ends_in_one(cls, value: tuple[int, ...]) -> tuple[int, ...]:
            if not value or value[-1] != 1 or min(value) < 1:
                raise ValueError(f"attention layers must be positive widths ending in 1, e.g. (64, 1); got {value}")
            return value

    needs = ("visual_feat_map_features", "train_positives")
    loader_in_name = True
    sampler = "bpr"

    def __init__(self, params: Params, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        maps = features["visual_feat_map_features"]
        if maps.dim() != 3:
            raise ValueError(f"ACF needs feature maps shaped (n_items, regions, channels), got {tuple(maps.shape)}")
        positives = features["train_positives"].long()
        self.register_buffer("feature_maps", maps, persistent=False)
        self.register_buffer("positives", positives, persistent=False)
        warm = torch.zeros(n_items, dtype=torch.bool)
        warm[positives[positives >= 0]] = True
        self.register_buffer("warm_items", warm, persistent=False)
        f, channels = params.factors, maps.shape[2]
        self.Gu = nn.Parameter(torch.randn(n_users, f) * 0.01)
        self.Gi = nn.Parameter(torch.randn(n_items, f) * 0.01)
        self.Pi = nn.Parameter(torch.randn(n_items, f) * 0.01)
        h = params.layers_component
        self.component_in = nn.ParameterDict({"W_u": glorot(f, h[0]), "W_x": glorot(channels, h[0]), "b": glorot(h[0])})
        self.component_out = _linear_stack(h)
        h = params.layers_item
        self.item_in = nn.ParameterDict({"W_u": glorot(f, h[0]), "W_v": glorot(f, h[0]), "W_p": glorot(f, h[0]),
                                         "W_x": glorot(channels, h[0]), "b": glorot(h[0])})
        self.item_out = _linear_stack(h)
        self._cold_cache: tuple[torch.device, Tensor, Tensor, Tensor] | None = None

    def attention_weights(self) -> list[Tensor]:
        return [*self.component_in.values(), *self.component_out, *self.item_in.values(), *self.item_out]

    def user_representation(self, users: Tensor) -> Tensor:
        """(B, factors): u + Σ_l α(u,l) p_l over each user's train items (eq. 1, before the product with v_i)."""
        sets = self.positives[users]
        owner, slot = (sets >= 0).nonzero(as_tuple=True)                 # the batch's (user, item) pairs
        items = sets[owner, slot]                                         # (P,)
        distinct, where = torch.unique(items, return_inverse=True)
        h_c = self.params.layers_component[0]
        w_x = torch.cat([self.component_in["W_x"], self.item_in["W_x"]], 1)
        projected = self.feature_maps[distinct].to(w_x.dtype) @ w_x           # (S, regions, h_c + h_i)
        component_x, item_x = projected[..., :h_c], projected[..., h_c:]
        gu = self.rows(self.Gu, users)
        # Component-level attention (eq. 5-6), softmax over the regions of each item.
        b = torch.relu(component_x[where] + (gu @ self.component_in["W_u"] + self.component_in["b"])[owner, None])
        beta = torch.softmax(_apply(self.component_out, b).squeeze(-1), dim=-1)          # (P, regions)
        pooled_x = (beta.unsqueeze(-1) * item_x[where]).sum(1)                           # x̄_l W_x: (P, h_i)
        # Item-level attention (eq. 3-4), softmax over each user's items.
        v, p = self.rows(self.Gi, items), self.rows(self.Pi, items)
        a = torch.relu((gu @ self.item_in["W_u"] + self.item_in["b"])[owner] + v @ self.item_in["W_v"]
                       + p @ self.item_in["W_p"] + pooled_x)
        alpha = _softmax_per_owner(_apply(self.item_out, a).squeeze(-1), owner, len(users))  # (P,)
        return gu.index_add(0, owner, alpha.unsqueeze(-1) * p)

    def loss(self, batch: Triples) -> Tensor:
        u, i, j = batch.users, batch.pos, batch.neg
        pu = self.user_representation(u)
        vi, vj = self.rows(self.Gi, i), self.rows(self.Gi, j)
        x_uij = (pu * (vi - vj)).sum(1)
        reg = l2(self.rows(self.Gu, u), vi, vj, self.rows(self.Pi, i), self.rows(self.Pi, j), *self.attention_weights())
        return bpr_loss(x_uij) + self.params.l_w * reg

    def item_factors(self) -> Tensor:
        """(n_items, factors): v_i, with cold items' v imputed from visual neighbours (see the docstring)."""
        k = int(self.params.cold_neighbours)
        cold = ~self.warm_items
        if k == 0 or not bool(cold.any()) or not bool(self.warm_items.any()):
            return self.Gi
        if self._cold_cache is None or self._cold_cache[0] != self.Gi.device:
            pooled = torch.nn.functional.normalize(self.feature_maps.float().mean(1), dim=1)
            cold_idx, warm_idx = cold.nonzero().squeeze(1), self.warm_items.nonzero().squeeze(1)
            sims, nearest = (pooled[cold_idx] @ pooled[warm_idx].T).topk(min(k, len(warm_idx)), dim=1)
            weights = sims.clamp(min=0) + 1e-12
            self._cold_cache = (self.Gi.device, cold_idx, warm_idx[nearest], weights / weights.sum(1, keepdim=True))
        _, cold_idx, neighbours, weights = self._cold_cache
        factors = self.Gi.clone()
        factors[cold_idx] = (weights.unsqueeze(-1) * self.Gi[neighbours]).sum(1)
        return factors

    def item_representation(self, items: slice) -> Tensor:
        """(len(items), factors): v_i, cold items imputed (see :meth:`item_factors`)."""
        return self.item_factors()[items]

    def score_items(self, users: Tensor, items: Tensor) -> Tensor:
        return self.user_representation(users) @ items.T

    def score_cost(self, users: Tensor) -> Tensor:
        """Attention elements per user: her (user, train item) pairs x regions x attention width."""
        width = self.feature_maps.shape[1] * max(self.params.layers_component[0], self.params.layers_item[0])
        return (self.positives[users] >= 0).sum(1).clamp(min=1) * width


def _softmax_per_owner(logits: Tensor, owner: Tensor, n_owners: int) -> Tensor:
    """Softmax of ``logits`` (P,) within each group of equal ``owner`` (P,) index (0 <= owner < n_owners).

    The per-group maximum is subtracted for stability; it is detached because the softmax does not
    depend on it, so its gradient contributions cancel exactly.
    """
    top = logits.new_full((n_owners,), float("-inf")).scatter_reduce(0, owner, logits.detach(), "amax")
    e = torch.exp(logits - top[owner])
    return e / e.new_zeros(n_owners).index_add(0, owner, e)[owner]


def _linear_stack(widths: tuple[int, ...]) -> nn.ParameterList:
    """Weights and biases of the attention layers after the first, Glorot-uniform as in Elliot."""
    params = []
    for before, after in zip(widths, widths[1:]):
        params += [glorot(before, after), glorot(after)]
    return nn.ParameterList(params)


def _apply(stack: nn.ParameterList, x: Tensor) -> Tensor:
    """The linear layers after the first (Elliot applies no activation between them)."""
    for k in range(0, len(stack), 2):  # index, not slice: a sliced ParameterList re-wraps its tensors
        x = x @ stack[k] + stack[k + 1]
    return x
