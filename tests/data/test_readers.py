"""Readers: Elliot TSV (fast path and bad-line reports), MMRec, Cornac and Ducho layouts."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from elliot_visual.data.readers import (DataError, read_cornac, read_cornac_split, read_ducho_reviews,
                                        read_ducho_split, read_elliot_split, read_interactions,
                                        read_mmrec_inter, read_mmrec_split, read_split_layout, read_tsv)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_read_tsv_keeps_ids_exactly_as_written(tmp_path):
    path = write(tmp_path / "d.tsv", "007\tB000ABC\t5\t1460332800\nA1\t12\t3.5\t1460419200\n")
    frame = read_tsv(path)
    assert list(frame.columns) == ["user", "item", "rating", "timestamp"]
    assert frame["user"].tolist() == ["007", "A1"]
    assert frame["item"].tolist() == ["B000ABC", "12"]
    assert frame["rating"].tolist() == [5.0, 3.5]
    assert frame["timestamp"].dtype == np.int64
    assert frame["timestamp"].tolist() == [1460332800, 1460419200]


def test_read_tsv_ids_that_look_like_missing_values_stay_strings(tmp_path):
    frame = read_tsv(write(tmp_path / "d.tsv", "NA\tnull\t1\n"))
    assert frame[["user", "item"]].values.tolist() == [["NA", "null"]]


def test_read_tsv_two_column_file_gets_rating_one(tmp_path):
    frame = read_tsv(write(tmp_path / "d.tsv", "u1\ti1\nu2\ti2\n"))
    assert list(frame.columns) == ["user", "item", "rating"]
    assert frame["rating"].tolist() == [1.0, 1.0]


def test_read_tsv_drops_a_timestamp_column_that_is_empty_everywhere(tmp_path):
    frame = read_tsv(write(tmp_path / "d.tsv", "u1\ti1\t4\t\nu2\ti2\t2\t\n"))
    assert list(frame.columns) == ["user", "item", "rating"]


def test_read_tsv_row_with_extra_field_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.tsv", "u1\ti1\t1\t10\nu2\ti2\t1\t11\nu3\ti3\t1\t12\t99\n")
    with pytest.raises(DataError) as err:
        read_tsv(path)
    message = str(err.value)
    assert str(path) in message and "line 3" in message and "u3\\ti3\\t1\\t12\\t99" in message


def test_read_tsv_short_row_names_its_line(tmp_path):
    path = write(tmp_path / "short.tsv", "u1\ti1\t1\t10\nu2\ti2\t1\n")
    with pytest.raises(DataError, match=r"line 2: expected 4 fields"):
        read_tsv(path)


def test_read_tsv_non_numeric_rating_names_line_and_value(tmp_path):
    path = write(tmp_path / "text.tsv", "u1\ti1\t1\nu2\ti2\tfive\nu3\ti3\t2\n")
    with pytest.raises(DataError, match=r"text.tsv, line 2: rating 'five' is not a number"):
        read_tsv(path)


def test_read_tsv_line_numbers_count_blank_lines(tmp_path):
    path = write(tmp_path / "gaps.tsv", "u1\ti1\t1\n\nu2\ti2\tx\n")
    with pytest.raises(DataError, match=r"line 3"):
        read_tsv(path)


def test_read_tsv_header_and_named_columns(tmp_path):
    path = write(tmp_path / "h.tsv", "item\tuser\tts\n9\tu1\t50\n8\tu2\t60\n")
    frame = read_tsv(path, header=True, columns=["item", "user", "timestamp"])
    assert frame.to_dict("list") == {"user": ["u1", "u2"], "item": ["9", "8"], "rating": [1.0, 1.0],
                                     "timestamp": [50, 60]}


def test_read_cornac_sniffs_comma_and_blank_separators(tmp_path):
    comma = read_cornac(write(tmp_path / "c.csv", "u1,i1,4\nu2,i2,5\n"))
    blanks = read_cornac(write(tmp_path / "b.txt", "u1  i1 4\nu2 i2   5\n"))
    expected = {"user": ["u1", "u2"], "item": ["i1", "i2"], "rating": [4.0, 5.0]}
    assert comma.to_dict("list") == expected
    assert blanks.to_dict("list") == expected


def test_read_cornac_split_finds_train_val_test_files(tmp_path):
    write(tmp_path / "train.txt", "u1 i1 1\nu1 i2 1\n")
    write(tmp_path / "test.txt", "u1 i3 1\n")
    train, val, test = read_cornac_split(tmp_path)
    assert val is None
    assert train["item"].tolist() == ["i1", "i2"] and test["item"].tolist() == ["i3"]


def test_elliot_split_folder_reads_fork_file_names(tmp_path):
    write(tmp_path / "trainingset.tsv", "0\t1\t1.0\t5\n")
    write(tmp_path / "validationset.tsv", "0\t2\t1.0\t6\n")
    write(tmp_path / "testset.tsv", "0\t3\t1.0\t7\n")
    train, val, test = read_elliot_split(tmp_path)
    assert (train["item"].tolist(), val["item"].tolist(), test["item"].tolist()) == (["1"], ["2"], ["3"])


@pytest.fixture
def mmrec_folder(tmp_path) -> Path:
    """Two users, three items in LATTICE's layout, maps one level up as in LATTICE's repository."""
    split = tmp_path / "baby" / "5-core"
    write(split / "train.json", json.dumps({"0": [2, 0], "1": [1]}))
    write(split / "val.json", json.dumps({"0": [1]}))
    write(split / "test.json", json.dumps({"1": [0], "0": []}))
    write(tmp_path / "baby" / "user2id.json", json.dumps({"A_REVIEWER": 0, "B_REVIEWER": 1}))
    write(tmp_path / "baby" / "item2id.json", json.dumps({"ASIN0": 0, "ASIN1": 1, "ASIN2": 2}))
    return split


def test_mmrec_json_split_maps_indices_back_to_public_ids(mmrec_folder):
    train, val, test = read_mmrec_split(mmrec_folder)
    assert train[["user", "item"]].values.tolist() == [["A_REVIEWER", "ASIN2"], ["A_REVIEWER", "ASIN0"],
                                                       ["B_REVIEWER", "ASIN1"]]
    assert val[["user", "item"]].values.tolist() == [["A_REVIEWER", "ASIN1"]]
    assert test[["user", "item"]].values.tolist() == [["B_REVIEWER", "ASIN0"]]
    assert train["rating"].tolist() == [1.0, 1.0, 1.0]


def test_mmrec_index_missing_from_map_is_an_error(mmrec_folder):
    write(mmrec_folder / "test.json", json.dumps({"5": [0]}))
    with pytest.raises(DataError, match=r"test.json: 1 user index\(es\) absent from user2id.json \(first: 5\)"):
        read_mmrec_split(mmrec_folder)


def test_mmrec_inter_file_is_split_by_x_label(tmp_path):
    write(tmp_path / "toy.inter", "userID\titemID\trating\ttimestamp\tx_label\n"
                                  "0\t0\t5\t100\t0\n0\t1\t4\t200\t1\n1\t1\t3\t150\t0\n1\t0\t2\t300\t2\n")
    write(tmp_path / "i_id_mapping.csv", "asin\titemID\nASIN_A\t0\nASIN_B\t1\n")
    train, val, test = read_mmrec_split(tmp_path)
    assert train[["user", "item", "rating", "timestamp"]].values.tolist() == [["0", "ASIN_A", 5.0, 100],
                                                                              ["1", "ASIN_B", 3.0, 150]]
    assert val["item"].tolist() == ["ASIN_B"] and test["item"].tolist() == ["ASIN_A"]
    assert "x_label" not in train


def test_mmrec_inter_bad_number_names_line(tmp_path):
    path = write(tmp_path / "toy.inter", "userID\titemID\tx_label\n0\t0\t0\n0\t1\tval\n")
    with pytest.raises(DataError, match=r"toy.inter, line 3: x_label 'val' is not a number"):
        read_mmrec_inter(path)


def test_unknown_layout_lists_the_known_ones(tmp_path):
    with pytest.raises(DataError, match=r"unknown data_config.layout 'lightfm'.*elliot, mmrec, cornac, ducho"):
        read_split_layout("lightfm", tmp_path)


def test_amazon_baby_5core_mmrec_split_has_the_published_size(shared_data):
    train, val, test = read_split_layout("mmrec", shared_data / "amazon_baby_5core")
    assert (len(train), len(val), len(test)) == (119_674, 20_559, 20_559)
    everything = pd.concat([train, val, test])
    assert everything["user"].nunique() == 19_445
    assert everything["item"].nunique() == 7_050
    assert len(everything) == 160_792
    # public ids, not indices: reviewer ids start with 'A', and the first ASIN of item2id.json is there
    assert everything["user"].str.startswith("A").all()
    assert "097293751X" in set(everything["item"])


def test_ducho_split_files_hold_exactly_the_reviews(shared_data):
    folder = shared_data / "amazon_ducho_benchmark" / "office"
    reviews = read_ducho_reviews(folder)
    train, val, test = read_ducho_split(folder)
    assert (len(reviews), len(train), len(val), len(test)) == (35_513, 21_196, 5_449, 8_868)
    assert (reviews["user"].nunique(), reviews["item"].nunique()) == (4_892, 1_780)
    assert reviews["rating"].between(1.0, 5.0).all() and "timestamp" not in reviews
    key = ["user", "item", "rating"]
    union = pd.concat([train, val, test]).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(union, reviews.sort_values(key).reset_index(drop=True))


def test_read_interactions_dispatches_on_layout(mmrec_folder, tmp_path):
    frame = read_interactions(mmrec_folder / "train.json", layout="mmrec")
    assert frame["user"].tolist() == ["A_REVIEWER", "A_REVIEWER", "B_REVIEWER"]
    cornac = read_interactions(write(tmp_path / "all.csv", "u,i,2\n"), layout="cornac")
    assert cornac.values.tolist() == [["u", "i", 2.0]]


def test_read_tsv_accepts_windows_line_endings(tmp_path):
    path = tmp_path / "crlf.tsv"
    path.write_bytes(b"u1\ti1\t4\t10\r\nu2\ti2\t5\t20\r\n")
    frame = read_tsv(path)
    assert frame.values.tolist() == [["u1", "i1", 4.0, 10], ["u2", "i2", 5.0, 20]]
