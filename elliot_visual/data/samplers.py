"""Batch samplers: one per sampling *scheme*, chosen by a model's ``sampler`` attribute.

A sampler is built once per training run from the train matrix and yields, for each epoch, the
batches the model's ``loss`` reads. Sampling is vectorised with a seeded NumPy ``Generator``.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from elliot_visual.registry import SAMPLERS

log = logging.getLogger(__name__)


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
    """BPR triples: user ``u`` prefers train item ``pos`` over non-train item ``neg``; each (B,) int64."""

    users: Tensor
    pos: Tensor
    neg: Tensor


@dataclass
class PointwiseBatch(Batch):
    """Pointwise samples: (B,) users, (B,) items and (B,) float labels (1 positive, 0 sampled negative)."""

    users: Tensor
    items: Tensor
    labels: Tensor


def _sample_negatives(train: sp.csr_matrix, users: np.ndarray, n_items: int,
                      rng: np.random.Generator, candidates: np.ndarray | None = None) -> np.ndarray:
    """One uniform non-train item per user, by vectorised rejection (Elliot's scheme, batched)."""
    pool = candidates if candidates is not None else None
    draw = (lambda n: pool[rng.integers(0, len(pool), n)]) if pool is not None else (
        lambda n: rng.integers(0, n_items, n))
    neg = draw(len(users))
    bad = np.flatnonzero(_is_positive(train, users, neg))
    while bad.size:
        neg[bad] = draw(bad.size)
        bad = bad[_is_positive(train, users[bad], neg[bad])]
    return neg


def _is_positive(train: sp.csr_matrix, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Boolean (len(users),): whether each (user, item) pair is a train interaction."""
    if len(users) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(train[users, items]).ravel() != 0


@SAMPLERS.register("bpr")
class BPRSampler:
    """Elliot's pairwise sampler: user uniform over train users, positive uniform over her items,
    negative uniform over the catalogue's train items, rejected while it is a positive.

    One epoch is ``transactions // batch_size`` batches (remainder dropped, as in Elliot);
    ``batch_size < 1`` means one batch of ``transactions`` samples.
    """

    def __init__(self, train: sp.csr_matrix, batch_size: int, seed: int = 42,
                 negatives_from_train_items: bool = True) -> None:
        self.train = sp.csr_matrix(train, dtype=np.float32)
        self.train.sort_indices()
        self.n_users, self.n_items = self.train.shape
        self.transactions = int(self.train.nnz)
        self.batch_size = batch_size if batch_size >= 1 else self.transactions
        self.rng = np.random.default_rng(seed)
        counts = np.diff(self.train.indptr)
        self.counts = counts
        item_pop = np.bincount(self.train.indices, minlength=self.n_items)
        self.negative_pool = np.flatnonzero(item_pop > 0) if negatives_from_train_items else None
        # A user who has every candidate item has no negative: rejection sampling would never end.
        candidates = len(self.negative_pool) if self.negative_pool is not None else self.n_items
        self.active_users = np.flatnonzero((counts > 0) & (counts < candidates))
        saturated = int(np.count_nonzero(counts >= candidates))
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
        pos = self.train.indices[self.train.indptr[users] + offsets]
        neg = _sample_negatives(self.train, users, self.n_items, self.rng, self.negative_pool)
        return Triples(torch.from_numpy(users.astype(np.int64)), torch.from_numpy(pos.astype(np.int64)),
                       torch.from_numpy(neg.astype(np.int64)))

    def epoch(self) -> Iterator[Triples]:
        """The batches of one epoch."""
        for _ in range(self.batches_per_epoch()):
            yield self.sample(self.batch_size)


@SAMPLERS.register("pointwise")
class PointwiseSampler:
    """Every train pair as a positive plus ``negatives`` uniform non-train items per positive
    (the ImgRec / NCF-style scheme), shuffled each epoch."""

    def __init__(self, train: sp.csr_matrix, batch_size: int, seed: int = 42, negatives: int = 4) -> None:
        self.train = sp.csr_matrix(train, dtype=np.float32)
        self.train.sort_indices()
        self.n_users, self.n_items = self.train.shape
        coo = self.train.tocoo()
        self.pos_users, self.pos_items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        self.negatives = negatives
        # Users holding every item have no negative to draw (rejection would never end): none for them.
        self.has_negatives = np.diff(self.train.indptr)[self.pos_users] < self.n_items
        total = len(self.pos_users) + int(self.has_negatives.sum()) * negatives
        self.batch_size = batch_size if batch_size >= 1 else total
        self.rng = np.random.default_rng(seed)

    def batches_per_epoch(self) -> int:
        total = len(self.pos_users) + int(self.has_negatives.sum()) * self.negatives
        return max(1, -(-total // self.batch_size))

    def epoch(self) -> Iterator[PointwiseBatch]:
        neg_users = np.repeat(self.pos_users[self.has_negatives], self.negatives)
        neg_items = _sample_negatives(self.train, neg_users, self.n_items, self.rng)
        users = np.concatenate([self.pos_users, neg_users])
        items = np.concatenate([self.pos_items, neg_items])
        labels = np.concatenate([np.ones(len(self.pos_users)), np.zeros(len(neg_users))]).astype(np.float32)
        order = self.rng.permutation(len(users))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield PointwiseBatch(torch.from_numpy(users[idx]), torch.from_numpy(items[idx]),
                                 torch.from_numpy(labels[idx]))
