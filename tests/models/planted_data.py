"""Planted visual data for the model tests, read through the real loaders and FeatureStore (helpers).

``make_planted_dataset`` (data/synthetic.py) draws users who prefer visual styles and cold items
that only appear in test. Here it is split (each user's cold events and last two warm events go to
test), and its feature vectors are written in the extraction layout; from them we derive the other
kinds the visual models read, keeping the same planted signal: feature maps (regions, channels)
where two regions carry the features and two are noise (ACF must attend), small images whose
colours encode the features (DVBPR must learn them), and PCA vectors computed by the store.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from elliot_visual.data.interactions import Interactions
from elliot_visual.data.synthetic import make_planted_dataset
from elliot_visual.features.store import FeatureStore, load_side_information
from elliot_visual.models.base import Recommender, build_model
from elliot_visual.storage import write_npy, write_text
from elliot_visual.training.loop import TrainingConfig, train

IMAGE_SIZE = 32
GRID = 2
WARM_TEST = 1  # warm test events per user (her last ones), besides her cold events
REGIONS, CHANNELS = 4, 16


@dataclass
class Planted:
    data: Interactions
    store: FeatureStore
    cold: np.ndarray  # (n_items,) True for items without train interactions


def _split(frame: pd.DataFrame, test_start: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    warm = frame[frame["timestamp"] < test_start]
    last_two = warm.groupby("user", sort=False).cumcount(ascending=False) < WARM_TEST
    test = pd.concat([warm[last_two], frame[frame["timestamp"] >= test_start]])
    return warm[~last_two], test


def _write_derived(root: Path, ids: np.ndarray, features: np.ndarray, rng: np.random.Generator) -> None:
    """Feature maps and images carrying the planted features, in the layouts the loaders read."""
    scale = features.std()
    maps = rng.normal(scale=scale, size=(len(ids), REGIONS, CHANNELS))
    for region in range(2):
        maps[:, region] = features @ rng.normal(size=(features.shape[1], CHANNELS)) / np.sqrt(features.shape[1])
    write_npy(root / "maps" / "features.npy", maps.astype(np.float32))
    write_text(root / "maps" / "item_ids.txt", "".join(f"{i}\n" for i in ids))
    # Images: a GRID x GRID mosaic of colours, a linear map of the features, plus pixel noise.
    colours = features @ rng.normal(size=(features.shape[1], 3 * GRID * GRID))
    colours = (colours - colours.min(0)) / (colours.max(0) - colours.min(0))
    cell = IMAGE_SIZE // GRID
    grid = colours.reshape(len(ids), 3, GRID, GRID).repeat(cell, 2).repeat(cell, 3)
    pixels = np.clip(grid * 255 + rng.normal(scale=8, size=grid.shape), 0, 255).astype(np.uint8)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for item, image in zip(ids, pixels):
        Image.fromarray(image.transpose(1, 2, 0)).save(root / "images" / f"{item}.png")


PLANTED = dict(n_users=240, n_items=300, n_styles=6, feature_dim=32, cold_items=60, interactions_per_user=12)


def make_planted(root: Path, seed: int = 0, **overrides: float) -> Planted:
    """The planted dataset of ``seed``, split, with every feature kind on disk and a store over them."""
    planted = make_planted_dataset(**{**PLANTED, **overrides}, seed=seed)
    train_frame, test_frame = _split(planted.interactions, planted.test_start)
    data = Interactions.from_frames("planted", train_frame, test_frame)
    write_npy(root / "vectors" / "features.npy", planted.features)
    write_text(root / "vectors" / "item_ids.txt", "".join(f"{i}\n" for i in planted.item_ids))
    _write_derived(root, planted.item_ids, planted.features, np.random.default_rng(seed + 1))
    entry = {"dataloader": "VisualAttribute", "visual_features": root / "vectors",
             "visual_feat_map_features": root / "maps", "images_src_folder": root / "images",
             "output_image_size": f"({IMAGE_SIZE}, {IMAGE_SIZE})", "n_components": 16}
    store, data = load_side_information([entry], data)
    return Planted(data, store, ~data.train_item_mask)


def fit(cls: type[Recommender], params: object, planted: Planted) -> Recommender:
    """Build ``cls`` with the features it needs and train (or fit) it on the planted train split."""
    model = build_model(cls, params, planted.data.n_users, planted.data.n_items,
                        planted.store.tensors_for(cls))
    train(model, planted.data, TrainingConfig(progress=False))
    return model


def recall_at(model: Recommender, data: Interactions, k: int = 20) -> float:
    """Mean over test users of |top-k ∩ test| / |test| (train items masked, out-of-catalogue items count)."""
    with torch.no_grad():
        scores = model.score(torch.arange(data.n_users)).float().numpy()
    scores[data.train.toarray() > 0] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = np.zeros(data.n_users)
    relevant = np.bincount(data.test.users, minlength=data.n_users)
    for user, item in zip(data.test.users, data.test.items):
        if item >= 0 and item in top[user]:
            hits[user] += 1
    users = relevant > 0
    return float((hits[users] / relevant[users]).mean())


def cold_auc(model: Recommender, data: Interactions, cold: np.ndarray) -> float:
    """Mean over users with a cold test item of AUC(her cold test items vs the other cold items)."""
    with torch.no_grad():
        scores = model.score(torch.arange(data.n_users)).float().numpy()
    cold_items = np.flatnonzero(cold)
    values = []
    for user in np.unique(data.test.users):
        mine = data.test.items[(data.test.users == user)]
        positives = np.intersect1d(mine, cold_items)
        negatives = np.setdiff1d(cold_items, mine)
        if len(positives) == 0 or len(negatives) == 0:
            continue
        pos, neg = scores[user, positives][:, None], scores[user, negatives][None, :]
        values.append(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))
    return float(np.mean(values))
