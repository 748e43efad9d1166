"""Elliot's prefiltering strategies, applied in the order the ``prefiltering`` list gives them.

Each strategy is a function ``(frame, *, options) -> frame`` registered in ``PREFILTERS`` under
Elliot's name. Rows are filtered, never reordered; duplicate (user, item) rows count as separate
rows, as in Elliot. Thresholds follow Elliot: counts and rating thresholds must be integers
(``str(x).isdigit()``), ``threshold: average`` means the global mean rating.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from elliot_visual.data.strategy_options import StrategyOptionError, as_count, call_strategy
from elliot_visual.registry import PREFILTERS

if TYPE_CHECKING:
    from elliot_visual.config.schema import Prefilter

logger = logging.getLogger(__name__)


@PREFILTERS.register("global_threshold")
def global_threshold(frame: pd.DataFrame, *, threshold: int | str) -> pd.DataFrame:
    """Keep rows with ``rating >= threshold``; ``threshold: average`` uses the global mean rating."""
    if threshold == "average":
        value = float(frame["rating"].mean())
    else:
        try:
            value = as_count("global_threshold", "threshold", threshold)
        except StrategyOptionError:
            raise StrategyOptionError(f"strategy 'global_threshold': threshold must be an integer or 'average' "
                                      f"(Elliot accepts no fractions), got {threshold!r}") from None
    return frame[frame["rating"] >= value]


@PREFILTERS.register("user_average")
def user_average(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep each user's rows rated at least that user's mean rating."""
    return frame[frame["rating"] >= frame.groupby("user")["rating"].transform("mean")]


@PREFILTERS.register("user_k_core")
def user_k_core(frame: pd.DataFrame, *, core: int) -> pd.DataFrame:
    """Keep users with at least ``core`` rows."""
    return _at_least(frame, "user", as_count("user_k_core", "core", core))


@PREFILTERS.register("item_k_core")
def item_k_core(frame: pd.DataFrame, *, core: int) -> pd.DataFrame:
    """Keep items with at least ``core`` rows."""
    return _at_least(frame, "item", as_count("item_k_core", "core", core))


@PREFILTERS.register("iterative_k_core")
def iterative_k_core(frame: pd.DataFrame, *, core: int) -> pd.DataFrame:
    """Repeat (user filter, then item filter) until a round removes no row: a true ``core``-core."""
    core = as_count("iterative_k_core", "core", core)
    while True:
        before = len(frame)
        frame = _at_least(_at_least(frame, "user", core), "item", core)
        if len(frame) == before:
            return frame


@PREFILTERS.register("n_rounds_k_core")
def n_rounds_k_core(frame: pd.DataFrame, *, core: int, rounds: int) -> pd.DataFrame:
    """Exactly ``rounds`` rounds of (user filter, then item filter), without a convergence check."""
    core = as_count("n_rounds_k_core", "core", core)
    for _ in range(as_count("n_rounds_k_core", "rounds", rounds)):
        frame = _at_least(_at_least(frame, "user", core), "item", core)
    return frame


@PREFILTERS.register("cold_users")
def cold_users(frame: pd.DataFrame, *, threshold: int) -> pd.DataFrame:
    """Keep only users with at most ``threshold`` rows (to study cold-start users)."""
    limit = as_count("cold_users", "threshold", threshold)
    return frame[frame.groupby("user")["user"].transform("size") <= limit]


def _at_least(frame: pd.DataFrame, column: str, core: int) -> pd.DataFrame:
    return frame[frame.groupby(column)[column].transform("size") >= core]


def apply_prefilters(frame: pd.DataFrame, steps: Iterable[Prefilter]) -> pd.DataFrame:
    """Apply each ``prefiltering`` step in order; each step's options are its extra YAML keys.

    Steps are ``schema.Prefilter`` objects (``strategy`` plus options in ``model_extra``) or plain
    dicts with a ``strategy`` key. Logs the rows, users and items before and after each step.
    """
    for position, step in enumerate(steps):
        name, options = _strategy_and_options(step, position)
        func = PREFILTERS.get(name)
        before = _sizes(frame)
        frame = call_strategy(f"prefiltering[{position}]", name, func, (frame,), options).reset_index(drop=True)
        logger.info("prefiltering %s %s: %s -> %s", name, options or "", before, _sizes(frame))
    return frame


def _strategy_and_options(step: Any, position: int) -> tuple[str, dict[str, Any]]:
    if isinstance(step, dict):
        options = dict(step)
        name = options.pop("strategy", None)
    else:
        name = getattr(step, "strategy", None)
        options = dict(getattr(step, "model_extra", None) or {})
    if not name:
        raise StrategyOptionError(f"prefiltering[{position}]: no 'strategy' given; known strategies: "
                                  f"{', '.join(PREFILTERS.names())}")
    return str(name), options


def _sizes(frame: pd.DataFrame) -> str:
    return f"{len(frame)} rows, {frame['user'].nunique()} users, {frame['item'].nunique()} items"
