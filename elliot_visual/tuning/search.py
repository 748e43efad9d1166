"""Hyperparameter search: Elliot's ``hyper_opt_alg`` names over a list of dimensions.

``grid`` enumerates the cartesian product in declaration order (Elliot draws the same points in a
seeded random order; a fixed order makes "first on ties" reproducible); with continuous dimensions
it samples ``max_evals`` distinct seeded points, as Elliot's own grid ``suggest`` does. ``tpe``,
``atpe``, ``mix``, ``rand`` and ``anneal`` are hyperopt's algorithms run through ``fmin`` with a
seeded ``np.random.default_rng`` (hyperopt >= 0.2.7 needs a Generator, so trial sequences differ
from Elliot's pinned hyperopt 0.2.5). Each algorithm is a ``SEARCH_ALGORITHMS`` entry with the
signature ``(dimensions, objective, max_evals, seed) -> list[Trial]``, so a backend (Ray Tune) can
register another. hyperopt is imported on first use: it pulls in scipy.stats (~1.5 s).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from elliot_visual.config.search_space import Dimension, grid_points, grid_size, hyperopt_space
from elliot_visual.registry import SEARCH_ALGORITHMS

Objective = Callable[[dict[str, Any]], float]
# Elliot's grid suggest gives up after this many consecutive duplicate samples.
MAX_CONSECUTIVE_DUPLICATES = 1000


@dataclass(frozen=True)
class Trial:
    """One evaluated point: ``index`` is its position in evaluation order, ``loss`` what the objective said."""

    index: int
    point: dict[str, Any]
    loss: float


def search(dimensions: list[Dimension], objective: Objective, algorithm: str = "grid",
           max_evals: int | None = None, seed: int = 42) -> list[Trial]:
    """Evaluate ``objective`` on points chosen by ``algorithm``; the trials in evaluation order.

    ``max_evals`` defaults to the grid size when every dimension is discrete (Elliot's default
    ``hyper_max_evals``); with a continuous dimension it must be given. The objective receives
    plain Python values (choices as written, tuples kept; ``quniform`` samples stay floats such as
    ``16.0`` for the model's ``Params`` to cast). With no dimensions the objective runs once on ``{}``.
    """
    run = SEARCH_ALGORITHMS.get(algorithm)
    if not dimensions:
        return [Trial(0, {}, float(objective({})))]
    if max_evals is None:
        max_evals = grid_size(dimensions)
        if max_evals is None:
            continuous = ", ".join(f"{d.name} ({d.distribution})" for d in dimensions if not d.is_discrete)
            raise ValueError(f"the search space has continuous dimensions ({continuous}), so its size is "
                             "unknown: set meta.hyper_max_evals to the number of trials")
    if max_evals < 1:
        raise ValueError(f"max_evals must be >= 1, got {max_evals}")
    return run(dimensions, objective, max_evals, seed)


def best_trial(trials: list[Trial]) -> Trial:
    """The trial with the lowest loss, the first one on ties (Elliot's argmin); NaN losses rank last."""
    if not trials:
        raise ValueError("no trials to choose from: the search evaluated nothing")
    return min(trials, key=lambda t: (math.isnan(t.loss), t.loss if not math.isnan(t.loss) else 0.0, t.index))


def plain(value: Any) -> Any:
    """A hyperopt sample as plain Python (numpy scalars -> int/float; lists/tuples element-wise)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _evaluate(points: list[dict[str, Any]], objective: Objective) -> list[Trial]:
    return [Trial(i, point, float(objective(point))) for i, point in enumerate(points)]


@SEARCH_ALGORITHMS.register("grid")
def grid_search(dimensions: list[Dimension], objective: Objective, max_evals: int, seed: int) -> list[Trial]:
    """The first ``max_evals`` grid points; with continuous dimensions, ``max_evals`` distinct seeded samples."""
    return _evaluate(grid_search_points(dimensions, max_evals, seed), objective)


def grid_search_points(dimensions: list[Dimension], max_evals: int, seed: int) -> list[dict[str, Any]]:
    """The points ``grid`` evaluates, in order (any backend enumerates these same points)."""
    if grid_size(dimensions) is not None:
        return grid_points(dimensions)[:max_evals]
    from hyperopt.pyll import stochastic

    space = hyperopt_space(dimensions)
    rng = np.random.default_rng(seed)
    points: list[dict[str, Any]] = []
    seen: set[str] = set()
    duplicates = 0
    while len(points) < max_evals and duplicates <= MAX_CONSECUTIVE_DUPLICATES:
        sample = stochastic.sample(space, rng=rng)
        point = {d.name: plain(sample[d.name]) for d in dimensions}
        fingerprint = repr(sorted(point.items()))
        if fingerprint in seen:
            duplicates += 1
            continue
        seen.add(fingerprint)
        duplicates = 0
        points.append(point)
    return points


def _hyperopt(suggest: Callable[[], Any]) -> Callable[[list[Dimension], Objective, int, int], list[Trial]]:
    """A search running hyperopt's ``fmin`` with the algorithm ``suggest()`` returns."""

    def run(dimensions: list[Dimension], objective: Objective, max_evals: int, seed: int) -> list[Trial]:
        from hyperopt import STATUS_OK, Trials, fmin

        trials: list[Trial] = []

        def evaluate(sample: dict[str, Any]) -> dict[str, Any]:
            point = {d.name: plain(sample[d.name]) for d in dimensions}
            loss = float(objective(point))
            trials.append(Trial(len(trials), point, loss))
            return {"loss": loss, "status": STATUS_OK}

        fmin(evaluate, hyperopt_space(dimensions), algo=suggest(), max_evals=max_evals, trials=Trials(),
             rstate=np.random.default_rng(seed), show_progressbar=False)
        return trials

    return run


def _tpe() -> Any:
    from hyperopt import tpe
    return tpe.suggest


def _atpe() -> Any:
    try:
        import lightgbm  # noqa: F401  hyperopt's ATPE needs it and says so only mid-search
    except ImportError:
        raise ImportError("hyper_opt_alg 'atpe' needs lightgbm: pip install 'elliot_visual[atpe]' "
                          "(or choose tpe)") from None
    from hyperopt import atpe
    return atpe.suggest


def _mix() -> Any:
    """hyperopt's mixture needs its components; these are the weights of hyperopt's own example."""
    from functools import partial

    from hyperopt import anneal, mix, rand, tpe
    return partial(mix.suggest, p_suggest=[(0.1, rand.suggest), (0.2, anneal.suggest), (0.7, tpe.suggest)])


def _rand() -> Any:
    from hyperopt import rand
    return rand.suggest


def _anneal() -> Any:
    from hyperopt import anneal
    return anneal.suggest


HYPEROPT_SUGGESTERS: dict[str, Callable[[], Any]] = {
    "tpe": _tpe, "atpe": _atpe, "mix": _mix, "rand": _rand, "anneal": _anneal}
"""Elliot's hyperopt algorithm names -> a function giving hyperopt's ``suggest`` (Ray's HyperOptSearch runs the same)."""

for _name, _suggest in HYPEROPT_SUGGESTERS.items():
    SEARCH_ALGORITHMS.register(_name, _hyperopt(_suggest))
