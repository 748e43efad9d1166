"""The planted category-set generator: the structure it promises is really there."""
from __future__ import annotations

import numpy as np

from elliot_visual.data.synthetic_categories import make_category_sets, write_category_sets


def small(seed: int = 3):
    return make_category_sets(n_users=80, n_groups=3, group_size=2, items_per_category=6, n_noise_items=20,
                              feature_dim=8, seed=seed)


def test_same_seed_same_data_and_another_seed_differs():
    a, b, c = small(), small(), small(seed=4)
    assert a.interactions.equals(b.interactions) and np.array_equal(a.features, b.features)
    assert not a.interactions.equals(c.interactions)


def test_sets_respect_sizes_groups_and_noise_labels():
    data = small()
    sizes = data.interactions.groupby("user").size()
    assert sizes.min() >= 5 and sizes.max() <= 40
    index = {it: i for i, it in enumerate(data.item_ids)}
    assert data.labels[data.noise].sum() == 0 and (data.labels[~data.noise].sum(axis=1) == 1).all()
    targets = data.targets()
    for u, user in enumerate(data.user_ids):
        items = data.interactions.loc[data.interactions["user"] == user, "item"].map(index).to_numpy()
        liked = set(data.user_groups[u][data.user_groups[u] >= 0])
        real = items[~data.noise[items]]
        # every labelled item comes from a liked group; the target is exactly their categories
        assert {int(data.groups[data.labels[i].argmax()]) for i in real} <= liked
        assert set(np.flatnonzero(targets[u])) == {int(data.labels[i].argmax()) for i in real}
    assert data.interactions.groupby("user")["item"].apply(
        lambda s: data.noise[s.map(index).to_numpy()].mean()).mean() > 0.2


def test_written_layout(tmp_path):
    data = small()
    files = write_category_sets(tmp_path, data)
    lines = files.labels.read_text().splitlines()
    assert len(lines) == len(data.item_ids)
    first_noise = int(np.flatnonzero(data.noise)[0])
    assert lines[first_noise] == f"{data.item_ids[first_noise]}\t"
    assert lines[0] == f"i0\t{data.label_names[0]}"
    assert np.load(files.features).shape == data.features.shape
    assert files.noise_items.read_text().split() == list(data.item_ids[data.noise])
