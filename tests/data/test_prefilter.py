"""Prefiltering strategies on hand-made frames, with the rows each must keep worked out by hand."""
from __future__ import annotations

import pandas as pd
import pytest

from elliot_visual.config.schema import Prefilter
from elliot_visual.data.prefilter import apply_prefilters
from elliot_visual.data.strategy_options import StrategyOptionError
from elliot_visual.registry import PREFILTERS


def frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


def pairs(df: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(df["user"], df["item"]))


RATED = frame([("a", "x", 5), ("a", "y", 2), ("a", "z", 3),   # a's mean 10/3
               ("b", "x", 4), ("b", "y", 4),                   # b's mean 4
               ("c", "z", 1)])                                 # global mean 19/6 ~ 3.17


def run(strategy: str, df: pd.DataFrame, **options) -> pd.DataFrame:
    return apply_prefilters(df, [Prefilter(strategy=strategy, **options)])


def test_global_threshold_keeps_ratings_at_or_above_it():
    assert pairs(run("global_threshold", RATED, threshold=4)) == [("a", "x"), ("b", "x"), ("b", "y")]


def test_global_threshold_average_uses_the_global_mean():
    # 19/6 ~ 3.17: 5, 4, 4 pass; 3, 2, 1 do not
    assert pairs(run("global_threshold", RATED, threshold="average")) == [("a", "x"), ("b", "x"), ("b", "y")]


def test_global_threshold_refuses_fractions_as_elliot_does():
    with pytest.raises(StrategyOptionError, match=r"global_threshold.*integer or 'average'.*3.5"):
        run("global_threshold", RATED, threshold=3.5)


def test_user_average_keeps_each_users_rows_at_or_above_her_mean():
    # a: mean 3.33 keeps x(5); b: mean 4 keeps both; c: its only row equals its mean
    assert pairs(run("user_average", RATED)) == [("a", "x"), ("b", "x"), ("b", "y"), ("c", "z")]


def test_user_k_core_keeps_users_with_enough_rows():
    assert pairs(run("user_k_core", RATED, core=2)) == [("a", "x"), ("a", "y"), ("a", "z"), ("b", "x"), ("b", "y")]


def test_item_k_core_keeps_items_with_enough_rows():
    assert pairs(run("item_k_core", RATED, core=2)) == [("a", "x"), ("a", "y"), ("a", "z"), ("b", "x"),
                                                       ("b", "y"), ("c", "z")]
    assert pairs(run("item_k_core", RATED, core=3)) == []


def test_cold_users_keeps_users_with_at_most_threshold_rows():
    assert pairs(run("cold_users", RATED, threshold=2)) == [("b", "x"), ("b", "y"), ("c", "z")]


# A chain where each 2-core round exposes another violation:
#   round 1 users: d has 1 row -> dropped; items: p loses d and has 1 row -> dropped
#   round 2 users: e loses p, has 1 row -> dropped; items: q loses e -> 1 row -> dropped
#   round 3 users: f loses q, has 1 row -> dropped; items: r now has 1 row (g) -> dropped
#   round 4 users: g keeps (s, t); items: s, t have 2 rows (g, h) -> stable
CHAIN = frame([("d", "p", 1), ("e", "p", 1), ("e", "q", 1), ("f", "q", 1), ("f", "r", 1),
               ("g", "r", 1), ("g", "s", 1), ("g", "t", 1), ("h", "s", 1), ("h", "t", 1)])


def test_iterative_k_core_runs_to_a_fixed_point():
    result = run("iterative_k_core", CHAIN, core=2)
    assert pairs(result) == [("g", "s"), ("g", "t"), ("h", "s"), ("h", "t")]


def test_n_rounds_k_core_stops_after_the_given_rounds_unlike_iterative():
    one = run("n_rounds_k_core", CHAIN, core=2, rounds=1)
    assert pairs(one) == [("e", "q"), ("f", "q"), ("f", "r"), ("g", "r"), ("g", "s"), ("g", "t"),
                          ("h", "s"), ("h", "t")]
    two = run("n_rounds_k_core", CHAIN, core=2, rounds=2)
    assert pairs(two) == [("f", "r"), ("g", "r"), ("g", "s"), ("g", "t"), ("h", "s"), ("h", "t")]
    assert len(two) > len(run("iterative_k_core", CHAIN, core=2))


def test_steps_apply_in_the_listed_order():
    threshold_then_core = apply_prefilters(RATED, [Prefilter(strategy="global_threshold", threshold=4),
                                                   Prefilter(strategy="user_k_core", core=2)])
    core_then_threshold = apply_prefilters(RATED, [Prefilter(strategy="user_k_core", core=2),
                                                   Prefilter(strategy="global_threshold", threshold=4)])
    assert pairs(threshold_then_core) == [("b", "x"), ("b", "y")]
    assert pairs(core_then_threshold) == [("a", "x"), ("b", "x"), ("b", "y")]


def test_unknown_option_names_strategy_and_option():
    with pytest.raises(StrategyOptionError, match=r"prefiltering\[0\]: strategy 'user_k_core' has no option "
                                                  r"'cores' \(its options: core\)"):
        run("user_k_core", RATED, cores=2)


def test_missing_option_names_strategy_and_option():
    with pytest.raises(StrategyOptionError, match=r"strategy 'n_rounds_k_core' needs option 'rounds'"):
        run("n_rounds_k_core", RATED, core=2)


def test_unknown_strategy_suggests_the_closest_name():
    with pytest.raises(KeyError, match=r"Did you mean 'user_k_core'"):
        run("user_kcore", RATED, core=2)


def test_registry_holds_every_elliot_prefilter():
    assert set(PREFILTERS.names()) >= {"global_threshold", "user_average", "user_k_core", "item_k_core",
                                       "iterative_k_core", "n_rounds_k_core", "cold_users"}


def test_plain_dict_steps_are_accepted():
    assert pairs(apply_prefilters(RATED, [{"strategy": "cold_users", "threshold": "1"}])) == [("c", "z")]
