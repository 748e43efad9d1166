"""Synthetic users whose item sets reveal co-occurring product categories, with planted noise items.

The ground truth the aggregation networks (Demochkin & Savchenko, 2019) must recover: D categories
fall into planted *groups* that co-occur (a kitchen shopper buys cookware, cutlery and bakeware
together). Each labelled item has one category; its features are the category's centre plus noise.
*Noise items* carry no label in D (like items of categories rarer than the label threshold, or
gifts) and their features share one strong off-topic direction plus a large random part. A user
likes one or two groups and her set (5-40 items) mixes items of her groups' categories with a
share of noise items, so her target, the categories of her items, is blind to the noise.

What a correct pipeline must show on it: averaging the set lets the noise swamp the signal, while an
attention pooling learns to look away from the noise items (less attention mass on them) and predicts
the categories better (F1@5). Why hand-written: no library plants this structure with known truth.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from elliot_visual.data.item_labels import write_item_labels
from elliot_visual.storage import atomic_write, write_npy, write_text

LABEL_FILE, FEATURES_FILE, ITEM_IDS_FILE, NOISE_FILE = ("item_labels.tsv", "visual_features.npy",
                                                        "item_ids.txt", "noise_items.txt")


@dataclass(frozen=True)
class CategorySets:
    """The planted data and the truth behind it.

    ``interactions`` rows ``user, item, rating`` (ids ``"u0"``/``"i0"``); ``features`` (n_items, F)
    float32 and ``labels`` (n_items, D) float32 multi-hot, both in ``item_ids`` order;
    ``label_names`` (D,); ``noise`` (n_items,) True for the planted noise items;
    ``groups`` (D,) the group of each category; ``user_groups`` (n_users, 2), -1 when one group.
    """

    interactions: pd.DataFrame
    item_ids: np.ndarray
    user_ids: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    label_names: np.ndarray
    noise: np.ndarray
    groups: np.ndarray
    user_groups: np.ndarray

    def targets(self) -> np.ndarray:
        """(n_users, D) the multi-hot categories of each user's items (noise items add nothing)."""
        users = self.interactions["user"].map({u: i for i, u in enumerate(self.user_ids)}).to_numpy()
        items = self.interactions["item"].map({it: i for i, it in enumerate(self.item_ids)}).to_numpy()
        out = np.zeros((len(self.user_ids), self.labels.shape[1]), dtype=np.float32)
        np.maximum.at(out, users, self.labels[items])
        return out


def make_category_sets(n_users: int = 600, n_groups: int = 5, group_size: int = 4, items_per_category: int = 25,
                       n_noise_items: int = 150, feature_dim: int = 32, set_size: tuple[int, int] = (5, 40),
                       noise_share: tuple[float, float] = (0.2, 0.7), item_noise: float = 0.6,
                       noise_strength: float = 4.0, seed: int = 42) -> CategorySets:
    """Draw the planted sets (see the module docstring); the same ``seed`` gives the same data.

    D = ``n_groups * group_size`` categories, centres with unit-variance coordinates; an item is its
    category's centre + ``item_noise`` Gaussian noise. A noise item is ``noise_strength`` times
    (a shared unit direction + a random unit vector) scaled to the centres' norm. A user's set
    size is uniform in ``set_size``, her noise share uniform in ``noise_share``.
    """
    low, high = set_size
    if not 1 <= low <= high:
        raise ValueError(f"set_size {set_size} must be (min, max) with 1 <= min <= max")
    if not 0 <= noise_share[0] <= noise_share[1] < 1:
        raise ValueError(f"noise_share {noise_share} must lie in [0, 1)")
    rng = np.random.default_rng(seed)
    n_labels = n_groups * group_size
    groups = np.repeat(np.arange(n_groups), group_size)
    centres = rng.normal(size=(n_labels, feature_dim))
    category = np.repeat(np.arange(n_labels), items_per_category)
    labelled = centres[category] + item_noise * rng.normal(size=(category.size, feature_dim))
    scale = np.sqrt(feature_dim)
    direction = _unit(rng.normal(size=feature_dim))
    noise_features = noise_strength * scale * (direction + _unit(rng.normal(size=(n_noise_items, feature_dim))))
    features = np.concatenate([labelled, noise_features]).astype(np.float32)
    n_items = features.shape[0]
    labels = np.zeros((n_items, n_labels), dtype=np.float32)
    labels[np.arange(category.size), category] = 1.0
    noise = np.arange(n_items) >= category.size

    user_groups = np.full((n_users, 2), -1, dtype=np.int64)
    rows_user, rows_item = [], []
    noise_pool = np.flatnonzero(noise)
    for u in range(n_users):
        liked = rng.choice(n_groups, size=int(rng.integers(1, 3)), replace=False)
        user_groups[u, :liked.size] = liked
        size = int(rng.integers(low, high + 1))
        n_noise = min(int(round(size * rng.uniform(*noise_share))), size - 1, noise_pool.size)
        pool = np.flatnonzero(np.isin(groups[category], liked))
        chosen = np.concatenate([rng.choice(pool, size=min(size - n_noise, pool.size), replace=False),
                                 rng.choice(noise_pool, size=n_noise, replace=False)])
        rng.shuffle(chosen)
        rows_user.append(np.full(chosen.size, u))
        rows_item.append(chosen)
    users, items = np.concatenate(rows_user), np.concatenate(rows_item)
    frame = pd.DataFrame({"user": pd.Series([f"u{u}" for u in users], dtype=object),
                          "item": pd.Series([f"i{i}" for i in items], dtype=object),
                          "rating": np.ones(users.size)})
    return CategorySets(interactions=frame, item_ids=np.array([f"i{i}" for i in range(n_items)], dtype=object),
                        user_ids=np.array([f"u{u}" for u in range(n_users)], dtype=object), features=features,
                        labels=labels, label_names=np.array([f"group{g}/category{c}" for c, g in enumerate(groups)],
                                                            dtype=object),
                        noise=noise, groups=groups, user_groups=user_groups)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@dataclass(frozen=True)
class CategorySetFiles:
    """Where :func:`write_category_sets` put each part."""

    dataset: Path
    labels: Path
    features: Path
    item_ids: Path
    noise_items: Path


def write_category_sets(root: str | Path, data: CategorySets | None = None, **kwargs: object) -> CategorySetFiles:
    """Write the planted sets as real data are laid out (``kwargs`` go to :func:`make_category_sets`).

    ``dataset.tsv`` (headerless ``user, item, rating``), ``item_labels.tsv`` (``item \\t label|label``,
    empty for noise items), ``visual_features.npy`` with ``item_ids.txt`` (the FeatureVectors layout)
    and ``noise_items.txt``, the planted truth.
    """
    data = data if data is not None else make_category_sets(**kwargs)  # type: ignore[arg-type]
    root = Path(root)
    files = CategorySetFiles(root / "dataset.tsv", root / LABEL_FILE, root / FEATURES_FILE,
                             root / ITEM_IDS_FILE, root / NOISE_FILE)
    with atomic_write(files.dataset) as handle:
        data.interactions.to_csv(handle, sep="\t", header=False, index=False, lineterminator="\n")
    write_item_labels(files.labels, ((item, list(data.label_names[row > 0]))
                                     for item, row in zip(data.item_ids, data.labels)))
    write_npy(files.features, data.features)
    write_text(files.item_ids, "".join(f"{item}\n" for item in data.item_ids))
    write_text(files.noise_items, "".join(f"{item}\n" for item in data.item_ids[data.noise]))
    return files
