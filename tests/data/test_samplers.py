"""The training samplers: built from Interactions, valid triples and labels, seeded, typed options,
event times in every batch, and finite even for a user holding every item."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from elliot_visual.data.interactions import HeldOut, Interactions
from elliot_visual.data.negatives import draw_negatives, excluded_items
from elliot_visual.data.samplers import (BPROptions, BPRSampler, PointwiseOptions, PointwiseSampler, UserSetOptions,
                                         UserSetSampler, user_sets)


def _held(pairs: list[tuple[int, int]], times: list[float] | None = None) -> HeldOut:
    users = np.array([u for u, _ in pairs], dtype=np.int64)
    items = np.array([i for _, i in pairs], dtype=np.int64)
    return HeldOut(users=users, items=items, item_ids=np.array([f"i{i}" for i in items], dtype=object),
                   ratings=np.ones(len(pairs)), timestamps=None if times is None else np.array(times, dtype=float))


def _train(rows: list[list[int]], n_items: int, times: list[list[float]] | None = None,
           validation: list[tuple[int, int]] | None = None) -> Interactions:
    """Interactions whose dense indices are exactly the given ones (item j is ``i<j>``)."""
    users = [u for u, items in enumerate(rows) for _ in items]
    items = [i for row in rows for i in row]
    shape = (len(rows), n_items)
    matrix = sp.csr_matrix((np.ones(len(items)), (users, items)), shape=shape)
    stamps = None
    if times is not None:
        stamps = sp.csr_matrix(([t for row in times for t in row], (users, items)), shape=shape)
    return Interactions(name="tiny", user_ids=np.array([f"u{u}" for u in range(len(rows))], dtype=object),
                        item_ids=np.array([f"i{i}" for i in range(n_items)], dtype=object), train=matrix,
                        test=_held([]), validation=None if validation is None else _held(validation),
                        train_timestamps=stamps)


TRAIN = _train([[0, 1], [2], [1, 3, 4], []], n_items=6)   # item 5 has no train interaction; user 3 none


def test_bpr_triples_pair_a_train_positive_with_a_non_train_negative_from_train_items() -> None:
    batch = BPRSampler(TRAIN, batch_size=500, seed=1).sample(500)
    dense = TRAIN.train.toarray()
    users, pos, neg = batch.users.numpy(), batch.pos.numpy(), batch.neg.numpy()
    assert (dense[users, pos] == 1).all() and (dense[users, neg] == 0).all()
    assert 3 not in set(users)                  # a user without train items gives no triple
    assert 5 not in set(neg)                    # negatives come from the train catalogue, as in Elliot
    assert set(neg[users == 1]) == {0, 1, 3, 4}  # every other train item is drawn


def test_bpr_epoch_has_transactions_over_batch_size_batches_and_is_seeded() -> None:
    sampler = BPRSampler(TRAIN, batch_size=2, seed=7)
    first = [(b.users.tolist(), b.pos.tolist(), b.neg.tolist()) for b in sampler.epoch()]
    again = [(b.users.tolist(), b.pos.tolist(), b.neg.tolist()) for b in BPRSampler(TRAIN, 2, seed=7).epoch()]
    assert len(first) == 6 // 2 and first == again


def test_a_user_holding_every_item_is_left_out_instead_of_looping_forever(caplog) -> None:
    train = _train([[0, 1, 2, 3], [0], [1, 2]], n_items=4)
    batch = BPRSampler(train, batch_size=200, seed=0).sample(200)
    assert 0 not in set(batch.users.tolist())
    assert "1 user(s) interacted with every candidate item" in caplog.text
    with pytest.raises(ValueError, match="no user has both a positive and a negative"):
        BPRSampler(_train([[0, 1], [0, 1]], n_items=2), batch_size=4)


def test_pointwise_epoch_has_each_positive_once_and_k_negatives_per_positive() -> None:
    train = _train([[0, 1, 2, 3], [0], [1, 2]], n_items=4)     # user 0 holds every item: no negatives
    sampler = PointwiseSampler(train, batch_size=4, seed=3, options=PointwiseOptions(negatives=2))
    batches = list(sampler.epoch())
    users = np.concatenate([b.users.numpy() for b in batches])
    items = np.concatenate([b.items.numpy() for b in batches])
    labels = np.concatenate([b.labels.numpy() for b in batches])
    dense = train.train.toarray()
    assert len(batches) == sampler.batches_per_epoch() == -(-(7 + 3 * 2) // 4)
    assert (labels == 1).sum() == 7 and (dense[users[labels == 1], items[labels == 1]] == 1).all()
    assert (labels == 0).sum() == 6 and (dense[users[labels == 0], items[labels == 0]] == 0).all()


def test_negatives_from_the_catalogue_include_items_without_train_interactions() -> None:
    batch = BPRSampler(TRAIN, batch_size=500, seed=1, options=BPROptions(negatives_from="catalogue")).sample(500)
    assert 5 in set(batch.neg.tolist())
    assert (TRAIN.train.toarray()[batch.users.numpy(), batch.neg.numpy()] == 0).all()


def test_exclude_validation_keeps_a_users_validation_items_out_of_her_negatives() -> None:
    data = _train([[0, 1], [2], [1, 3, 4], []], n_items=6, validation=[(1, 0), (1, 3)])
    plain = BPRSampler(data, batch_size=2000, seed=2).sample(2000)
    strict = BPRSampler(data, batch_size=2000, seed=2, options=BPROptions(exclude_validation=True)).sample(2000)
    assert {0, 3} <= set(plain.neg[plain.users == 1].tolist())      # drawn when validation items are allowed
    assert set(strict.neg[strict.users == 1].tolist()) == {1, 4}     # train items 0..4 minus {2} minus {0, 3}


def test_batches_carry_the_time_of_the_positive_event() -> None:
    data = _train([[0, 1], [2]], n_items=4, times=[[10.0, 20.0], [30.0]])
    triples = BPRSampler(data, batch_size=64, seed=0).sample(64)
    expected = {(0, 0): 10.0, (0, 1): 20.0, (1, 2): 30.0}
    assert [expected[(u, p)] for u, p in zip(triples.users.tolist(), triples.pos.tolist())] == triples.times.tolist()
    batch = next(PointwiseSampler(data, batch_size=100, seed=0, options=PointwiseOptions(negatives=3)).epoch())
    for u, i, label, t in zip(batch.users.tolist(), batch.items.tolist(), batch.labels.tolist(), batch.times.tolist()):
        if label == 1:
            assert t == expected[(u, i)]
        else:                                                        # a negative keeps its positive's time
            assert t in {v for (user, _), v in expected.items() if user == u}
    assert torch.isnan(BPRSampler(_train([[0], [1]], 3), 4, seed=0).sample(4).times).all()   # no timestamps


def test_draw_without_replacement_gives_distinct_allowed_items_or_all_of_them() -> None:
    data = _train([[0, 1], [2], [1, 3, 4], []], n_items=6)
    users, items = draw_negatives(excluded_items(data), np.array([0, 2]), 3, np.random.default_rng(0), replace=False)
    by_user = {u: sorted(items[users == u].tolist()) for u in (0, 2)}
    assert len(by_user[0]) == 3 and set(by_user[0]) <= {2, 3, 4, 5}
    assert by_user[2] == [0, 2, 5]                                    # only three items are allowed: all of them


def test_user_sets_pad_with_masks_and_target_the_union_of_all_item_labels() -> None:
    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=np.float32)
    sets = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [1, 1, 1, 1, 0]]))
    batch = user_sets(sets, np.array([0, 1]), labels, 40, np.random.default_rng(0))
    assert batch.items.tolist() == [[0, 1], [2, 0]] and batch.mask.tolist() == [[True, True], [True, False]]
    assert batch.targets.tolist() == [[1, 1, 0], [0, 1, 1]]
    capped = user_sets(sets, np.array([2]), labels, 2, np.random.default_rng(0))
    assert capped.mask.sum() == 2 and set(capped.items[0].tolist()) <= {0, 1, 2, 3}
    assert capped.targets.tolist() == [[1, 1, 1]]                     # targets use every item, not the subset


def test_user_set_sampler_visits_every_train_user_once_per_epoch_seeded() -> None:
    data = _train([[0, 1], [2], [1, 3, 4], []], n_items=6)
    labels = {"item_labels": torch.eye(6)[:, :3]}
    sampler = UserSetSampler(data, batch_size=2, seed=5, options=UserSetOptions(max_set_size=2), features=labels)
    first = [b.users.tolist() for b in sampler.epoch()]
    again = [b.users.tolist() for b in UserSetSampler(data, 2, seed=5, options=UserSetOptions(max_set_size=2),
                                                      features=labels).epoch()]
    assert sorted(sum(first, [])) == [0, 1, 2] and first == again and sampler.batches_per_epoch() == 2
    with pytest.raises(ValueError, match="item_labels"):
        UserSetSampler(data, 2)
