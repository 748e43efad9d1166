"""Batch samplers: one per sampling *scheme*, built from :class:`Interactions`, chosen by a model's
``sampler`` attribute.

A sampler is built once per training run and yields, for each epoch, the batches the model's
``loss`` reads. Its typed options (``Options``) are fields of the model's ``Params`` of the same
names, so they are validated, searched and documented like every hyperparameter; negatives come
from the one routine in :mod:`elliot_visual.data.negatives`. Every batch of interactions carries
the event timestamps (``times``, unix seconds; NaN when the data have none), which temporal models
read. Sampling is vectorised with a seeded NumPy ``Generator``.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from elliot_visual.data.interactions import HeldOut, Interactions
from elliot_visual.data.negatives import draw_negatives, excluded_items
from elliot_visual.registry import SAMPLERS

log = logging.getLogger(__name__)

NegativesFrom = Literal["train_items", "catalogue"]


def _option(default: Any, description: str, **constraints: Any) -> Any:
    """A sampler option: a hyperparameter kept out of the model's report name."""
    return Field(default, description=description, json_schema_extra={"in_name": False}, **constraints)


class SamplerOptions(BaseModel):
    """Base of every sampler's typed options (mixed into model ``Params``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    @classmethod
    def pick(cls, params: BaseModel) -> "SamplerOptions":
        """These options as ``params`` sets them (fields it does not declare keep their defaults)."""
        return cls(**{name: getattr(params, name) for name in cls.model_fields if hasattr(params, name)})


class BPROptions(SamplerOptions):
    negatives_from: NegativesFrom = _option(
        "train_items", "where negatives come from: items with train interactions (Elliot) or the whole catalogue")
    exclude_validation: bool = _option(
        False, "also never draw a user's validation items as her negatives")


class PointwiseOptions(SamplerOptions):
    negatives: int = _option(1, "sampled negatives per observed pair", ge=1)
    negatives_from: NegativesFrom = _option("catalogue", "where negatives come from")
    exclude_validation: bool = _option(False, "also never draw a user's validation items as her negatives")


class UserSetOptions(SamplerOptions):
    max_set_size: int = _option(40, "items per user set; longer sets are subsampled (seeded) each epoch", ge=1)


@dataclass
class Batch:
    """Base of every batch: a dataclass of tensors that can move to a device as one."""

    def to(self, device: torch.device | str) -> "Batch":
        return type(self)(**{f.name: getattr(self, f.name).to(device, non_blocking=True)
                             for f in fields(self)})

    def __len__(self) -> int:
        return int(getattr(self, fields(self)[0].name).shape[0])


@dataclass
class Triples(Batch):
    """BPR triples: user ``u`` prefers train item ``pos`` over non-train item ``neg``; each (B,) int64.
    ``times`` (B,) float64: when ``u`` interacted with ``pos`` (NaN without timestamps)."""

    users: Tensor
    pos: Tensor
    neg: Tensor
    times: Tensor


@dataclass
class PointwiseBatch(Batch):
    """Pointwise samples: (B,) users, (B,) items, (B,) float labels (1 observed, 0 sampled negative),
    (B,) float64 ``times`` (a negative carries the time of the positive it was drawn for)."""

    users: Tensor
    items: Tensor
    labels: Tensor
    times: Tensor


@dataclass
class UserSets(Batch):
    """Users' item sets for set-level models: (B,) users, (B, L) int64 ``items`` padded with 0,
    (B, L) bool ``mask`` (True at real items), (B, D) float32 multi-hot ``targets``."""

    users: Tensor
    items: Tensor
    mask: Tensor
    targets: Tensor


def train_times(data: Interactions) -> np.ndarray:
    """(nnz,) float64 timestamps aligned with ``data.train.indices`` (NaN when there are none)."""
    stamps = data.train_timestamps
    if stamps is None:
        return np.full(data.train.nnz, np.nan)
    if stamps.nnz == data.train.nnz and np.array_equal(stamps.indptr, data.train.indptr) \
            and np.array_equal(stamps.indices, data.train.indices):
        return np.asarray(stamps.data, dtype=np.float64)
    coo = data.train.tocoo()
    return np.asarray(stamps[coo.row, coo.col], dtype=np.float64).ravel()


def _pool(data: Interactions, negatives_from: NegativesFrom) -> np.ndarray | None:
    return np.flatnonzero(data.item_popularity > 0) if negatives_from == "train_items" else None


def _excluded(data: Interactions, exclude_validation: bool) -> sp.csr_matrix:
    return excluded_items(data, data.validation if exclude_validation else None)


@SAMPLERS.register("bpr")
class BPRSampler:
    """Elliot's pairwise sampler: user uniform over train users, positive uniform over her items,
    negative uniform over the candidate pool (``negatives_from``), redrawn while it is excluded.

    One epoch is ``transactions // batch_size`` batches (remainder dropped, as in Elliot);
    ``batch_size < 1`` means one batch of ``transactions`` samples.
    """

    Options: ClassVar[type[SamplerOptions]] = BPROptions

    def __init__(self, data: Interactions, batch_size: int, seed: int = 42,
                 options: BPROptions | None = None, features: Mapping[str, Tensor] | None = None) -> None:
        options = options or BPROptions()
        self.train = data.train_binary
        self.train.sort_indices()
        self.times = train_times(data)
        self.n_users, self.n_items = self.train.shape
        self.transactions = int(self.train.nnz)
        self.batch_size = batch_size if batch_size >= 1 else self.transactions
        self.rng = np.random.default_rng(seed)
        self.excluded = _excluded(data, options.exclude_validation)
        self.counts = np.diff(self.train.indptr)
        self.negative_pool = _pool(data, options.negatives_from)
        # A user whose excluded items cover every candidate has no negative: rejection would never end.
        candidates = len(self.negative_pool) if self.negative_pool is not None else self.n_items
        blocked = _blocked_counts(self.excluded, self.negative_pool)
        self.active_users = np.flatnonzero((self.counts > 0) & (blocked < candidates))
        saturated = int(np.count_nonzero((self.counts > 0) & (blocked >= candidates)))
        if saturated:
            log.warning("BPR sampler: %d user(s) interacted with every candidate item and have no negative; "
                        "they are left out of training triples", saturated)
        if not len(self.active_users):
            raise ValueError("BPR sampler: no user has both a positive and a negative item in the train set")

    def batches_per_epoch(self) -> int:
        return max(1, self.transactions // self.batch_size)

    def sample(self, n: int) -> Triples:
        """``n`` independent BPR triples."""
        users = self.active_users[self.rng.integers(0, len(self.active_users), n)]
        offsets = (self.rng.random(n) * self.counts[users]).astype(np.int64)
        slots = self.train.indptr[users] + offsets
        pos = self.train.indices[slots]
        _, neg = draw_negatives(self.excluded, users, 1, self.rng, pool=self.negative_pool)
        return Triples(torch.from_numpy(users.astype(np.int64)), torch.from_numpy(pos.astype(np.int64)),
                       torch.from_numpy(neg.astype(np.int64)), torch.from_numpy(self.times[slots]))

    def epoch(self) -> Iterator[Triples]:
        """The batches of one epoch."""
        for _ in range(self.batches_per_epoch()):
            yield self.sample(self.batch_size)


@SAMPLERS.register("pointwise")
class PointwiseSampler:
    """Every train pair as a positive plus ``negatives`` sampled items per positive (the ImgRec /
    NCF-style scheme), shuffled each epoch; negatives are redrawn every epoch."""

    Options: ClassVar[type[SamplerOptions]] = PointwiseOptions

    def __init__(self, data: Interactions, batch_size: int, seed: int = 42,
                 options: PointwiseOptions | None = None, features: Mapping[str, Tensor] | None = None) -> None:
        options = options or PointwiseOptions()
        self.train = data.train_binary
        self.train.sort_indices()
        self.n_users, self.n_items = self.train.shape
        coo = self.train.tocoo()
        self.pos_users, self.pos_items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        self.pos_times = train_times(data)
        self.negatives = options.negatives
        self.excluded = _excluded(data, options.exclude_validation)
        self.negative_pool = _pool(data, options.negatives_from)
        candidates = len(self.negative_pool) if self.negative_pool is not None else self.n_items
        # Users whose excluded items cover every candidate have no negative to draw: none for them.
        self.has_negatives = _blocked_counts(self.excluded, self.negative_pool)[self.pos_users] < candidates
        total = len(self.pos_users) + int(self.has_negatives.sum()) * self.negatives
        self.batch_size = batch_size if batch_size >= 1 else total
        self.rng = np.random.default_rng(seed)

    def batches_per_epoch(self) -> int:
        total = len(self.pos_users) + int(self.has_negatives.sum()) * self.negatives
        return max(1, -(-total // self.batch_size))

    def epoch(self) -> Iterator[PointwiseBatch]:
        neg_users, neg_items = draw_negatives(self.excluded, self.pos_users[self.has_negatives], self.negatives,
                                              self.rng, pool=self.negative_pool)
        neg_times = np.repeat(self.pos_times[self.has_negatives], self.negatives)
        users = np.concatenate([self.pos_users, neg_users])
        items = np.concatenate([self.pos_items, neg_items])
        times = np.concatenate([self.pos_times, neg_times])
        labels = np.concatenate([np.ones(len(self.pos_users)), np.zeros(len(neg_users))]).astype(np.float32)
        order = self.rng.permutation(len(users))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield PointwiseBatch(torch.from_numpy(users[idx]), torch.from_numpy(items[idx]),
                                 torch.from_numpy(labels[idx]), torch.from_numpy(times[idx]))


@SAMPLERS.register("positives")
class PositivesSampler:
    """Every train pair once per epoch, shuffled, as a :class:`PointwiseBatch` of label-1 rows, for
    losses that draw their own negatives against the model's scores (WARP); no options."""

    Options: ClassVar[type[SamplerOptions]] = SamplerOptions

    def __init__(self, data: Interactions, batch_size: int, seed: int = 42,
                 options: SamplerOptions | None = None, features: Mapping[str, Tensor] | None = None) -> None:
        coo = data.train_binary.tocoo()
        order = np.lexsort((coo.col, coo.row))  # CSR order, aligned with train_times
        self.users, self.items = coo.row[order].astype(np.int64), coo.col[order].astype(np.int64)
        self.times = train_times(data)
        if not len(self.users):
            raise ValueError("positives sampler: the train set is empty")
        self.batch_size = batch_size if batch_size >= 1 else len(self.users)
        self.rng = np.random.default_rng(seed)

    def batches_per_epoch(self) -> int:
        return max(1, -(-len(self.users) // self.batch_size))

    def epoch(self) -> Iterator[PointwiseBatch]:
        order = self.rng.permutation(len(self.users))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield PointwiseBatch(torch.from_numpy(self.users[idx]), torch.from_numpy(self.items[idx]),
                                 torch.ones(len(idx)), torch.from_numpy(self.times[idx]))


def user_sets(sets: sp.csr_matrix, users: np.ndarray, labels: np.ndarray, max_set_size: int,
              rng: np.random.Generator) -> UserSets:
    """The padded item sets of ``users`` (rows of ``sets``) with masks and multi-hot label targets.

    The target is the union of the labels of *all* the user's items; a set longer than
    ``max_set_size`` is a uniform random subset of them (drawn from ``rng``).
    ``labels`` is (n_items, D); shapes as in :class:`UserSets`.
    """
    rows = [sets.indices[sets.indptr[u]:sets.indptr[u + 1]] for u in users]
    chosen = [r if len(r) <= max_set_size else np.sort(rng.choice(r, max_set_size, replace=False)) for r in rows]
    width = max(1, max((len(c) for c in chosen), default=1))
    items = np.zeros((len(users), width), dtype=np.int64)
    mask = np.zeros((len(users), width), dtype=bool)
    targets = np.zeros((len(users), labels.shape[1]), dtype=np.float32)
    for b, (row, picked) in enumerate(zip(rows, chosen)):
        items[b, :len(picked)] = picked
        mask[b, :len(picked)] = True
        if len(row):
            targets[b] = labels[row].max(axis=0)
    return UserSets(torch.from_numpy(np.asarray(users, dtype=np.int64)), torch.from_numpy(items),
                    torch.from_numpy(mask), torch.from_numpy(targets))


def held_out_sets(data: Interactions, part: HeldOut) -> sp.csr_matrix:
    """(n_users, n_items) CSR of each user's in-catalogue items in ``part`` (the multilabel task's inputs)."""
    inside = part.items >= 0
    matrix = sp.csr_matrix((np.ones(int(inside.sum()), dtype=np.int8), (part.users[inside], part.items[inside])),
                           shape=(data.n_users, data.n_items))
    matrix.sum_duplicates()
    matrix.sort_indices()
    return matrix


@SAMPLERS.register("user_sets")
class UserSetSampler:
    """Each train user's item set once per epoch, in a seeded random order, ``batch_size`` users a
    batch, padded with masks; targets from the ``item_labels`` feature (n_items, D)."""

    Options: ClassVar[type[SamplerOptions]] = UserSetOptions

    def __init__(self, data: Interactions, batch_size: int, seed: int = 42,
                 options: UserSetOptions | None = None, features: Mapping[str, Tensor] | None = None) -> None:
        options = options or UserSetOptions()
        if not features or "item_labels" not in features:
            raise ValueError("user_sets sampler: the model needs the item_labels feature (an ItemLabels "
                             "entry under data_config.side_information)")
        self.sets = data.train_binary
        self.sets.sort_indices()
        self.labels = features["item_labels"].cpu().numpy()
        self.users = np.flatnonzero(np.diff(self.sets.indptr) > 0)
        if not len(self.users):
            raise ValueError("user_sets sampler: no user has a train item")
        self.max_set_size = options.max_set_size
        self.batch_size = batch_size if batch_size >= 1 else len(self.users)
        self.rng = np.random.default_rng(seed)

    def batches_per_epoch(self) -> int:
        return max(1, -(-len(self.users) // self.batch_size))

    def epoch(self) -> Iterator[UserSets]:
        order = self.users[self.rng.permutation(len(self.users))]
        for start in range(0, len(order), self.batch_size):
            yield user_sets(self.sets, order[start:start + self.batch_size], self.labels, self.max_set_size,
                            self.rng)


def _blocked_counts(excluded: sp.csr_matrix, pool: np.ndarray | None) -> np.ndarray:
    """(n_users,) how many candidate items each user's excluded set covers."""
    if pool is None:
        return np.diff(excluded.indptr)
    in_pool = np.zeros(excluded.shape[1], dtype=np.int64)
    in_pool[pool] = 1
    return np.asarray(excluded @ in_pool).ravel()
