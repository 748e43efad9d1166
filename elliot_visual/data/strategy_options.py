"""YAML options of a prefiltering or splitting strategy, checked against the strategy's signature.

A strategy is a function whose keyword-only parameters are its options (``core``, ``test_ratio``,
...). Calling it through :func:`call_strategy` turns a typo or a missing option into an error that
names the strategy, the option and the options it does take, instead of a bare ``TypeError``.
The value parsers follow Elliot's checks (``str(x).isdigit()`` for counts).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class StrategyOptionError(ValueError):
    """A strategy block with an unknown, missing or malformed option."""


def call_strategy(kind: str, name: str, func: Callable[..., T], positional: tuple[Any, ...],
                  options: Mapping[str, Any]) -> T:
    """``func(*positional, **options)`` after checking ``options`` against ``func``'s keyword-only parameters.

    ``kind`` is the YAML block (``prefiltering``, ``splitting.test_splitting``) used in messages.
    """
    params = {p.name: p for p in inspect.signature(func).parameters.values()
              if p.kind is inspect.Parameter.KEYWORD_ONLY}
    known = ", ".join(params) or "none"
    unknown = [key for key in options if key not in params]
    if unknown:
        raise StrategyOptionError(f"{kind}: strategy '{name}' has no option '{unknown[0]}' (its options: {known})")
    missing = [key for key, p in params.items() if p.default is inspect.Parameter.empty and key not in options]
    if missing:
        raise StrategyOptionError(f"{kind}: strategy '{name}' needs option '{missing[0]}' (its options: {known})")
    return func(*positional, **options)


def as_count(strategy: str, option: str, value: Any) -> int:
    """A non-negative integer option; like Elliot, accepts ints and digit strings only (``3.5`` is refused)."""
    if isinstance(value, bool) or not str(value).isdigit():
        raise StrategyOptionError(f"strategy '{strategy}': option '{option}' must be a non-negative integer, "
                                  f"got {value!r}")
    return int(value)


def as_ratio(strategy: str, option: str, value: Any) -> float:
    """A ratio in (0, 1)."""
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        ratio = float("nan")
    if isinstance(value, bool) or not 0.0 < ratio < 1.0:
        raise StrategyOptionError(f"strategy '{strategy}': option '{option}' must be a number in (0, 1), got {value!r}")
    return ratio
