"""Grid and hyperopt search over Elliot's dimensions: best point, determinism under a seed, ties."""
from __future__ import annotations

import math
from typing import Any

import pytest

from elliot_visual.config.search_space import parse_dimension
from elliot_visual.registry import SEARCH_ALGORITHMS
from elliot_visual.tuning.search import Trial, best_trial, search


def bowl(point: dict[str, Any]) -> float:
    """Minimum 0 at lr=0.01, factors=64."""
    return (math.log10(point["lr"]) + 2) ** 2 + (point["factors"] / 64 - 1) ** 2


def quadratic(point: dict[str, Any]) -> float:
    return (point["x"] - 1.5) ** 2


def test_elliot_algorithm_names_are_registered() -> None:
    assert set(SEARCH_ALGORITHMS.names()) >= {"grid", "tpe", "atpe", "mix", "rand", "anneal"}


def test_grid_evaluates_every_point_in_order_and_finds_the_minimum() -> None:
    dims = [parse_dimension("lr", [0.1, 0.01, 0.001]), parse_dimension("factors", [32, 64, 128])]
    trials = search(dims, bowl, "grid", max_evals=None)
    assert [t.index for t in trials] == list(range(9))
    assert trials[0].point == {"lr": 0.1, "factors": 32} and trials[-1].point == {"lr": 0.001, "factors": 128}
    assert best_trial(trials).point == {"lr": 0.01, "factors": 64} and best_trial(trials).loss == 0.0


def test_grid_max_evals_caps_the_enumeration() -> None:
    dims = [parse_dimension("lr", [0.1, 0.01, 0.001]), parse_dimension("factors", [32, 64, 128])]
    assert [t.point for t in search(dims, bowl, "grid", max_evals=2)] == [{"lr": 0.1, "factors": 32},
                                                                         {"lr": 0.1, "factors": 64}]


def test_grid_over_a_continuous_dimension_samples_distinct_seeded_points() -> None:
    dims = [parse_dimension("x", ["uniform", -3, 3]), parse_dimension("k", ["choice", [1, 2]])]
    first = search(dims, quadratic, "grid", max_evals=12, seed=5)
    assert len(first) == 12 and len({(t.point["x"], t.point["k"]) for t in first}) == 12
    assert all(-3 <= t.point["x"] <= 3 and t.point["k"] in (1, 2) for t in first)
    assert first == search(dims, quadratic, "grid", max_evals=12, seed=5)
    assert first != search(dims, quadratic, "grid", max_evals=12, seed=6)


def test_grid_over_a_small_discrete_space_stops_when_points_run_out() -> None:
    # quniform is continuous in form but takes two values here: only 4 distinct points exist.
    dims = [parse_dimension("x", [1, 2]), parse_dimension("y", ["quniform", 0, 1, 1])]
    trials = search(dims, lambda p: 0.0, "grid", max_evals=10, seed=0)
    assert sorted((t.point["x"], t.point["y"]) for t in trials) == [(1, 0.0), (1, 1.0), (2, 0.0), (2, 1.0)]


@pytest.mark.parametrize("algorithm", ["tpe", "rand", "anneal", "mix"])
def test_hyperopt_algorithms_find_the_minimum_region_of_a_quadratic(algorithm: str) -> None:
    trials = search([parse_dimension("x", ["uniform", -10, 10])], quadratic, algorithm, max_evals=60, seed=3)
    assert len(trials) == 60 and [t.index for t in trials] == list(range(60))
    assert abs(best_trial(trials).point["x"] - 1.5) < 0.5


def test_tpe_samples_closer_to_the_minimum_than_random_search_after_its_random_start() -> None:
    # TPE's first 20 trials are random; later ones should cluster around x = 1.5 (rand's do not).
    def late_median_distance(algorithm: str) -> float:
        trials = search([parse_dimension("x", ["uniform", -10, 10])], quadratic, algorithm, max_evals=60, seed=3)
        late = sorted(abs(t.point["x"] - 1.5) for t in trials[40:])
        return late[len(late) // 2]

    assert late_median_distance("tpe") < 0.75 * late_median_distance("rand")


def test_atpe_runs_when_lightgbm_is_installed() -> None:
    pytest.importorskip("lightgbm", reason="hyper_opt_alg atpe needs the optional lightgbm (extra 'atpe')")
    trials = search([parse_dimension("x", ["uniform", -3, 3])], quadratic, "atpe", max_evals=6, seed=0)
    assert len(trials) == 6 and all(-3 <= t.point["x"] <= 3 for t in trials)


@pytest.mark.parametrize("algorithm", ["grid", "tpe", "rand", "anneal"])
def test_same_seed_same_trials(algorithm: str) -> None:
    dims = [parse_dimension("x", ["uniform", -10, 10]), parse_dimension("k", [1, 2, 3])]
    runs = [search(dims, quadratic, algorithm, max_evals=25, seed=11) for _ in range(2)]
    assert runs[0] == runs[1]
    assert runs[0] != search(dims, quadratic, algorithm, max_evals=25, seed=12)


def test_objective_receives_plain_python_values() -> None:
    seen: list[dict[str, Any]] = []

    def record(point: dict[str, Any]) -> float:
        seen.append(point)
        return 0.0

    dims = [parse_dimension("layers", ["(64", "1)", "(128", "1)"]), parse_dimension("f", ["quniform", 8, 32, 1]),
            parse_dimension("k", ["randint", 3]), parse_dimension("act", ["relu", "tanh"])]
    search(dims, record, "tpe", max_evals=8, seed=0)
    for point in seen:
        assert point["layers"] in ((64, 1), (128, 1))
        assert type(point["f"]) is float and point["f"].is_integer()  # Params casts it to int
        assert type(point["k"]) is int and point["act"] in ("relu", "tanh")


def test_hyperopt_default_max_evals_is_the_grid_size() -> None:
    dims = [parse_dimension("a", [1, 2, 3]), parse_dimension("b", ["x", "y"])]
    assert len(search(dims, lambda p: 0.0, "rand", max_evals=None)) == 6


def test_continuous_space_needs_max_evals() -> None:
    with pytest.raises(ValueError, match=r"continuous dimensions \(x \(uniform\)\).*hyper_max_evals"):
        search([parse_dimension("x", ["uniform", 0, 1])], quadratic, "tpe", max_evals=None)


def test_unknown_algorithm_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown hyper_opt_alg 'bayes'.*grid"):
        search([parse_dimension("x", [1])], quadratic, "bayes", max_evals=1)


def test_no_dimensions_runs_the_objective_once() -> None:
    assert search([], lambda p: 4.0 if p == {} else 0.0, "grid") == [Trial(0, {}, 4.0)]


def test_best_trial_is_the_first_minimum_on_ties_and_skips_nan() -> None:
    trials = [Trial(0, {"a": 1}, float("nan")), Trial(1, {"a": 2}, -0.5), Trial(2, {"a": 3}, -0.7),
              Trial(3, {"a": 4}, -0.7), Trial(4, {"a": 5}, -0.1)]
    assert best_trial(trials).index == 2
    assert best_trial([Trial(0, {}, float("nan"))]).index == 0
    with pytest.raises(ValueError, match="no trials"):
        best_trial([])
