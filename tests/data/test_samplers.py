"""The training samplers: valid triples and labels, seeded, and finite even for a user holding every item."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from elliot_visual.data.samplers import BPRSampler, PointwiseSampler


def _train(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    users = [u for u, items in enumerate(rows) for _ in items]
    items = [i for row in rows for i in row]
    return sp.csr_matrix((np.ones(len(items)), (users, items)), shape=(len(rows), n_items))


TRAIN = _train([[0, 1], [2], [1, 3, 4], []], n_items=6)   # item 5 has no train interaction; user 3 none


def test_bpr_triples_pair_a_train_positive_with_a_non_train_negative_from_train_items() -> None:
    batch = BPRSampler(TRAIN, batch_size=500, seed=1).sample(500)
    dense = TRAIN.toarray()
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
    sampler = PointwiseSampler(train, batch_size=4, seed=3, negatives=2)
    batches = list(sampler.epoch())
    users = np.concatenate([b.users.numpy() for b in batches])
    items = np.concatenate([b.items.numpy() for b in batches])
    labels = np.concatenate([b.labels.numpy() for b in batches])
    dense = train.toarray()
    assert len(batches) == sampler.batches_per_epoch() == -(-(7 + 3 * 2) // 4)
    assert (labels == 1).sum() == 7 and (dense[users[labels == 1], items[labels == 1]] == 1).all()
    assert (labels == 0).sum() == 6 and (dense[users[labels == 0], items[labels == 0]] == 0).all()
