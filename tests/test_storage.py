"""Atomic writes: a crash mid-write never leaves a half file nor loses the previous one."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from elliot_visual.storage import ResultPaths, atomic_write, timestamp_suffix, write_npy, write_text


def test_crash_inside_write_keeps_previous_content_and_no_temp_file(tmp_path: Path) -> None:
    target = write_text(tmp_path / "table.tsv", "old\n")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write("half a ")
            raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.tsv"]


def test_npy_writes_are_byte_identical_for_equal_arrays(tmp_path: Path) -> None:
    a = write_npy(tmp_path / "a.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    b = write_npy(tmp_path / "b.npy", np.arange(6, dtype=np.float32).reshape(2, 3).copy(order="F"))
    assert a.read_bytes() == b.read_bytes()
    assert np.load(a).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_result_paths_follow_elliot_layout(tmp_path: Path) -> None:
    paths = ResultPaths.under(tmp_path / "results", "baby").create()
    assert paths.performance == tmp_path / "results" / "baby" / "performance"
    assert all(p.is_dir() for p in (paths.recs, paths.weights, paths.performance, paths.figures))


def test_timestamp_suffix_is_elliot_format() -> None:
    import datetime as dt

    assert timestamp_suffix(dt.datetime(2026, 1, 2, 3, 4, 5)) == "2026_01_02_03_04_05"


def test_feature_folder_layout_is_network_then_layer_complete_once_metadata_is_written(tmp_path: Path) -> None:
    from elliot_visual.storage import (METADATA_FILE, feature_folder, is_complete_feature_folder,
                                       pca_layer_name, pca_projection_cache, write_id_list)

    folder = feature_folder(tmp_path, "resnet50", "layer4/0")
    assert folder == tmp_path / "resnet50" / "layer4_0"           # a layer name never nests folders
    assert feature_folder(tmp_path, "resnet50", pca_layer_name("avgpool", 128)).name == "avgpool_pca128"
    write_id_list(folder / "item_ids.txt", ["B1", "A2"])
    assert (folder / "item_ids.txt").read_text() == "B1\nA2\n"
    assert not is_complete_feature_folder(folder)
    (folder / METADATA_FILE).write_text("{}")
    assert is_complete_feature_folder(folder)
    assert pca_projection_cache(folder / "features.npy", 64, "abc") == folder / "features_pca64_abc.npz"
