"""prepare_data: the three data_config strategies and the non-Elliot layouts, end to end on tiny files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from elliot_visual.config.schema import DataConfig, Experiment
from elliot_visual.data.loading import prepare_data, read_folds
from elliot_visual.data.readers import DataError

DATASET = ("u1\ti1\t5\t100\nu1\ti2\t3\t200\nu1\ti3\t4\t300\nu1\ti4\t1\t400\n"
           "u2\ti1\t4\t150\nu2\ti3\t2\t250\nu2\ti5\t5\t350\n"
           "u3\ti2\t5\t120\nu3\ti4\t4\t220\n"
           "u4\ti9\t5\t500\n")


def experiment(tmp_path: Path, data_config: dict, **extra) -> Experiment:
    results = tmp_path / "results"
    return Experiment(config_path=tmp_path / "config.yml", dataset="tiny", data_config=DataConfig(**data_config),
                      path_output_rec_result=results / "recs", path_output_rec_weight=results / "weights",
                      path_output_rec_performance=results / "performance", path_output_figures=results / "figures",
                      models=[], **extra)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_dataset_strategy_prefilters_binarizes_and_splits(tmp_path, caplog):
    path = write(tmp_path / "data.tsv", DATASET)
    exp = experiment(tmp_path, {"strategy": "dataset", "dataset_path": path},
                     prefiltering=[{"strategy": "user_k_core", "core": 2}], binarize=True,
                     splitting={"test_splitting": {"strategy": "temporal_hold_out", "leave_n_out": 1},
                                "validation_splitting": {"strategy": "temporal_hold_out", "leave_n_out": 1}})
    with caplog.at_level("INFO", logger="elliot_visual.data.loading"):
        [[data]] = prepare_data(exp.data)
    # u4 (one row) is prefiltered away; u3 has no row left for train, so it is not a user
    assert data.user_ids.tolist() == ["u1", "u2"]
    assert data.item_ids.tolist() == ["i1", "i2"]
    assert data.train.toarray().tolist() == [[1.0, 1.0], [1.0, 0.0]]       # binarized
    assert data.test.item_ids.tolist() == ["i4", "i5"]                     # u3's test row dropped with u3
    assert data.validation.item_ids.tolist() == ["i3", "i3"]
    assert data.validation.items.tolist() == [-1, -1]                      # i3 is not a train item
    summary = caplog.text   # logged, so it reaches the run's log file
    assert "tiny: 1 test fold(s) x 1 validation fold(s)" in summary
    assert "train 2 users, 2 items, 3 interactions" in summary
    # what Elliot does silently is said, with counts and first ids
    assert "tiny test: dropped 1 rows of 1 users absent from train (first: u3), as Elliot does" in summary
    assert "tiny validation: 2 rows name 1 items absent from the train catalogue (first: i3)" in summary


def test_dataset_strategy_without_splitting_is_a_clear_error(tmp_path):
    exp = experiment(tmp_path, {"strategy": "dataset", "dataset_path": write(tmp_path / "d.tsv", DATASET)})
    with pytest.raises(DataError, match="needs a 'splitting' block"):
        read_folds(exp.data)


def test_fixed_strategy_reads_files_verbatim_without_prefiltering(tmp_path):
    train = write(tmp_path / "train.tsv", "u1\ti1\t2\nu1\ti2\t3\nu2\ti2\t4\n")
    val = write(tmp_path / "val.tsv", "u1\ti3\t5\n")
    test = write(tmp_path / "test.tsv", "u2\ti1\t1\nghost\ti1\t5\n")
    exp = experiment(tmp_path, {"strategy": "fixed", "train_path": train, "validation_path": val, "test_path": test},
                     prefiltering=[{"strategy": "user_k_core", "core": 5}])
    [[data]] = prepare_data(exp.data, verbose=False)
    assert data.transactions == 3                                           # core 5 ignored, as in Elliot
    assert data.train.toarray().tolist() == [[2.0, 3.0], [0.0, 4.0]]
    assert data.validation.ratings.tolist() == [5.0]
    assert data.test.item_ids.tolist() == ["i1"]                            # 'ghost' has no train rows


def test_hierarchy_strategy_reads_a_split_saved_by_save_on_disk(tmp_path):
    path = write(tmp_path / "data.tsv", DATASET)
    splitting = {"save_on_disk": True, "save_folder": tmp_path / "splits",
                 "test_splitting": {"strategy": "random_subsampling", "folds": 2, "test_ratio": 0.3}}
    saved = prepare_data(experiment(tmp_path, {"strategy": "dataset", "dataset_path": path}, splitting=splitting,
                                    random_seed=3).data, verbose=False)
    again = prepare_data(experiment(tmp_path, {"strategy": "hierarchy", "root_folder": tmp_path / "splits"}).data,
                         verbose=False)
    assert len(again) == len(saved) == 2
    for [a], [b] in zip(saved, again):
        assert a.user_ids.tolist() == b.user_ids.tolist() and a.item_ids.tolist() == b.item_ids.tolist()
        assert (a.train != b.train).nnz == 0
        assert a.test.item_ids.tolist() == b.test.item_ids.tolist()
        np.testing.assert_array_equal(a.train_timestamps.toarray(), b.train_timestamps.toarray())


def test_mmrec_layout_reads_a_split_folder(tmp_path):
    write(tmp_path / "train.json", json.dumps({"0": [0, 1], "1": [1]}))
    write(tmp_path / "val.json", json.dumps({"0": [2]}))
    write(tmp_path / "test.json", json.dumps({"1": [0]}))
    write(tmp_path / "item2id.json", json.dumps({"A": 0, "B": 1, "C": 2}))
    exp = experiment(tmp_path, {"strategy": "fixed", "layout": "mmrec", "root_folder": tmp_path})
    [[data]] = prepare_data(exp.data, verbose=False)
    assert data.item_ids.tolist() == ["A", "B"]
    assert data.validation.item_ids.tolist() == ["C"] and data.test.item_ids.tolist() == ["A"]


def test_cornac_layout_reads_a_dataset_file(tmp_path):
    path = write(tmp_path / "ratings.csv", "a,x,1,10\nb,y,1,20\na,y,1,30\nb,x,1,40\n")
    exp = experiment(tmp_path, {"strategy": "dataset", "layout": "cornac", "dataset_path": path},
                     splitting={"test_splitting": {"strategy": "fixed_timestamp", "timestamp": 25}})
    [[data]] = prepare_data(exp.data, verbose=False)
    assert data.transactions == 2 and data.test.item_ids.tolist() == ["y", "x"]


def test_fixed_strategy_with_elliot_layout_still_needs_its_paths(tmp_path):
    with pytest.raises(ValueError, match="strategy 'fixed' needs train_path, test_path"):
        DataConfig(strategy="fixed", root_folder=tmp_path)


def test_ducho_benchmark_folder_loads_as_a_fixed_split(shared_data, tmp_path):
    exp = experiment(tmp_path, {"strategy": "fixed", "layout": "ducho",
                                "root_folder": shared_data / "amazon_ducho_benchmark" / "office"})
    [[data]] = prepare_data(exp.data, verbose=False)
    assert data.transactions == 21_196
    assert len(data.validation) <= 5_449 and len(data.test) <= 8_868
