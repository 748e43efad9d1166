"""VisDiv@k: hand-computed distances (t-SNE bypassed), skips, coverage errors, determinism, caching,
and the planted signal (recommending the user's own visual style scores lower than Random)."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from elliot_visual.data.interactions import Interactions
from elliot_visual.data.synthetic import make_planted_dataset
from elliot_visual.evaluation.metrics import visdiv
from elliot_visual.evaluation.metrics.base import RankingContext
from elliot_visual.evaluation.metrics.visdiv import (TSNESettings, VisDiv, VisDivEngine, evaluation_features,
                                                     flatten_features, guarded_perplexity, parse_options,
                                                     positives_in_training_order, tsne_2d)
from elliot_visual.evaluation.ranking import TopK
from elliot_visual.registry import METRICS

KEY = "VisualAttributes/visual_features"
# Hand-made 2-D "features" (the identity projection uses them as coordinates).
COORDS = {"a": (0.0, 0.0), "b": (2.0, 0.0), "c": (1.0, 3.0), "d": (1.0, 5.0), "e": (3.0, 4.0), "f": (0.0, 0.0)}


def frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame([(u, i, 1.0) for u, i in rows], columns=["user", "item", "rating"])


@pytest.fixture
def hand() -> tuple[Interactions, np.ndarray, TopK]:
    """u0 liked a, b (centroid (1, 0)) and gets c, d (centroid (1, 4)): distance 4 at k=2, 3 at k=1.
    u1 liked e (3, 4) and gets f, a (both (0, 0)): distance 5 at k=1 and 2. u2 gets nothing;
    u3 has no test row (not evaluated)."""
    train = frame([("u0", "a"), ("u0", "b"), ("u1", "e"), ("u2", "c"), ("u3", "d"), ("u3", "f")])
    test = frame([("u0", "e"), ("u1", "b"), ("u2", "a")])
    data = Interactions.from_frames("hand", train, test)
    features = np.array([COORDS[i] for i in data.item_ids])
    idx = data.item_index
    items = np.array([[idx["c"], idx["d"]], [idx["f"], idx["a"]], [-1, -1], [idx["a"], idx["b"]]])
    top = TopK(users=np.arange(4), items=items, scores=np.zeros(items.shape, dtype=np.float32))
    return data, features, top


def context(data: Interactions, top: TopK, features: np.ndarray) -> RankingContext:
    return RankingContext.build(data, data.test, top, 0, features={KEY: features})


def test_identity_projection_gives_the_hand_computed_mean_distance(hand) -> None:
    data, features, top = hand
    metric = METRICS.get("visdiv")(projection="identity")
    ctx = context(data, top, features)
    at2, at1 = metric.compute(ctx, 2), metric.compute(ctx, 1)
    assert at2.value == pytest.approx((4 + 5) / 2)
    assert at1.value == pytest.approx((3 + 5) / 2)
    np.testing.assert_allclose(at2.per_user, [4.0, 5.0, np.nan])
    assert list(ctx.user_ids) == ["u0", "u1", "u2"]


def test_users_without_recommendations_are_skipped_and_counted(hand, caplog) -> None:
    data, features, top = hand
    engine = VisDivEngine(parse_options({"projection": "identity"}), features, data.item_ids)
    positives = data.train[[0, 1, 2]]
    positives_none = sp.csr_matrix(positives.shape)  # nobody has positives
    with caplog.at_level(logging.WARNING):
        result = engine.compute(positives, top.items[:3], 2)
    assert (result.no_positives, result.no_recommendations) == (0, 1)
    assert "skipped 0 users without training positives and 1 without recommendations" in caplog.text
    assert not np.isnan(result.value)
    with pytest.raises(ValueError, match="no evaluated user has both"):
        _ = engine.compute(positives_none, top.items[:3], 2).value


def test_features_not_covering_recommended_items_are_an_error_naming_them(hand) -> None:
    data, features, top = hand
    features = features.copy()
    features[data.item_index["d"]] = np.nan
    metric = VisDiv(projection="identity")
    with pytest.raises(ValueError, match=r"do not cover 1 recommended items.*: d\b"):
        metric.compute(context(data, top, features), 2)
    # At k=1 the list of u0 stops before d: nothing uncovered is needed.
    assert metric.compute(context(data, top, features), 1).value == pytest.approx(4.0)


def test_missing_feature_array_is_an_error_naming_the_key(hand) -> None:
    data, features, top = hand
    ctx = RankingContext.build(data, data.test, top, 0, features={"Other/visual_features": features})
    with pytest.raises(ValueError, match="no features 'VisualAttributes/visual_features'.*Other/visual_features"):
        VisDiv(projection="identity").compute(ctx, 2)


def test_cutoffs_option_limits_where_visdiv_is_computed(hand) -> None:
    data, features, top = hand
    metric = VisDiv(projection="identity", cutoffs=2)
    ctx = context(data, top, features)
    assert np.isnan(metric.compute(ctx, 1).value)
    assert metric.compute(ctx, 2).value == pytest.approx(4.5)


def test_column_names_the_projection_and_a_non_default_loader() -> None:
    assert VisDiv().column(10) == "VisDiv[global]"
    assert VisDiv(projection="per_user").column(10) == "VisDiv[per_user]"
    assert VisDiv(loader="ResNet50").column(100) == "VisDiv[global,ResNet50]"
    assert VisDiv(label="VisDiv").column(100) == "VisDiv"


def test_options_are_validated_with_the_closest_key_named() -> None:
    with pytest.raises(ValueError, match="perplexty: unknown key; did you mean 'perplexity'"):
        VisDiv(perplexty=5)
    with pytest.raises(ValueError, match="per_user runs scikit-learn"):
        VisDiv(projection="per_user", implementation="opentsne")


def test_mode_defaults_are_the_study_settings_for_per_user() -> None:
    study = parse_options({"projection": "per_user"}).tsne()
    assert (study.implementation, study.seed, study.init, study.learning_rate, study.perplexity,
            study.max_iter, study.pca_components) == ("sklearn", 1234, "random", 200.0, 30.0, 1000, 0)
    shared = parse_options({}).tsne()
    assert (shared.implementation, shared.init, shared.learning_rate, shared.pca_components) == \
        ("opentsne", "pca", "auto", 50)


def test_feature_maps_are_flattened_as_the_study_did_or_averaged() -> None:
    maps = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)  # (items, regions, channels)
    np.testing.assert_array_equal(flatten_features(maps, "concat")[1], np.arange(12, 24))
    np.testing.assert_allclose(flatten_features(maps, "mean")[0], [4, 5, 6, 7])


def test_positives_keep_the_training_row_order() -> None:
    data = Interactions.from_frames("order", frame([("u1", "b"), ("u1", "a"), ("u0", "a"), ("u0", "c"), ("u0", "b")]),
                                    frame([("u0", "x")]))
    [u0] = positives_in_training_order(data, np.array([data.user_index["u0"]]))
    assert list(data.item_ids[u0]) == ["a", "c", "b"]  # the CSR row would be b, a, c (item index order)


def test_perplexity_is_lowered_only_for_users_with_few_items() -> None:
    assert guarded_perplexity(150, 30) == 30
    assert guarded_perplexity(12, 30) == 11
    assert guarded_perplexity(2, 30) == 1


def test_evaluation_features_collects_what_visdiv_entries_read() -> None:
    class Store:
        def get(self, loader: str, kind: str) -> np.ndarray:
            return np.full((3, 2), len(loader))

    arrays = evaluation_features([VisDiv(), VisDiv(loader="RN50", kind="visual_pca_features")], Store())
    assert sorted(arrays) == ["RN50/visual_pca_features", "VisualAttributes/visual_features"]


# ---------------------------------------------------------------------------------------------
# With t-SNE
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted() -> tuple[object, sp.csr_matrix, np.ndarray, np.ndarray]:
    """Planted styles; two top-10 lists per user: from her own styles, and uniformly at random."""
    d = make_planted_dataset(n_users=60, n_items=160, n_styles=5, feature_dim=24, seed=7)
    users = d.interactions["user"].astype(int).to_numpy()
    items = d.interactions["item"].astype(int).to_numpy()
    positives = sp.csr_matrix((np.ones(users.shape[0]), (users, items)), shape=(60, 160))
    rng = np.random.default_rng(0)
    own, uniform = np.empty((60, 10), dtype=np.int64), np.empty((60, 10), dtype=np.int64)
    for u in range(60):
        unseen = np.setdiff1d(np.arange(160), positives[u].indices)
        liked = unseen[np.isin(d.item_styles[unseen], d.user_styles[u])]
        own[u] = rng.choice(liked, 10, replace=False)
        uniform[u] = rng.choice(unseen, 10, replace=False)
    return d, positives, own, uniform


def test_own_style_recommender_has_much_lower_global_visdiv_than_random(planted) -> None:
    d, positives, own, uniform = planted
    engine = VisDivEngine(parse_options({"n_jobs": 1}), d.features, d.item_ids, progress=False)
    styled, random = engine.compute(positives, own, 10).value, engine.compute(positives, uniform, 10).value
    # Observed ratio ~3.5: same-style items sit in the user's clusters, random ones anywhere.
    assert random > 2.0 * styled


def test_tsne_is_deterministic_under_a_seed(planted) -> None:
    d = planted[0]
    settings = TSNESettings(implementation="opentsne", learning_rate="auto", init="pca", max_iter=400, n_jobs=1)
    first, again = tsne_2d(d.features, settings), tsne_2d(d.features, settings)
    other = tsne_2d(d.features, TSNESettings(**{**settings.__dict__, "seed": 99}))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_per_user_mode_computes_what_the_reference_tool_computes(planted) -> None:
    """One scikit-learn t-SNE per user over positives (training order) then top-k, the study's settings."""
    from sklearn.manifold import TSNE

    d, _, own, _ = planted
    order = [d.interactions.loc[d.interactions.user == str(u), "item"].astype(int).to_numpy() for u in (0, 1)]
    engine = VisDivEngine(parse_options({"projection": "per_user", "n_jobs": 1}), d.features, d.item_ids,
                          progress=False)
    ours = engine.compute(order, own[:2], 10).per_user
    expected = []
    for u in (0, 1):
        points = np.concatenate([d.features[order[u]], d.features[own[u]]])
        xy = TSNE(n_components=2, perplexity=min(30, len(points) - 1), learning_rate=200, init="random",
                  random_state=1234).fit_transform(points)
        expected.append(np.linalg.norm(xy[:len(order[u])].mean(0) - xy[len(order[u]):].mean(0)))
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


def test_per_user_projection_is_deterministic_and_independent_of_workers(planted) -> None:
    d, positives, own, _ = planted
    rows = [0, 1, 2]
    values = []
    for n_jobs in (1, 1, 2):
        options = parse_options({"projection": "per_user", "n_jobs": n_jobs, "max_iter": 300})
        engine = VisDivEngine(options, d.features, d.item_ids, progress=False)
        values.append(engine.compute(positives[rows], own[rows], 10).per_user)
    np.testing.assert_array_equal(values[0], values[1])
    np.testing.assert_array_equal(values[0], values[2])
    assert np.isfinite(values[0]).all()


def test_global_map_is_cached_on_disk_and_reused_until_a_setting_changes(planted, tmp_path, monkeypatch) -> None:
    d, positives, own, _ = planted
    options = {"n_jobs": 1, "max_iter": 300, "cache_folder": tmp_path}
    first = VisDivEngine(parse_options(options), d.features, d.item_ids, progress=False).compute(positives, own, 10)
    assert len(list(tmp_path.glob("*.npy"))) == 1 and len(list(tmp_path.glob("*.json"))) == 1

    def no_tsne(*args, **kwargs):
        raise AssertionError("t-SNE ran again")

    monkeypatch.setattr(visdiv, "_memory_maps", {})
    monkeypatch.setattr(visdiv, "tsne_2d", no_tsne)
    again = VisDivEngine(parse_options(options), d.features, d.item_ids, progress=False).compute(positives, own, 10)
    np.testing.assert_array_equal(first.per_user, again.per_user)
    changed = VisDivEngine(parse_options({**options, "seed": 5}), d.features, d.item_ids, progress=False)
    with pytest.raises(AssertionError, match="t-SNE ran again"):
        changed.compute(positives, own, 10)
