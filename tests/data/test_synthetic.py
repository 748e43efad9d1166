"""The planted dataset: deterministic, its signal where it was planted, written like real data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from elliot_visual.data.interactions import Interactions
from elliot_visual.data.readers import read_tsv
from elliot_visual.data.splitting import split_once
from elliot_visual.data.synthetic import make_planted_dataset, write_planted_dataset


@pytest.fixture(scope="module")
def planted():
    return make_planted_dataset(seed=5, cold_items=20)


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = make_planted_dataset(seed=1), make_planted_dataset(seed=1), make_planted_dataset(seed=2)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    np.testing.assert_array_equal(a.features, b.features)
    assert not a.interactions.equals(c.interactions)


def test_default_size_suits_a_quick_demo():
    data = make_planted_dataset()
    assert data.interactions["user"].nunique() == 300 and len(data.item_ids) == 400
    assert 4_000 <= len(data.interactions) <= 6_000
    assert not data.interactions.duplicated(["user", "item"]).any()


def test_users_interactions_concentrate_in_their_styles(planted):
    frame = planted.interactions
    styles = planted.item_styles[frame["item"].astype(int).to_numpy()]
    liked = planted.user_styles[frame["user"].astype(int).to_numpy()]
    in_style = (liked == styles[:, None]).any(axis=1)
    share = pd.Series(in_style).groupby(frame["user"].to_numpy()).mean()
    assert share.mean() > 0.85
    # by chance alone (1-2 of 8 styles) the share would be about 0.19
    assert (share > 0.5).mean() > 0.95


def test_features_reveal_the_style(planted):
    distances = np.linalg.norm(planted.features[:, None, :] - planted.style_centres[None, :, :], axis=2)
    assert (distances.argmin(axis=1) == planted.item_styles).all()
    same = planted.item_styles[:, None] == planted.item_styles[None, :]
    pairwise = np.linalg.norm(planted.features[:, None, :] - planted.features[None, :, :], axis=2)
    assert pairwise[same & ~np.eye(len(same), dtype=bool)].max() < pairwise[~same].min()


def test_timestamps_increase_per_user_and_cold_items_appear_only_from_test_start(planted):
    frame = planted.interactions
    assert (frame.groupby("user")["timestamp"].diff().dropna() > 0).all()
    cold_rows = frame["item"].isin(set(planted.cold_item_ids))
    assert len(planted.cold_item_ids) == 20 and cold_rows.sum() > 0
    assert (frame.loc[cold_rows, "timestamp"] >= planted.test_start).all()
    assert (frame.loc[~cold_rows, "timestamp"] < planted.test_start).all()
    [(train, test)] = split_once(frame, {"strategy": "temporal_hold_out", "test_ratio": 0.2},
                                 np.random.default_rng(0))
    assert not train["item"].isin(set(planted.cold_item_ids)).any()
    assert test["item"].isin(set(planted.cold_item_ids)).sum() == cold_rows.sum()


def test_users_own_style_items_are_visually_close(planted):
    # A list of the user's own-style items sits far closer in feature space than a random list.
    rng = np.random.default_rng(0)
    own = planted.features[planted.item_styles == 0]
    anywhere = planted.features[rng.choice(len(planted.features), size=len(own), replace=False)]
    spread = lambda x: np.linalg.norm(x - x.mean(axis=0), axis=1).mean()  # noqa: E731
    assert spread(own) < 0.6 * spread(anywhere)


def recall_at_10(scores: np.ndarray, data: Interactions) -> float:
    scores = scores.copy()
    scores[data.train_binary.toarray() > 0] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :10]
    relevant = data.test.relevance(data.n_users, data.n_items, 0).toarray() > 0
    n_relevant = data.test.n_relevant(data.n_users, 0)
    users = np.flatnonzero(n_relevant > 0)
    return float((np.take_along_axis(relevant, top, axis=1)[users].sum(axis=1) / n_relevant[users]).mean())


def test_planted_visual_signal_is_recoverable_from_features_alone(planted):
    # VisRank's idea: score items by cosine to the centroid of the user's train items' features.
    [(train, test)] = split_once(planted.interactions, {"strategy": "temporal_hold_out", "test_ratio": 0.2},
                                 np.random.default_rng(0))
    data = Interactions.from_frames("planted", train, test, extra_items=planted.cold_item_ids)
    features = planted.features[data.item_ids.astype(int)]
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    visual = recall_at_10((data.train_binary @ unit) @ unit.T, data)
    popular = recall_at_10(np.tile(data.item_popularity.astype(float), (data.n_users, 1)), data)
    assert visual > 3 * popular


def test_written_files_read_back_as_the_dataset(planted, tmp_path):
    files = write_planted_dataset(tmp_path / "planted", planted)
    pd.testing.assert_frame_equal(read_tsv(files.dataset), planted.interactions)
    np.testing.assert_array_equal(np.load(files.features), planted.features)
    assert files.item_ids.read_text().split() == planted.item_ids.tolist()
    np.testing.assert_array_equal(np.load(files.features_folder / "17.npy"), planted.features[17])
    assert len(list(files.features_folder.glob("*.npy"))) == 400
    categories = [line.split("\t") for line in files.categories.read_text().splitlines()]
    assert categories[:2] == [["0", str(planted.item_styles[0])], ["1", str(planted.item_styles[1])]]
    assert len(categories) == 400
    assert files.item_mapping.read_text().splitlines()[3] == "3\t3"


def test_item_images_show_the_planted_style_and_attributes(tmp_path):
    from elliot_visual.data.synthetic import draw_item_images
    from elliot_visual.features.loaders.images import ImageFolderSource

    data = make_planted_dataset(n_users=40, n_items=160, n_styles=5, feature_dim=8, seed=3)
    images = draw_item_images(data, size=16)
    assert images.shape == (160, 3, 16, 16) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, draw_item_images(data, size=16))
    # Style from pixels: nearest style centroid (computed on even items) classifies the odd items.
    flat = images.reshape(160, -1).astype(np.float64)
    even, odd = np.arange(0, 160, 2), np.arange(1, 160, 2)
    centroids = np.stack([flat[even][data.item_styles[even] == s].mean(0) for s in range(5)])
    guess = np.argmin(((flat[odd, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (guess == data.item_styles[odd]).mean() > 0.9   # chance: 0.2
    # The brightest channel values are the stripes: their red level follows the first attribute.
    top_red = np.sort(images[:, 0].reshape(160, -1), axis=1)[:, -20:].mean(1)
    stripe_red = np.where(top_red > 0, top_red, 0)
    assert np.corrcoef(stripe_red, data.item_attributes[:, 0])[0, 1] > 0.3
    # Written as PNGs (lossless) in the Images loader's layout.
    files = write_planted_dataset(tmp_path / "p", data, image_size=16)
    read = ImageFolderSource(files.images, (16, 16)).load(data.item_ids, np.ones(160, bool))
    np.testing.assert_array_equal(read, images)
