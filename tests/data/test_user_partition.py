"""The user-level cut of the aggregation protocol: disjoint, complete, seeded, sized by cumulative rounding."""
from __future__ import annotations

import numpy as np
import pytest

from elliot_visual.data.user_partition import partition_users

USERS = [f"u{i}" for i in range(10)] * 3     # repeated rows of the same users count once


def test_seventy_percent_then_the_rest():
    tuning, rest = partition_users(USERS, [0.7], seed=1)
    assert (tuning.size, rest.size) == (7, 3)
    assert set(tuning) | set(rest) == set(USERS) and not set(tuning) & set(rest)


def test_three_groups_sizes_by_cumulative_rounding():
    parts = partition_users(USERS, [0.7, 0.21], seed=1)    # cuts at round(7.0) and round(9.1)
    assert [p.size for p in parts] == [7, 2, 1]


def test_seeded():
    assert all(np.array_equal(a, b) for a, b in zip(partition_users(USERS, [0.5], 4), partition_users(USERS, [0.5], 4)))
    assert not np.array_equal(partition_users(USERS, [0.5], 4)[0], partition_users(USERS, [0.5], 5)[0])


def test_bad_shares():
    with pytest.raises(ValueError, match="sum to at most 1"):
        partition_users(USERS, [0.8, 0.3], seed=0)
