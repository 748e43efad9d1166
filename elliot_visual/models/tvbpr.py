"""TVBPR: VBPR with visual dimensions whose weights drift over time (He & McAuley, WWW 2016,
"Ups and Downs"), and ITVBPR, the same over interpretable attribute features (Packer, McAuley &
Ramisa 2018)."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from elliot_visual.data.interactions import Interactions
from elliot_visual.data.negatives import draw_negatives, excluded_items
from elliot_visual.data.samplers import Triples
from elliot_visual.models.base import PairwiseParams, Recommender, hp, register_model
from elliot_visual.models.pairwise import Real, bpr_loss, glorot, l2

log = logging.getLogger(__name__)


def segment(costs: np.ndarray) -> np.ndarray:
    """The best split of ``n_bins`` consecutive bins into ``n_epochs`` contiguous, non-empty, ordered
    time epochs: (n_bins,) int64 epoch of each bin maximising ``sum_b costs[b, epoch(b)]``.

    ``costs`` (n_bins, n_epochs): the validation log-likelihood of bin b's pairs under epoch e's
    parameters. Dynamic programming over (bin, epoch), O(n_bins x n_epochs), as the authors' code.
    """
    n_bins, n_epochs = costs.shape
    if n_bins < n_epochs:
        raise ValueError(f"{n_bins} time bins cannot hold {n_epochs} non-empty time epochs")
    best = np.full((n_bins, n_epochs), -np.inf)
    came_from_previous = np.zeros((n_bins, n_epochs), dtype=bool)   # True: bin b opens epoch e
    best[0, 0] = costs[0, 0]
    for b in range(1, n_bins):
        stay = best[b - 1]
        move = np.r_[-np.inf, best[b - 1, :-1]]
        came_from_previous[b] = move > stay
        best[b] = np.maximum(stay, move) + costs[b]
    epochs = np.empty(n_bins, dtype=np.int64)
    e = n_epochs - 1
    for b in range(n_bins - 1, -1, -1):
        epochs[b] = e
        if b and came_from_previous[b, e]:
            e -= 1
    return epochs


@register_model("TVBPR")
class TVBPR(Recommender):
    """x_ui(t) = β_i + γ_u·γ_i + θ_u·θ_i(t) + β′(t)·f_i, with
    θ_i(t) = (E f_i) ⊙ w(t) + ΔE(t) f_i and β′(t) = β′ ⊙ b(t) + Δβ′(t)  (He & McAuley 2016, eqs. 5-7).

    The training span is cut into ``time_bins`` equal-width bins, grouped into ``time_epochs``
    contiguous time epochs, each with its own w, ΔE, b, Δβ′. An event is scored with the parameters
    of the epoch its time falls in (events after the span: the last epoch). Between training
    rounds (every ``segment_every`` epochs) the bins are re-assigned to time epochs by dynamic
    programming (:func:`segment`) maximising the BPR log-likelihood Σ log σ(x_ui(t) − x_uj(t)) of
    the validation events against ``dp_negatives`` sampled negatives each (drawn once, seeded); the
    segmentation is a buffer of the model, so the best validation snapshot keeps its segmentation.
    The loss is BPR summed over the batch, as in the project's VBPR.

    Follows the authors' C++ code (TVBPR.cpp) in: equal-width bins, contiguous ordered epochs,
    re-segmentation on validation pairs with sampled negatives, keeping the best snapshot, the
    negative item's γ_j regularised at λ/10, E and β′ regularised apart from the epoch terms.
    Deviations: Adam on summed BPR (the project's trainer) instead of SGD; w(t) and b(t) are
    written 1 + ω(t), 1 + b̃(t) and ω, b̃, ΔE(t), Δβ′(t) start at 0 (so training starts from VBPR
    and ``l_t`` pulls each epoch towards the shared solution), where the C++ code draws ΔE(t) at
    random; γ, θ_u, E, β′ are Glorot-initialised as in Elliot's VBPR (the C++ code: U[0, 1]);
    every time epoch must hold at least one bin; without a validation split the segmentation
    stays the initial equal division (a warning says so).
    """

    class Params(PairwiseParams):
        factors: int = hp(20, "factors", ge=1)
        factors_d: int = hp(20, "factors_d", ge=1)
        time_epochs: int = hp(10, "tep", ge=1, description="contiguous time epochs (not training epochs)")
        time_bins: int = hp(80, "tbins", ge=1)
        lr: Real = hp(0.001, "lr", gt=0)
        l_w: Real = hp(0.0001, "l_w", ge=0)
        l_b: Real = hp(0, "l_b", ge=0)
        l_e: Real = hp(0.0001, "l_e", ge=0)
        l_t: Real = hp(0.0001, "l_t", ge=0, description="on the per-epoch terms w-1, ΔE, b-1, Δβ′")
        segment_every: int = hp(1, in_name=False, ge=1, description="training epochs between re-segmentations")
        dp_negatives: int = hp(100, in_name=False, ge=1)

    needs = ("visual_features", "train_time_span")
    loader_in_name = True
    uses_time = True

    def __init__(self, params: Params, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        if params.time_bins < params.time_epochs:
            raise ValueError(f"TVBPR: time_bins ({params.time_bins}) < time_epochs ({params.time_epochs})")
        feats = features["visual_features"].float()
        span = features["train_time_span"].double()
        self.register_buffer("features", feats, persistent=False)
        self.register_buffer("edges", torch.linspace(float(span[0]), float(max(span[1], span[0] + 1)),
                                                     params.time_bins + 1, dtype=torch.float64), persistent=False)
        initial = torch.arange(params.time_bins) * params.time_epochs // params.time_bins
        self.register_buffer("bin_epoch", initial.long())
        n_feats, k, kd, n_epochs = feats.shape[1], params.factors, params.factors_d, params.time_epochs
        self.Bi = nn.Parameter(torch.zeros(n_items))
        self.Gu, self.Gi = glorot(n_users, k), glorot(n_items, k)
        self.Tu, self.E, self.Bp = glorot(n_users, kd), glorot(n_feats, kd), glorot(n_feats)
        self.W = nn.Parameter(torch.zeros(n_epochs, kd))              # w(t) - 1
        self.DE = nn.Parameter(torch.zeros(n_epochs, n_feats, kd))    # ΔE(t), stored (F, K') per epoch
        self.Bt = nn.Parameter(torch.zeros(n_epochs, n_feats))        # b(t) - 1
        self.DBp = nn.Parameter(torch.zeros(n_epochs, n_feats))       # Δβ′(t)
        self._validation_pairs: tuple[Tensor, ...] | None = None  # () once known to be unavailable

    # --- time -------------------------------------------------------------------------------------
    def epoch_of(self, times: Tensor) -> Tensor:
        """Time epoch of each event time (NaN: the last bin)."""
        stamps = torch.nan_to_num(times.to(self.edges), nan=float("inf"))
        bins = torch.bucketize(stamps, self.edges[1:-1], right=True)
        return self.bin_epoch[bins]

    def visual_bias(self, epochs: Tensor) -> Tensor:
        """β′(t) of each epoch index: (len(epochs), F)."""
        return self.Bp * (1 + self.Bt[epochs]) + self.DBp[epochs]

    # --- the maths ---------------------------------------------------------------------------------
    def _pairwise(self, users: Tensor, pos: Tensor, neg: Tensor, epochs: Tensor) -> Tensor:
        """x_ui(t) − x_uj(t) for each row, each at its own time epoch."""
        diff = self.features.index_select(0, pos) - self.features.index_select(0, neg)
        theta = (diff @ self.E) * (1 + self.W[epochs])
        for e in torch.unique(epochs).tolist():
            rows = epochs == e
            theta[rows] = theta[rows] + diff[rows] @ self.DE[e]
        return (self.Bi[pos] - self.Bi[neg] + (self.Gu[users] * (self.Gi[pos] - self.Gi[neg])).sum(1)
                + (self.Tu[users] * theta).sum(1) + (diff * self.visual_bias(epochs)).sum(1))

    def loss(self, batch: Triples) -> Tensor:
        p = self.params
        u, i, j = batch.users, batch.pos, batch.neg
        x_uij = self._pairwise(u, i, j, self.epoch_of(batch.times))
        reg = (p.l_w * l2(self.Gu[u], self.Gi[i], self.Tu[u]) + p.l_w * l2(self.Gi[j]) / 10
               + p.l_b * l2(self.Bi[i]) + p.l_b * l2(self.Bi[j]) / 10 + p.l_e * l2(self.E, self.Bp)
               + p.l_t * l2(self.W, self.DE, self.Bt, self.DBp))
        return bpr_loss(x_uij) + reg

    def item_representation(self, items: slice) -> Tensor:
        """(time_epochs, len(items), factors + factors_d + 1): [γ_i, θ_i(t), β_i + β′(t)·f_i] at
        every time epoch t (evaluation computes it once per evaluation, in item blocks)."""
        feats, gamma = self.features[items], self.Gi[items]
        sides = []
        for epoch in range(self.params.time_epochs):
            theta = (feats @ self.E) * (1 + self.W[epoch]) + feats @ self.DE[epoch]
            bias = self.Bi[items] + feats @ self.visual_bias(torch.tensor([epoch], device=self.E.device))[0]
            sides.append(torch.cat([gamma, theta, bias.unsqueeze(1)], 1))
        return torch.stack(sides)

    def score_items(self, users: Tensor, items: Tensor, at: Tensor | None = None) -> Tensor:
        """Each user scored with the item side of the time epoch her event falls in (NaN: the last bin)."""
        if at is None:
            at = torch.full((len(users),), float("nan"), dtype=torch.float64, device=users.device)
        epochs = self.epoch_of(at)
        ones = torch.ones(len(users), 1, device=self.Gu.device, dtype=self.Gu.dtype)
        user = torch.cat([self.Gu[users], self.Tu[users], ones], 1)
        out = torch.empty(len(users), self.n_items, device=user.device, dtype=user.dtype)
        for e in torch.unique(epochs).tolist():
            rows = epochs == e
            out[rows] = user[rows] @ items[e].T
        return out

    def score_with_features(self, users: Tensor, items: Tensor, features: Tensor, at: float | None = None) -> Tensor:
        """x_ui(t) with item i's visual features replaced by a row of ``features`` (len(items), F), at the
        time epoch of ``at`` (None: the last, "now"): (len(users), len(items)). I-TVBPR's affinity
        vector (Packer et al., eq. 5) scores the one-hot of each feature this way."""
        epoch = int(self.epoch_of(torch.tensor([float("nan") if at is None else float(at)]))[0])
        f = features.to(self.E.dtype)
        theta = (f @ self.E) * (1 + self.W[epoch]) + f @ self.DE[epoch]
        bias = self.Bi[items] + f @ self.visual_bias(torch.tensor([epoch], device=self.E.device))[0]
        return bias.unsqueeze(0) + self.Gu[users] @ self.Gi[items].T + self.Tu[users] @ theta.T

    # --- re-segmentation between training rounds ------------------------------------------------------
    def between_epochs(self, data: Interactions, epoch: int) -> None:
        if epoch % self.params.segment_every:
            return
        pairs = self._pairs(data)
        if pairs is None:
            return
        self.bin_epoch.copy_(torch.from_numpy(segment(self.segment_costs(*pairs))).to(self.bin_epoch))

    def segment_costs(self, users: Tensor, pos: Tensor, neg: Tensor, times: Tensor) -> np.ndarray:
        """(time_bins, time_epochs): Σ log σ(x_ui − x_uj) of the validation pairs in each bin, scored
        with each epoch's parameters."""
        stamps = torch.nan_to_num(times.to(self.edges), nan=float("inf"))
        bins = torch.bucketize(stamps, self.edges[1:-1], right=True)
        costs = torch.zeros(self.params.time_bins, self.params.time_epochs, dtype=torch.float64)
        for e in range(self.params.time_epochs):
            x = self._pairwise(users, pos, neg, torch.full_like(users, e))
            costs[:, e].index_add_(0, bins.cpu(), torch.nn.functional.logsigmoid(x).double().cpu())
        return costs.numpy()

    def _pairs(self, data: Interactions) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
        """The validation events, each against ``dp_negatives`` negatives drawn once (seeded)."""
        if self._validation_pairs is not None:
            return self._validation_pairs or None
        held = data.validation
        if held is None or held.timestamps is None or not len(held):
            if self._validation_pairs is None:
                log.warning("%s: no validation events with timestamps; the time epochs keep their equal division",
                            self.family)
                self._validation_pairs = ()
            return None
        inside = held.items >= 0
        users, items, stamps = held.users[inside], held.items[inside], held.timestamps[inside]
        rng = np.random.default_rng(int(self.params.seed))
        k = int(self.params.dp_negatives)
        rep_users, negatives = draw_negatives(excluded_items(data, held), users, k, rng)
        device = self.Gu.device
        self._validation_pairs = (torch.from_numpy(rep_users).to(device),
                                  torch.from_numpy(np.repeat(items, k)).to(device),
                                  torch.from_numpy(negatives).to(device),
                                  torch.from_numpy(np.repeat(stamps, k)).to(device))
        return self._validation_pairs

    # --- what the reports draw ----------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The learned dynamics, for the trend figures (eq. 8 of Packer et al.):

        ``influence`` (F, time_epochs): Σ_r E_kr w_r(t), eq. 8 as written; ``preference`` (F, time_epochs):
        how much one unit of feature k raises the average user's score at t,
        mean_u θ_u · (E_k ⊙ w(t) + ΔE_k(t)) + β′_k(t) (sign-aware, with the ΔE and β′ terms eq. 8
        leaves out); ``w`` (factors_d, time_epochs); ``bin_epoch`` and ``edges`` (the segmentation)."""
        with torch.no_grad():
            w = (1 + self.W).T                                             # (K', E)
            influence = self.E @ w                                         # (F, E)
            mean_user = self.Tu.mean(0)                                    # (K',)
            epochs = torch.arange(self.params.time_epochs, device=self.E.device)
            preference = ((self.E * mean_user) @ w
                          + torch.einsum("efk,k->fe", self.DE, mean_user) + self.visual_bias(epochs).T)
        return {"influence": influence.cpu().numpy(), "preference": preference.cpu().numpy(),
                "w": w.cpu().numpy(), "bin_epoch": self.bin_epoch.cpu().numpy(), "edges": self.edges.cpu().numpy()}


@register_model("ITVBPR")
class ITVBPR(TVBPR):
    """TVBPR over interpretable attribute features (Packer, McAuley & Ramisa 2018, I-TVBPR): bind the
    entry's ``loader`` to an attribute-probability feature set; defaults K = K′ = 10, λθ = 5 (here
    ``l_e`` on E and β′), the other regularisers 0. No reference code exists for I-TVBPR; the
    deviations of :class:`TVBPR` apply, and λθ acts on E (the attribute projection) rather than θ_u."""

    class Params(TVBPR.Params):
        factors: int = hp(10, "factors", ge=1)
        factors_d: int = hp(10, "factors_d", ge=1)
        l_w: Real = hp(0, "l_w", ge=0)
        l_e: Real = hp(5, "l_e", ge=0)
        l_t: Real = hp(0, "l_t", ge=0)
