"""A user's affinity toward named visual features, and interactive refinement (I-TVBPR, eqs. 5-7).

Packer, McAuley & Ramisa (2018) train VBPR-family models on interpretable features (each
dimension a named attribute) and let a user steer her recommendations:

* eq. 5, the affinity vector: p_uk = sum over a random item sample R(I) of the model's score of
  item i for user u with the item's visual features replaced by h(k), the one-hot of feature k;
  for VBPR that is b_i + γ_u·γ_i + θ_u·E h(k) + β'·h(k). p_u = N(p_u) with N(p) = p / Σ_k p_k.
* eq. 6, "more like this item": p_u <- N(p_u + φ f_i).
* eq. 7, "more of this feature": p_u <- N(p_u + φ' h(k)).
* recommendations: the items whose features are nearest to p_u (scikit-learn's exact search).

Choices the paper leaves open, stated here: N's guard — when Σ p ≤ 0, and also (a deviation)
when any p_k < 0, p is shifted by its minimum before normalising: the order of the features is
kept and the result is a distribution (uniform when every entry is equal). Without the wider
guard a vector with negative entries and a small positive sum normalises to entries of huge
magnitude, on which φ f_i and φ' h(k) have almost no effect; the shift also removes the part of
eq. 5 that is the same for every feature (Σ_i b_i + γ_u·γ_i). The sample R(I) is drawn
once per explorer, without replacement, from a seeded generator (``sample_size`` items, default
1,000 or the whole catalogue); nearness is cosine distance (insensitive to the scale of p_u and
of f_i, which N does not share); the user's train items are left out of her lists. The
explorer holds no state between calls: a refined list is a function of (user, steps), so the web
page and the CLI give the lists this API gives.

Any model with ``score_with_features(users, items, features)`` whose features carry names
qualifies (VBPR and IVBPR; TVBPR and ITVBPR score at their latest time epoch, the user's taste
"now"); no class is named here.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.neighbors import NearestNeighbors
from torch import Tensor

DEFAULT_SAMPLE = 1000
DEFAULT_PHI = 0.5
_BLOCK_CELLS = 4_000_000  # rows x features of the one-hot batch scored at once (eq. 5)


@runtime_checkable
class FeatureScorer(Protocol):
    """A VBPR-family model: it can score items as if they had other visual features."""

    def score_with_features(self, users: Tensor, items: Tensor, features: Tensor) -> Tensor:
        """(len(users), len(items)) scores with ``features`` (len(items), F) as the items' features."""


class UnknownNameError(KeyError):
    """A user, item or feature the run does not know; the message names it (the server's 404)."""

    def __init__(self, what: str, name: str, known: Sequence[str]) -> None:
        shown = ", ".join(list(known)[:8]) + (", ..." if len(known) > 8 else "")
        super().__init__(f"unknown {what} {name!r} (known {what}s: {shown})")
        self.what, self.name = what, name

    def __str__(self) -> str:
        return str(self.args[0])


class MalformedStepError(ValueError):
    """A refinement step or scale that cannot be read (the server's 422)."""


@dataclass(frozen=True)
class Step:
    """One refinement: toward an item (eq. 6) or a named feature (eq. 7), with its scale φ / φ'."""

    kind: Literal["item", "feature"]
    target: str
    phi: float = DEFAULT_PHI


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    distance: float  # cosine distance between the item's features and the affinity vector


def normalise(p: np.ndarray) -> np.ndarray:
    """N(p) = p / Σ p (I-TVBPR), guarded: with Σ p ≤ 0 or a negative entry, p - min(p) is normalised
    instead (uniform if flat); see the module docstring."""
    p = np.asarray(p, dtype=np.float64)
    total = p.sum()
    if total > 0 and np.isfinite(total) and p.min() >= 0:
        return p / total
    shifted = p - p.min()
    total = shifted.sum()
    return shifted / total if total > 0 else np.full_like(p, 1.0 / len(p))


class AffinityExplorer:
    """Affinity vectors, refinement and nearest-neighbour lists for one trained model.

    ``features`` (n_items, D) are the model's item features (aligned to ``item_ids``), ``names`` their
    D feature names, ``train`` the (n_users, n_items) CSR train matrix (left out of the lists).
    """

    def __init__(self, model: FeatureScorer, features: np.ndarray, names: Sequence[str],
                 user_ids: Sequence[str], item_ids: Sequence[str], train: sp.csr_matrix | None = None,
                 sample_size: int = DEFAULT_SAMPLE, seed: int = 42) -> None:
        if not isinstance(model, FeatureScorer):
            raise TypeError(f"{type(model).__name__} cannot score items with other features "
                            "(score_with_features); the affinity vector needs a VBPR-family model")
        self.model = model
        self.features = np.asarray(features, dtype=np.float64)
        if self.features.shape != (len(item_ids), len(names)):
            raise ValueError(f"features of shape {self.features.shape} for {len(item_ids)} items and "
                             f"{len(names)} feature names")
        self.names = [str(n) for n in names]
        self.user_ids = [str(u) for u in user_ids]
        self.item_ids = [str(i) for i in item_ids]
        self._users = {u: n for n, u in enumerate(self.user_ids)}
        self._items = {i: n for n, i in enumerate(self.item_ids)}
        self._features = {f: n for n, f in enumerate(self.names)}
        self.train = train
        rng = np.random.default_rng(seed)
        size = min(int(sample_size), len(self.item_ids))
        self.sample = np.sort(rng.choice(len(self.item_ids), size=size, replace=False))  # R(I) of eq. 5
        self._index = NearestNeighbors(metric="cosine", algorithm="brute").fit(self.features)

    # --- names -> indices, with errors that name what is unknown --------------------------------
    def user_index(self, user: str) -> int:
        if str(user) not in self._users:
            raise UnknownNameError("user", str(user), self.user_ids)
        return self._users[str(user)]

    def item_index(self, item: str) -> int:
        if str(item) not in self._items:
            raise UnknownNameError("item", str(item), self.item_ids)
        return self._items[str(item)]

    def feature_index(self, name: str) -> int:
        if str(name) not in self._features:
            raise UnknownNameError("feature", str(name), self.names)
        return self._features[str(name)]

    # --- eqs. 5-7 -----------------------------------------------------------------------------
    def affinity(self, user: str) -> np.ndarray:
        """p_u of eq. 5, (D,), summing to 1."""
        u = self.user_index(user)
        d = len(self.names)
        sample = torch.as_tensor(self.sample, dtype=torch.long)
        weights = next(iter(self.model.parameters())) if hasattr(self.model, "parameters") else None
        device = weights.device if weights is not None else torch.device("cpu")
        users = torch.tensor([u], device=device)
        per_block = max(1, _BLOCK_CELLS // max(1, len(sample) * d))
        totals = np.empty(d, dtype=np.float64)
        with torch.no_grad():
            for start in range(0, d, per_block):
                ks = torch.arange(start, min(d, start + per_block))
                one_hot = torch.zeros(len(ks) * len(sample), d)  # h(k) for every sampled item, k in the block
                one_hot[torch.arange(len(one_hot)), ks.repeat_interleave(len(sample))] = 1.0
                scores = self.model.score_with_features(users, sample.repeat(len(ks)).to(device), one_hot.to(device))
                totals[start:start + len(ks)] = scores.reshape(len(ks), len(sample)).sum(1).double().cpu().numpy()
        return normalise(totals)

    def toward_item(self, p: np.ndarray, item: str, phi: float = DEFAULT_PHI) -> np.ndarray:
        """Eq. 6: N(p + φ f_i)."""
        return normalise(p + float(phi) * self.features[self.item_index(item)])

    def toward_feature(self, p: np.ndarray, name: str, phi: float = DEFAULT_PHI) -> np.ndarray:
        """Eq. 7: N(p + φ' h(k))."""
        h = np.zeros(len(self.names))
        h[self.feature_index(name)] = 1.0
        return normalise(p + float(phi) * h)

    def refined(self, user: str, steps: Sequence[Step] = ()) -> np.ndarray:
        """p_u after applying ``steps`` in order (each renormalised, as the equations say)."""
        p = self.affinity(user)
        for step in steps:
            if step.kind == "item":
                p = self.toward_item(p, step.target, step.phi)
            elif step.kind == "feature":
                p = self.toward_feature(p, step.target, step.phi)
            else:
                raise ValueError(f"unknown refinement kind {step.kind!r}; use 'item' or 'feature'")
        return p

    # --- lists ----------------------------------------------------------------------------------
    def recommend(self, p: np.ndarray, k: int = 10, user: str | None = None) -> list[Recommendation]:
        """The ``k`` items nearest to ``p`` (cosine), leaving out ``user``'s train items."""
        if k < 1:
            raise ValueError(f"k must be at least 1 (got {k})")
        seen: set[int] = set()
        if user is not None and self.train is not None:
            row = self.user_index(user)
            seen = set(self.train.indices[self.train.indptr[row]:self.train.indptr[row + 1]].tolist())
        wanted = min(len(self.item_ids), k + len(seen))
        distances, rows = self._index.kneighbors(np.asarray(p, dtype=np.float64)[None, :], n_neighbors=wanted)
        # kneighbors sorts by distance; ties are broken by item index so lists are reproducible.
        order = np.lexsort((rows[0], np.round(distances[0], 12)))
        picked = [(int(rows[0][o]), float(distances[0][o])) for o in order if int(rows[0][o]) not in seen]
        return [Recommendation(self.item_ids[r], d) for r, d in picked[:k]]

    def top_features(self, p: np.ndarray, n: int = 5) -> list[tuple[str, float]]:
        """The ``n`` features of largest affinity, (name, value), largest first (ties: name order)."""
        order = sorted(range(len(self.names)), key=lambda j: (-p[j], self.names[j]))
        return [(self.names[j], float(p[j])) for j in order[:n]]


def parse_step(text: str, phi: float = DEFAULT_PHI) -> Step:
    """``item:<id>`` or ``feature:<name>`` (split at the first colon: ids may hold colons)."""
    kind, sep, target = text.partition(":")
    if not np.isfinite(phi):
        raise MalformedStepError(f"the scale of step {text!r} must be a finite number (got {phi})")
    if not sep or kind not in ("item", "feature") or not target:
        raise MalformedStepError(f"refinement step {text!r} must read 'item:<item id>' or 'feature:<name>'")
    return Step(kind, target, phi)  # type: ignore[arg-type]
