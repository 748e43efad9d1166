"""Seeded partition of users into disjoint groups: the aggregation paper's user-level protocol.

Demochkin & Savchenko (2019) fine-tune the CNN on the items of 70% of the users and train and test
the set networks on the others (split again 70/30 by user, validation users taken from the
training part). Every cut is by user, so no user's set is seen in two roles; items may be shared.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def partition_users(users: Sequence[str] | np.ndarray, shares: Sequence[float], seed: int) -> list[np.ndarray]:
    """The distinct ``users`` (sorted, then shuffled by ``seed``) cut into ``len(shares) + 1`` groups.

    Group g holds ``round(share_g * n)`` users (cumulative rounding, so the sizes add up to n);
    the last group takes the rest. ``shares`` must be >= 0 and sum to at most 1.
    """
    shares = [float(s) for s in shares]
    if any(s < 0 for s in shares) or sum(shares) > 1 + 1e-12:
        raise ValueError(f"user shares {shares} must be >= 0 and sum to at most 1")
    distinct = np.array(sorted({str(u) for u in users}), dtype=object)
    shuffled = distinct[np.random.default_rng(seed).permutation(distinct.size)]
    cuts = np.round(np.cumsum(shares) * distinct.size).astype(int)
    return [np.sort(part) for part in np.split(shuffled, cuts)]
