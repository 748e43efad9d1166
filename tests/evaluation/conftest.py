"""A tiny hand-made split with fixed scores, whose metric values are derived by hand in the tests.

Items i0..i5 are numbered in order of first appearance in train. Train popularity (users):
i0: 2 (u0, u2), i1: 2 (u0, u3), i2..i5: 1 each; 8 train interactions, 4 train users.

====  ===============  ===========================================  ===================
user  train            test (item: rating)                          ranking (non-train)
====  ===============  ===========================================  ===================
u0    i0, i1           i2: 5, i4: 2, iX: 4 (iX outside catalogue)   i5, i2, i3, i4
u1    i2, i3           i0: 4                                        i0, i1, i4, i5
u2    i4, i5, i0       i1: 1                                        i2, i1, i3
u3    i1               (none: not evaluated)                        i0, ...
====  ===============  ===========================================  ===================

With ``relevance_threshold: 3``: Rel(u0) = {i2, iX} (|Rel| = 2), Rel(u1) = {i0}, Rel(u2) = {}.
Long tail (80% of 8 = 6.4; popularity order i0, i1, i2, i3, i4, i5 gives cumulated 2, 4, 5, 6, 7):
the short head is i0..i4, the long tail {i5}.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from elliot_visual.data.interactions import Interactions

ITEMS = ["i0", "i1", "i2", "i3", "i4", "i5"]
# Scores per user; train items get high scores on purpose (they must be masked anyway).
SCORES = {
    "u0": {"i0": 9.0, "i1": 9.0, "i5": 4.0, "i2": 3.0, "i3": 2.0, "i4": 1.0},
    "u1": {"i2": 9.0, "i3": 9.0, "i0": 4.0, "i1": 3.0, "i4": 2.0, "i5": 1.0},
    "u2": {"i4": 9.0, "i5": 9.0, "i0": 9.0, "i2": 3.0, "i1": 2.0, "i3": 1.0},
    "u3": {"i1": 9.0, "i0": 5.0, "i2": 4.0, "i3": 3.0, "i4": 2.0, "i5": 1.0},
}


def frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


@pytest.fixture
def tiny_split() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) frames of the table above."""
    train = frame([("u0", "i0", 5), ("u0", "i1", 1), ("u1", "i2", 1), ("u1", "i3", 1),
                   ("u2", "i4", 1), ("u2", "i5", 1), ("u2", "i0", 1), ("u3", "i1", 1)])
    test = frame([("u0", "i2", 5), ("u0", "i4", 2), ("u0", "iX", 4), ("u1", "i0", 4), ("u2", "i1", 1)])
    return train, test


@pytest.fixture
def tiny(tiny_split) -> Interactions:
    data = Interactions.from_frames("tiny", *tiny_split)
    assert list(data.item_ids) == ITEMS and list(data.user_ids) == ["u0", "u1", "u2", "u3"]
    return data


def score_table(data: Interactions, scores: dict[str, dict[str, float]]) -> torch.Tensor:
    """(n_users, n_items) tensor from {user: {item: score}}."""
    table = torch.zeros(data.n_users, data.n_items)
    for user, row in scores.items():
        for item, value in row.items():
            table[data.user_index[user], data.item_index[item]] = value
    return table


@pytest.fixture
def tiny_scores(tiny: Interactions):
    """``score_fn`` for :data:`SCORES`."""
    table = score_table(tiny, SCORES)
    return lambda users: table[users]


@pytest.fixture
def fixed_scores():
    """Factory: ``score_fn`` returning rows of a fixed (n_users, n_items) matrix."""
    def make(matrix: np.ndarray):
        table = torch.as_tensor(np.asarray(matrix, dtype=np.float32))
        return lambda users: table[users]
    return make
