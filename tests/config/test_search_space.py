"""Elliot's searched YAML lists as dimensions, grids and hyperopt spaces (namespace_model.fill_model rules)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from elliot_visual.config.search_space import Dimension, grid_points, grid_size, hyperopt_space, parse_dimension


@pytest.mark.parametrize(("values", "expected"), [
    (["loguniform", -10, -1], Dimension("lr", "loguniform", (-10, -1))),
    (["quniform", 8, 32, 1], Dimension("lr", "quniform", (8, 32, 1))),
    (["uniform", "0.1", "0.5"], Dimension("lr", "uniform", (0.1, 0.5))),  # strings literal_eval'ed
    (["randint", 5], Dimension("lr", "randint", (5,))),
    (["choice", [1, 2]], Dimension("lr", "choice", (1, 2))),
    (["normal", 0, 1], Dimension("lr", "normal", (0, 1))),
    (["1e-5", "1e-4"], Dimension("lr", "choice", ("1e-5", "1e-4"))),  # all strings: kept, as Elliot does
    (["relu", "tanh"], Dimension("lr", "choice", ("relu", "tanh"))),
    ([0.001, "1e-5"], Dimension("lr", "choice", (0.001, 1e-5))),  # mixed: literal_eval'ed
    ([32, 64, 128], Dimension("lr", "choice", (32, 64, 128))),
    (["(64, 1)", "(128, 1)"], Dimension("lr", "choice", ("(64, 1)", "(128, 1)"))),
    ([1, "(3, 4)"], Dimension("lr", "choice", (1, (3, 4)))),
    # YAML cuts the flow list [(64, 1), (128, 1)] at every comma; the tuples are put back together.
    (["(64", "1)", "(128", "1)"], Dimension("lr", "choice", ((64, 1), (128, 1)))),
    (["(32", 16, "8)", "(64", 32, "16)"], Dimension("lr", "choice", ((32, 16, 8), (64, 32, 16)))),
])
def test_parse_dimension_follows_elliot_fill_model(values: list, expected: Dimension) -> None:
    assert parse_dimension("lr", values) == expected


@pytest.mark.parametrize(("values", "message"), [
    ([], "empty list"),
    (["loguniform", -10], "loguniform takes 2 argument(s), got 1"),
    (["quniform", 8, 32], "quniform takes 3 argument(s), got 2"),
    (["uniform", "low", 3], "uniform arguments must be numbers"),
    (["uniform", 3, 1], "uniform needs low < high"),
    (["normal", 0, -1], "normal needs sigma > 0"),
    (["qloguniform", -3, 1, 0], "needs a quantum q > 0"),
    (["randint", 5, 2], "randint needs integers with low < high"),
    (["choice", 1, 2], "choice takes 1 argument(s), got 2"),
    (["choice", 7], "choice takes one non-empty list of options"),
])
def test_malformed_search_lists_name_the_distribution_and_its_arguments(values: list, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_dimension("lr", values)
    assert message in str(info.value)


def test_grid_is_the_cartesian_product_in_declaration_order() -> None:
    dims = [parse_dimension("lr", [0.1, 0.01]), parse_dimension("factors", [8, 16, 32]),
            parse_dimension("layers", ["(64, 1)"])]
    points = grid_points(dims)
    assert grid_size(dims) == len(points) == 6
    assert points[:4] == [{"lr": 0.1, "factors": 8, "layers": "(64, 1)"},
                          {"lr": 0.1, "factors": 16, "layers": "(64, 1)"},
                          {"lr": 0.1, "factors": 32, "layers": "(64, 1)"},
                          {"lr": 0.01, "factors": 8, "layers": "(64, 1)"}]
    assert list(points[0]) == ["lr", "factors", "layers"]


def test_randint_is_discrete_and_enumerable() -> None:
    assert parse_dimension("k", ["randint", 2, 5]).values() == [2, 3, 4]
    assert grid_size([parse_dimension("k", ["randint", 3]), parse_dimension("b", [True, False])]) == 6


def test_continuous_dimensions_have_no_grid() -> None:
    dims = [parse_dimension("lr", ["loguniform", -10, -1]), parse_dimension("factors", [8, 16])]
    assert grid_size(dims) is None
    with pytest.raises(ValueError, match="no grid over continuous dimensions \\(lr\\)"):
        grid_points(dims)


def test_no_dimensions_is_a_single_empty_point() -> None:
    assert grid_points([]) == [{}] and grid_size([]) == 1


def test_representative_values_follow_hyperopt_semantics() -> None:
    assert parse_dimension("f", ["quniform", 8, 32, 1]).representative() == 8.0
    assert parse_dimension("lr", ["loguniform", -10, -1]).representative() == pytest.approx(math.exp(-10))
    assert parse_dimension("k", ["randint", 2, 5]).representative() == 2


def test_hyperopt_space_samples_within_declared_ranges() -> None:
    from hyperopt.pyll import stochastic

    dims = [parse_dimension("lr", ["loguniform", -10, -1]), parse_dimension("factors", ["quniform", 8, 32, 4]),
            parse_dimension("layers", ["(64", "1)", "(128", "1)"])]
    space = hyperopt_space(dims)
    assert list(space) == ["lr", "factors", "layers"]
    rng = np.random.default_rng(0)
    samples = [stochastic.sample(space, rng=rng) for _ in range(200)]
    assert all(math.exp(-10) <= s["lr"] <= math.exp(-1) for s in samples)
    assert {s["factors"] for s in samples} <= {8.0, 12.0, 16.0, 20.0, 24.0, 28.0, 32.0}
    assert {s["layers"] for s in samples} == {(64, 1), (128, 1)}
