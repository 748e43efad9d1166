"""The FeatureStore: alignment to the catalogue by public id, cold items, missing items, model tensors."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from elliot_visual.data.interactions import Interactions
from elliot_visual.config.schema import DataConfig, DataSection
from elliot_visual.features.sources import FeatureError, MissingFeaturesError
from elliot_visual.features.store import (
    FeatureStore,
    load_side_information,
    side_information_provider,
    train_positives,
)
from elliot_visual.models.acf import ACF
from elliot_visual.models.deepstyle import DeepStyle
from elliot_visual.models.vbpr import VBPR
from elliot_visual.storage import write_npy, write_text


@pytest.fixture()
def data() -> Interactions:
    """Train items in first-appearance order B, A, C; test holds A (warm), D (cold, has features), Z (no features)."""
    train = pd.DataFrame({"user": ["u1", "u1", "u2", "u3"], "item": ["B", "A", "C", "B"], "rating": 1.0})
    test = pd.DataFrame({"user": ["u1", "u2", "u3"], "item": ["D", "A", "Z"], "rating": 1.0})
    return Interactions.from_frames("tiny", train, test)


VECTORS = {"A": [1.0, 0.0], "B": [0.0, 2.0], "C": [3.0, 3.0], "D": [-1.0, 5.0], "E": [7.0, 7.0]}


def _matrix_folder(root: Path, vectors: dict[str, list[float]], dtype: type = np.float32) -> Path:
    write_npy(root / "features.npy", np.asarray(list(vectors.values()), dtype=dtype))
    write_text(root / "item_ids.txt", "".join(f"{i}\n" for i in vectors))
    return root


def test_features_are_aligned_to_the_catalogue_by_public_id(data: Interactions, tmp_path: Path) -> None:
    entry = {"dataloader": "VisualAttribute", "visual_features": _matrix_folder(tmp_path / "f", VECTORS)}
    store, aligned = load_side_information([entry], data)
    assert list(aligned.item_ids) == ["B", "A", "C", "D"]  # D: cold item with features, appended
    np.testing.assert_array_equal(store.get("VisualAttributes", "visual_features"),
                                  [VECTORS["B"], VECTORS["A"], VECTORS["C"], VECTORS["D"]])


def test_cold_items_mode_none_keeps_elliots_train_only_catalogue_and_all_adds_every_featured_item(
        data: Interactions, tmp_path: Path) -> None:
    entry = {"dataloader": "VisualAttribute", "visual_features": _matrix_folder(tmp_path / "f", VECTORS)}
    assert list(load_side_information([entry], data, cold_items="none")[1].item_ids) == ["B", "A", "C"]
    assert list(load_side_information([entry], data, cold_items="all")[1].item_ids) == ["B", "A", "C", "D", "E"]


def test_a_train_item_without_features_is_an_error_naming_it(data: Interactions, tmp_path: Path) -> None:
    partial = {k: v for k, v in VECTORS.items() if k != "C"}
    entry = {"dataloader": "VisualAttribute", "visual_features": _matrix_folder(tmp_path / "f", partial)}
    with pytest.raises(MissingFeaturesError, match=r"1 items missing .*first: C.*drop_items_without_features"):
        load_side_information([entry], data)


def test_items_without_features_are_dropped_with_their_rows_when_asked(
        data: Interactions, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    partial = {k: v for k, v in VECTORS.items() if k != "C"}
    entry = {"dataloader": "VisualAttribute", "visual_features": _matrix_folder(tmp_path / "f", partial)}
    with caplog.at_level(logging.WARNING):
        store, aligned = load_side_information([entry], data, drop_items_without_features=True)
    assert "C" not in set(aligned.item_ids) and aligned.transactions == 3
    assert "dropped 1 items without side information (first: C)" in caplog.text
    assert store.get("VisualAttributes", "visual_features").shape == (len(aligned.item_ids), 2)


def test_train_positives_pads_each_users_items_with_minus_one(data: Interactions) -> None:
    # u1 has B (0) and A (1); u2 has C (2); u3 has B (0).
    assert train_positives(data).tolist() == [[0, 1], [2, -1], [0, -1]]


def test_tensors_for_reads_the_models_needs_from_its_loader_namespace(data: Interactions) -> None:
    ids = np.asarray(list(VECTORS), dtype=object)
    maps = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3)
    store = FeatureStore.from_arrays(data, {
        "VisualAttributes": {"visual_features": (ids, np.asarray(list(VECTORS.values()), np.float32)),
                             "visual_feat_map_features": (ids, maps)},
        "ItemCategories": {"item_categories": (ids, np.array([0, 1, 1, 2, 0]))}})
    vbpr = store.tensors_for(VBPR)
    assert set(vbpr) == {"visual_features"} and vbpr["visual_features"].shape == (3, 2)
    acf = store.tensors_for(ACF)
    assert torch.equal(acf["train_positives"], train_positives(data))
    assert torch.equal(acf["visual_feat_map_features"], torch.from_numpy(maps[[1, 0, 2]]))  # B, A, C
    # DeepStyle's optional categories come from the one namespace that has them.
    assert store.tensors_for(DeepStyle)["item_categories"].tolist() == [1, 0, 1]


def test_an_unknown_loader_name_lists_the_declared_namespaces(data: Interactions) -> None:
    store = FeatureStore.from_arrays(data, {"VisualAttributes": {"visual_features": (
        np.array(["A", "B", "C"], dtype=object), np.zeros((3, 2), np.float32))}})
    with pytest.raises(FeatureError, match="Did you mean 'VisualAttributes'"):
        store.tensors_for(VBPR, "VisualAttribute")
    with pytest.raises(FeatureError, match="no side-information entry provides visual_feat_map_features"):
        store.tensors_for(ACF)


def test_relative_paths_are_anchored_at_the_config_folder_with_the_dataset_name(
        data: Interactions, tmp_path: Path) -> None:
    _matrix_folder(tmp_path / "data" / "tiny" / "resnet", VECTORS)
    config_dir = tmp_path / "config_files"
    config_dir.mkdir()
    entry = {"dataloader": "FeatureVectors", "path": "../data/{0}/resnet"}
    store, _ = load_side_information([entry], data, base_dir=config_dir, dataset="tiny")
    assert store.get("VisualAttributes", "visual_features")[0].tolist() == VECTORS["B"]


def test_the_runner_provider_aligns_every_fold_and_serves_each_its_own_store(
        data: Interactions, tmp_path: Path) -> None:
    folder = _matrix_folder(tmp_path / "f", VECTORS)
    section = DataSection(dataset="tiny", base_dir=tmp_path, config=DataConfig(
        strategy="fixed", train_path=tmp_path / "t.tsv", test_path=tmp_path / "t.tsv",
        side_information=[{"dataloader": "VisualAttribute", "visual_features": folder}]))
    folds, provider = side_information_provider(section, [[data]])
    aligned = folds[0][0]
    assert list(aligned.item_ids) == ["B", "A", "C", "D"]
    assert provider(VBPR, "VisualAttributes", aligned)["visual_features"].shape == (4, 2)
