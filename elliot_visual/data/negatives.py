"""The one negative-sampling routine: uniform items outside each user's excluded set.

Training samplers (BPR triples, pointwise labels) and the sampled evaluation protocol all draw
their negatives here, so "a negative" means the same thing everywhere: an item of the candidate
pool that is not stored in the user's row of ``excluded`` (her train items, and whatever held-out
items the caller adds).

Two draws, because the protocols differ:

* ``replace=True`` (training, Elliot's scheme): each request independently, uniform over the pool,
  redrawn while it hits an excluded item (vectorised rejection);
* ``replace=False`` (evaluation): ``n`` distinct items per user, uniform without replacement among
  the allowed ones (each allowed item gets a uniform random key, the ``n`` smallest keys win), or
  every allowed item when fewer than ``n`` exist.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from elliot_visual.data.interactions import HeldOut, Interactions

_KEY_BLOCK = 1024  # users per block of random keys (bounds memory to block x n_items floats)


def excluded_items(data: Interactions, *parts: HeldOut | None) -> sp.csr_matrix:
    """(n_users, n_items) CSR whose stored entries are each user's train items plus her in-catalogue
    items of every held-out ``part`` given (None parts are skipped)."""
    train = data.train_binary.tocoo()
    rows, cols = [train.row], [train.col]
    for part in parts:
        if part is None:
            continue
        inside = part.items >= 0
        rows.append(part.users[inside])
        cols.append(part.items[inside])
    r, c = np.concatenate(rows), np.concatenate(cols)
    merged = sp.csr_matrix((np.ones(r.shape[0], dtype=np.int8), (r, c)), shape=(data.n_users, data.n_items))
    merged.sum_duplicates()
    merged.data[:] = 1
    merged.sort_indices()
    return merged


def is_excluded(excluded: sp.csr_matrix, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Boolean (len(users),): whether each (user, item) pair is stored in ``excluded``."""
    if len(users) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(excluded[users, items]).ravel() != 0


def draw_negatives(excluded: sp.csr_matrix, users: np.ndarray, n: int, rng: np.random.Generator, *,
                   replace: bool = True, pool: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Negatives for ``users``: flat (users, items) arrays, user-major (each user's draws together).

    ``replace=True`` gives exactly ``n`` draws per user (callers leave out users with no allowed
    item: rejection would never end); ``replace=False`` gives up to ``n`` distinct items per user,
    ascending by user. ``pool`` restricts the candidates (e.g. items with train interactions);
    None means the whole catalogue.
    """
    users = np.asarray(users, dtype=np.int64)
    if replace:
        wanted = np.repeat(users, n) if n != 1 else users
        return wanted, _rejection(excluded, wanted, rng, pool)
    return _without_replacement(excluded, users, n, rng, pool)


def _rejection(excluded: sp.csr_matrix, users: np.ndarray, rng: np.random.Generator,
               pool: np.ndarray | None) -> np.ndarray:
    """One uniform allowed item per entry of ``users``, redrawn while excluded."""
    n_items = excluded.shape[1]
    draw = (lambda k: pool[rng.integers(0, len(pool), k)]) if pool is not None else (
        lambda k: rng.integers(0, n_items, k))
    neg = draw(len(users))
    bad = np.flatnonzero(is_excluded(excluded, users, neg))
    while bad.size:
        neg[bad] = draw(bad.size)
        bad = bad[is_excluded(excluded, users[bad], neg[bad])]
    return neg


def _without_replacement(excluded: sp.csr_matrix, users: np.ndarray, n: int, rng: np.random.Generator,
                         pool: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    n_items = excluded.shape[1]
    outside_pool = None
    if pool is not None:
        outside_pool = np.ones(n_items, dtype=bool)
        outside_pool[pool] = False
    rows, cols = [], []
    take = min(n, n_items)
    for start in range(0, users.shape[0], _KEY_BLOCK):
        block = users[start:start + _KEY_BLOCK]
        keys = rng.random((block.shape[0], n_items), dtype=np.float32)
        sub = excluded[block].tocoo()
        keys[sub.row, sub.col] = np.inf
        if outside_pool is not None:
            keys[:, outside_pool] = np.inf
        chosen = np.argpartition(keys, take - 1, axis=1)[:, :take] if take < n_items else \
            np.broadcast_to(np.arange(n_items), keys.shape)
        allowed = np.isfinite(np.take_along_axis(keys, chosen, axis=1))
        local, slot = np.nonzero(allowed)
        rows.append(block[local])
        cols.append(chosen[local, slot])
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)
