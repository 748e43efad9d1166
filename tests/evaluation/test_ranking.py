"""Full ranking: train masking, tie order (lower item index first), short lists, full-rank positions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from elliot_visual.data.interactions import Interactions
from elliot_visual.evaluation import ranking
from elliot_visual.evaluation.ranking import TopK, csr_row_search, rank, rank_among


def one_user(train_items: list[str], n_items: int) -> Interactions:
    """User 'a' (index 1) with ``train_items``; user 'b' (index 0) holds every item, so the
    catalogue is i0..i{n-1} in index order."""
    rows = [("b", f"i{i}", 1.0) for i in range(n_items)] + [("a", it, 1.0) for it in train_items]
    train = pd.DataFrame(rows, columns=["user", "item", "rating"])
    test = pd.DataFrame([("a", "i0", 1.0)], columns=["user", "item", "rating"])
    return Interactions.from_frames("one", train, test)


def test_rank_masks_train_items_and_pads_short_lists(tiny, tiny_scores):
    top = rank(tiny_scores, tiny, k=4)
    names = [[None if i < 0 else tiny.item_ids[i] for i in row] for row in top.items]
    assert names[:3] == [["i5", "i2", "i3", "i4"],      # u0: i0, i1 are train items
                         ["i0", "i1", "i4", "i5"],      # u1: i2, i3 are train items
                         ["i2", "i1", "i3", None]]      # u2: only 3 candidates
    assert top.lengths().tolist() == [4, 4, 3, 4]
    assert top.scores[2, 3] == -np.inf
    np.testing.assert_allclose(top.scores[0], [4.0, 3.0, 2.0, 1.0])
    longer = rank(tiny_scores, tiny, k=8)  # more than the 6 catalogue items
    assert longer.items.shape == (4, 8) and longer.items[0, 4:].tolist() == [-1] * 4


def test_rank_breaks_ties_by_lower_item_index_inside_and_at_the_cutoff(fixed_scores):
    data = one_user(["i0"], 6)
    a = data.user_index["a"]
    scores = np.array([[0] * 6, [9, 5, 5, 5, 0, 5]], dtype=np.float32)  # i0 is a's train item
    assert rank(fixed_scores(scores), data, k=2).items[a].tolist() == [1, 2]
    assert rank(fixed_scores(scores), data, k=4).items[a].tolist() == [1, 2, 3, 5]
    reversed_ties = np.array([[0] * 6, [9, 1, 7, 7, 7, 7]], dtype=np.float32)
    assert rank(fixed_scores(reversed_ties), data, k=3).items[a].tolist() == [2, 3, 4]


def test_rank_leaves_a_models_own_tensor_untouched(tiny):
    popularity = torch.arange(tiny.n_items, dtype=torch.float32)
    rank(lambda users: popularity.expand(len(users), -1), tiny, k=3)
    parameter = torch.nn.Parameter(torch.ones(tiny.n_users, tiny.n_items))
    rank(lambda users: parameter, tiny, k=3)
    assert popularity.tolist() == list(range(tiny.n_items))
    assert bool(torch.isfinite(parameter).all())


def test_rank_rejects_nan_scores_and_wrong_shapes(tiny, fixed_scores):
    scores = np.ones((tiny.n_users, tiny.n_items), dtype=np.float32)
    scores[1, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rank(fixed_scores(scores), tiny, k=2)
    with pytest.raises(ValueError, match="expected"):
        rank(lambda users: torch.zeros(len(users), tiny.n_items + 1), tiny, k=2)


def brute_force(scores: np.ndarray, train: sp.csr_matrix, k: int) -> np.ndarray:
    """Reference: full stable sort by (-score, item index) over the candidates, -1 padded."""
    out = np.full((scores.shape[0], k), -1)
    for u in range(scores.shape[0]):
        banned = set(train.indices[train.indptr[u]:train.indptr[u + 1]])
        cand = [i for i in range(scores.shape[1]) if i not in banned]
        ordered = sorted(cand, key=lambda i: (-scores[u, i], i))[:k]
        out[u, :len(ordered)] = ordered
    return out


def random_split(rng: np.random.Generator, n_users: int = 40, n_items: int = 30) -> Interactions:
    rows = [(f"u{u}", f"i{i}", float(rng.integers(1, 6)))
            for u in range(n_users) for i in rng.choice(n_items, size=rng.integers(2, 12), replace=False)]
    frame = pd.DataFrame(rows, columns=["user", "item", "rating"])
    in_test = rng.random(len(frame)) < 0.3
    return Interactions.from_frames("random", frame[~in_test], frame[in_test])


def test_rank_matches_a_full_stable_sort_across_batches(rng, fixed_scores):
    data = random_split(rng)
    scores = rng.integers(0, 4, size=(data.n_users, data.n_items)).astype(np.float32)  # many ties
    top = rank(fixed_scores(scores), data, k=data.n_items, batch_size=7)
    np.testing.assert_array_equal(top.items, brute_force(scores, data.train, data.n_items))


def elliot_full_list(scores: np.ndarray, train: sp.csr_matrix, u: int) -> list[int]:
    """Elliot's full-length list: candidates by (-score, index), then the -inf train items by index."""
    banned = train.indices[train.indptr[u]:train.indptr[u + 1]]
    cand = [i for i in range(scores.shape[1]) if i not in set(banned)]
    return sorted(cand, key=lambda i: (-scores[u, i], i)) + sorted(banned.tolist())


@pytest.mark.parametrize("cache_rows", [None, 1, 2], ids=["one chunk", "chunks of 1 row", "chunks of 2 rows"])
@pytest.mark.parametrize("tied", [True, False], ids=["integer scores, many ties", "continuous scores"])
def test_positions_are_places_in_elliots_full_length_list(rng, fixed_scores, tied, cache_rows, monkeypatch):
    data = random_split(rng)
    if cache_rows is not None:  # count positions a few score rows at a time, as on a large catalogue
        monkeypatch.setattr(ranking, "_CACHE_BLOCK", cache_rows * data.n_items)
    scores = (rng.integers(0, 4, size=(data.n_users, data.n_items)) if tied
              else rng.normal(size=(data.n_users, data.n_items))).astype(np.float32)
    held = data.test
    inside = held.items >= 0
    # held-out items plus, for every third user, a train item (it sits in the -inf tail)
    extra_users = np.arange(0, data.n_users, 3)
    extra_items = data.train.indices[data.train.indptr[extra_users]]
    relevant = sp.csr_matrix((np.ones(inside.sum() + extra_users.size),
                              (np.r_[held.users[inside], extra_users], np.r_[held.items[inside], extra_items])),
                             shape=(data.n_users, data.n_items))
    relevant.sum_duplicates()
    top = rank(fixed_scores(scores), data, k=3, batch_size=5, relevant=relevant)
    rows = np.repeat(np.arange(data.n_users), np.diff(relevant.indptr))
    expected = [elliot_full_list(scores, data.train, u).index(i) for u, i in zip(rows, relevant.indices)]
    assert top.positions.tolist() == expected


def test_relevant_train_items_are_placed_after_all_candidates(fixed_scores):
    data = one_user(["i1", "i3"], 5)
    a = data.user_index["a"]
    scores = np.array([[0] * 5, [1, 9, 2, 9, 3]], dtype=np.float32)
    relevant = sp.csr_matrix(([1.0, 1.0, 1.0], ([a, a, a], [0, 1, 3])), shape=(2, 5))
    top = rank(fixed_scores(scores), data, k=2, users=np.array([a]), relevant=relevant)
    # candidates i4 (3), i2 (2), i0 (1) -> i0 at 2; then the masked train items by index: i1 at 3, i3 at 4
    assert top.positions.tolist() == [2, 3, 4]


def test_rank_among_ranks_only_the_candidates(tiny, tiny_scores):
    candidates = sp.csr_matrix(([1, 1, 1], ([0, 0, 1], [3, 4, 5])), shape=(tiny.n_users, tiny.n_items))
    top = rank_among(tiny_scores, candidates, k=3, users=np.array([0, 1]))
    assert top.items.tolist() == [[3, 4, -1], [5, -1, -1]]


def test_topk_gives_public_ids_and_elliot_dicts(tiny, tiny_scores):
    top = rank(tiny_scores, tiny, k=3, users=np.array([2, 0]))
    users, items = top.public_ids(tiny)
    assert users.tolist() == ["u2", "u0"] and items[0].tolist() == ["i2", "i1", "i3"]
    recs = top.as_dict(tiny)
    assert recs["u0"] == [("i5", 4.0), ("i2", 3.0), ("i3", 2.0)]
    assert isinstance(top, TopK) and top.k == 3


def test_csr_row_search_finds_entries_and_counts_smaller_columns():
    matrix = sp.csr_matrix(([1, 1, 1, 1], ([0, 0, 1, 1], [1, 4, 0, 2])), shape=(2, 5))
    found, before = csr_row_search(matrix, np.array([0, 0, 1, 1]), np.array([4, 3, 2, 1]))
    assert found.tolist() == [True, False, True, False]
    assert before.tolist() == [1, 1, 1, 1]
