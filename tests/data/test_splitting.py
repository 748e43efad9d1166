"""Splitting strategies against hand-derived rows (Elliot's tie rules), nesting, and the saved layout."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from elliot_visual.config.schema import Splitting
from elliot_visual.data.readers import DataError
from elliot_visual.data.splitting import best_timestamp, read_hierarchy, save_splits, split, split_once
from elliot_visual.data.strategy_options import StrategyOptionError


def frame(rows: list[tuple]) -> pd.DataFrame:
    columns = ["user", "item", "rating", "timestamp"][:len(rows[0])]
    df = pd.DataFrame(rows, columns=columns)
    if "rating" in df:
        df["rating"] = df["rating"].astype(float)
    return df


def items(df: pd.DataFrame) -> list[str]:
    return df["item"].tolist()


def once(df: pd.DataFrame, rng: np.random.Generator | None = None, **spec) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    return split_once(df, spec, rng if rng is not None else np.random.default_rng(0))


def test_temporal_hold_out_leave_one_out_sends_latest_row_to_test():
    df = frame([("u", "old", 1, 10), ("u", "new", 1, 30), ("u", "mid", 1, 20), ("v", "only", 1, 5)])
    [(train, test)] = once(df, strategy="temporal_hold_out", leave_n_out=1)
    assert items(test) == ["new", "only"]           # a one-row user goes wholly to test
    assert items(train) == ["old", "mid"]           # rows keep the file's order


def test_temporal_leave_n_out_tie_sends_the_earlier_row_to_test():
    # ts 20 twice: descending rank 'first' ranks the earlier row (a) first
    df = frame([("u", "x", 1, 10), ("u", "a", 1, 20), ("u", "b", 1, 20)])
    [(train, test)] = once(df, strategy="temporal_hold_out", leave_n_out=1)
    assert items(test) == ["a"] and items(train) == ["x", "b"]


def test_temporal_test_ratio_keeps_floor_share_in_train_and_later_tied_row_goes_to_test():
    # 4 rows, ratio 0.5: floor(4 * 0.5) = 2 stay; ascending 'first' ranks a (2nd) before b (3rd)
    df = frame([("u", "x", 1, 10), ("u", "a", 1, 20), ("u", "b", 1, 20), ("u", "y", 1, 30),
                ("v", "only", 1, 7)])
    [(train, test)] = once(df, strategy="temporal_hold_out", test_ratio=0.5)
    assert items(train) == ["x", "a"]
    assert items(test) == ["b", "y", "only"]        # floor(1 * 0.5) = 0: v goes wholly to test


def test_temporal_test_ratio_point_two_on_five_rows_keeps_four():
    df = frame([("u", f"i{k}", 1, 100 - k) for k in range(5)])       # i4 is the oldest, i0 the newest
    [(train, test)] = once(df, strategy="temporal_hold_out", test_ratio=0.2)
    assert items(test) == ["i0"] and len(train) == 4


def test_tiny_frames_are_temporal_leave_one_out_twice(tiny_frames):
    spec = {"strategy": "temporal_hold_out", "leave_n_out": 1}
    folds = split(tiny_frames["dataset"], Splitting(test_splitting=spec, validation_splitting=spec))
    [([(train, val)], test)] = folds
    pd.testing.assert_frame_equal(train, tiny_frames["train"])
    pd.testing.assert_frame_equal(val, tiny_frames["validation"])
    pd.testing.assert_frame_equal(test, tiny_frames["test"])


def test_temporal_split_without_timestamps_says_what_to_use_instead():
    with pytest.raises(DataError, match=r"'temporal_hold_out' needs a timestamp column.*random_subsampling"):
        once(frame([("u", "i", 1)]), strategy="temporal_hold_out", leave_n_out=1)


def test_random_cross_validation_deals_rows_round_robin_per_user():
    df = frame([("a", "a1", 1), ("b", "b1", 1), ("a", "a2", 1), ("a", "a3", 1), ("b", "b2", 1)])
    (train0, test0), (train1, test1) = once(df, strategy="random_cross_validation", folds=2)
    assert items(test0) == ["a1", "b1", "a3"] and items(train0) == ["a2", "b2"]
    assert items(test1) == ["a2", "b2"] and items(train1) == ["a1", "b1", "a3"]


def test_random_subsampling_test_ratio_sizes_and_seeded_draws(rng):
    df = frame([(u, f"{u}{k}", 1) for u, n in (("a", 4), ("b", 3), ("c", 10)) for k in range(n)])
    pairs = once(df, rng, strategy="random_subsampling", folds=3, test_ratio=0.5)
    assert len(pairs) == 3
    for train, test in pairs:
        # test size per user: n - floor(n * 0.5) = 2, 2, 5
        assert test.groupby("user").size().to_dict() == {"a": 2, "b": 2, "c": 5}
        assert sorted(items(train) + items(test)) == sorted(items(df))
        assert items(test) == [i for i in items(df) if i in set(items(test))]     # file order kept
    assert len({tuple(items(test)) for _, test in pairs}) > 1                    # folds are fresh draws
    again = once(df, np.random.default_rng(20240601), strategy="random_subsampling", folds=3, test_ratio=0.5)
    assert [items(t) for _, t in again] == [items(t) for _, t in pairs]


def test_random_subsampling_leave_n_out_takes_n_per_user_and_refuses_short_users():
    df = frame([("a", "a1", 1), ("a", "a2", 1), ("a", "a3", 1), ("b", "b1", 1), ("b", "b2", 1)])
    [(train, test)] = once(df, strategy="random_subsampling", leave_n_out=2)
    assert test.groupby("user").size().to_dict() == {"a": 2, "b": 2}
    with pytest.raises(DataError, match=r"leave_n_out=3 but user 'b' has only 2 rows"):
        once(df, strategy="random_subsampling", leave_n_out=3)


def test_fixed_timestamp_sends_rows_at_or_after_it_to_test():
    df = frame([("u", "a", 1, 100), ("u", "b", 1, 250), ("v", "c", 1, 300), ("v", "d", 1, 249)])
    [(train, test)] = once(df, strategy="fixed_timestamp", timestamp=250)
    assert items(test) == ["b", "c"] and items(train) == ["a", "d"]


BEST = frame([("u1", "a", 1, 10), ("u1", "b", 1, 20), ("u1", "c", 1, 30),
              ("u2", "d", 1, 20), ("u2", "e", 1, 40), ("u3", "f", 1, 30)])


def test_fixed_timestamp_best_maximises_users_with_rows_on_both_sides():
    # t=20 serves u1; t=30 serves u1 (10,20 | 30) and u2 (20 | 40); t=40 serves u2 only
    assert best_timestamp(BEST) == 30
    [(train, test)] = once(BEST, strategy="fixed_timestamp", timestamp="best")
    assert items(test) == ["c", "e", "f"]


def test_fixed_timestamp_best_respects_min_over():
    # min_over=2: only t=20 leaves a user (u1) with two rows at or after it
    assert best_timestamp(BEST, min_below=1, min_over=2) == 20


def test_fixed_timestamp_best_takes_the_latest_of_tied_timestamps():
    df = frame([("u1", "a", 1, 10), ("u1", "b", 1, 20), ("u2", "c", 1, 30), ("u2", "d", 1, 40)])
    assert best_timestamp(df) == 40         # 20 and 40 both serve one user


def elliot_best_timestamp(df: pd.DataFrame, min_below: int, min_over: int) -> int:
    """The definition, user by user and timestamp by timestamp, as Elliot computes it."""
    per_user = [g.to_numpy() for _, g in df.groupby("user")["timestamp"]]
    scores = {}
    for ts in df["timestamp"].unique():
        scores[ts] = sum(1 for times in per_user
                         if (times < ts).sum() >= min_below and (times >= ts).sum() >= min_over)
    top = max(scores.values())
    return max(ts for ts, s in scores.items() if s == top)


@pytest.mark.parametrize("min_below,min_over", [(1, 1), (2, 1), (1, 3), (0, 2), (3, 0)])
def test_best_timestamp_equals_elliots_definition_on_random_data(rng, min_below, min_over):
    df = pd.DataFrame({"user": rng.integers(0, 25, 300).astype(str), "item": "i",
                       "timestamp": rng.integers(0, 60, 300)})
    assert best_timestamp(df, min_below, min_over) == elliot_best_timestamp(df, min_below, min_over)


def test_unknown_split_option_names_strategy_and_option():
    with pytest.raises(StrategyOptionError, match=r"strategy 'temporal_hold_out' has no option 'test_ration'"):
        once(frame([("u", "i", 1, 1)]), strategy="temporal_hold_out", test_ration=0.2)


def test_split_without_validation_has_one_inner_pair_with_no_validation(tiny_frames):
    folds = split(tiny_frames["dataset"], Splitting(test_splitting={"strategy": "random_cross_validation",
                                                                    "folds": 3}))
    assert len(folds) == 3
    assert all(len(inner) == 1 and inner[0][1] is None for inner, _ in folds)


def test_nested_folds_split_every_train_part_again(tiny_frames):
    splitting = Splitting(test_splitting={"strategy": "random_cross_validation", "folds": 2},
                          validation_splitting={"strategy": "random_subsampling", "folds": 3, "leave_n_out": 1})
    folds = split(tiny_frames["dataset"], splitting, seed=7)
    assert [len(inner) for inner, _ in folds] == [3, 3]
    for inner, test in folds:
        for train, val in inner:
            assert len(train) + len(val) + len(test) == len(tiny_frames["dataset"])


def test_save_on_disk_then_hierarchy_reads_the_same_split(tiny_frames, tmp_path):
    splitting = Splitting(save_on_disk=True, save_folder=tmp_path / "splits",
                          test_splitting={"strategy": "random_cross_validation", "folds": 2},
                          validation_splitting={"strategy": "temporal_hold_out", "leave_n_out": 1})
    folds = split(tiny_frames["dataset"], splitting)
    assert sorted(p.relative_to(tmp_path / "splits").as_posix() for p in (tmp_path / "splits").rglob("*.tsv")) == [
        "0/0/train.tsv", "0/0/val.tsv", "0/test.tsv", "1/0/train.tsv", "1/0/val.tsv", "1/test.tsv"]
    first_test_line = (tmp_path / "splits" / "0" / "test.tsv").read_text().splitlines()[0]
    assert first_test_line == "u1\ti1\t5\t100"       # headerless, the input's columns, ratings as Elliot writes them
    back = read_hierarchy(tmp_path / "splits")
    assert len(back) == len(folds)
    for (inner, test), (inner_back, test_back) in zip(folds, back):
        pd.testing.assert_frame_equal(test_back, test)
        for (train, val), (train_back, val_back) in zip(inner, inner_back):
            pd.testing.assert_frame_equal(train_back, train)
            pd.testing.assert_frame_equal(val_back, val)


def test_saved_split_writes_whole_ratings_as_integers_and_keeps_fractions_as_elliot_does(tmp_path):
    whole = pd.DataFrame({"user": ["a", "a", "b"], "item": ["x", "y", "x"], "rating": [2.0, 5.0, 1.0],
                          "timestamp": [3, 1, 2]})
    save_splits([([(whole, None)], whole)], tmp_path / "whole")
    assert (tmp_path / "whole" / "0" / "test.tsv").read_text() == "a\tx\t2\t3\na\ty\t5\t1\nb\tx\t1\t2\n"
    halves = whole.assign(rating=[2.0, 4.5, 1.0])
    save_splits([([(halves, None)], halves)], tmp_path / "halves")
    assert (tmp_path / "halves" / "0" / "test.tsv").read_text() == "a\tx\t2.0\t3\na\ty\t4.5\t1\nb\tx\t1.0\t2\n"
    [([(_, _), ], back)] = read_hierarchy(tmp_path / "whole")
    assert back["rating"].tolist() == [2.0, 5.0, 1.0]


def test_saved_split_without_validation_uses_train_tsv_beside_test(tiny_frames, tmp_path):
    splitting = Splitting(save_on_disk=True, save_folder=tmp_path / "s",
                          test_splitting={"strategy": "temporal_hold_out", "test_ratio": 0.5})
    [([(train, val)], test)] = split(tiny_frames["dataset"], splitting)
    [([(train_back, val_back)], test_back)] = read_hierarchy(tmp_path / "s")
    assert val is None and val_back is None
    pd.testing.assert_frame_equal(train_back, train)
    pd.testing.assert_frame_equal(test_back, test)


def test_saving_again_replaces_the_previous_split(tiny_frames, tmp_path):
    folder = tmp_path / "s"
    three = Splitting(save_on_disk=True, save_folder=folder,
                      test_splitting={"strategy": "random_cross_validation", "folds": 3})
    split(tiny_frames["dataset"], three)
    one = three.model_copy(update={"test_splitting": three.test_splitting.model_validate(
        {"strategy": "temporal_hold_out", "leave_n_out": 1})})
    split(tiny_frames["dataset"], one)
    assert sorted(p.name for p in folder.iterdir()) == ["0"]
    assert [p.name for p in tmp_path.iterdir()] == ["s"]          # no staging or old copies left


def test_saving_refuses_to_wipe_a_folder_that_is_not_a_split(tiny_frames, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset.tsv").write_text("precious")
    splitting = Splitting(save_on_disk=True, save_folder=tmp_path / "data",
                          test_splitting={"strategy": "temporal_hold_out", "leave_n_out": 1})
    with pytest.raises(DataError, match=r"save_folder .*data exists and holds files that are not a saved split"):
        split(tiny_frames["dataset"], splitting)
    assert (tmp_path / "data" / "dataset.tsv").read_text() == "precious"


def test_save_splits_writes_nothing_when_a_fold_is_inconsistent(tiny_frames, tmp_path):
    df = tiny_frames["dataset"]
    with pytest.raises(DataError, match=r"fold 0/1 has no validation part"):
        save_splits([([(df, df), (df, None)], df)], tmp_path / "s")
    assert list(tmp_path.iterdir()) == []


def test_hierarchy_reader_names_a_missing_file(tmp_path):
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "test.tsv").write_text("u\ti\t1.0\n")
    with pytest.raises(DataError, match=r"0/train.tsv: file missing from the saved split"):
        read_hierarchy(tmp_path)
