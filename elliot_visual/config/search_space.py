"""Searched hyperparameters: Elliot's YAML lists turned into dimensions, grids and hyperopt spaces.

Elliot (``namespace_model.fill_model``) reads every YAML list under a model as a searched
hyperparameter:

- first element one of hyperopt's distribution names (``[loguniform, -10, -1]``) -> that
  distribution, the remaining elements its arguments (strings ``literal_eval``'ed);
- every element a string (``["1e-5", "1e-4"]``, YAML 1.1 reads ``1e-5`` as a string) -> a choice
  over those strings, cast later by the model's ``Params``;
- otherwise a choice over the values, strings ``literal_eval``'ed so that ``(64, 1)`` is a tuple.

A flow list of tuples, ``[(64, 1), (128, 1)]``, reaches us cut at every comma (YAML knows no
tuples); its pieces are joined back into tuples whatever their types (Elliot mends them only when
the pieces mix strings and numbers).

hyperopt semantics apply to sampled values (``quniform`` returns floats such as ``16.0``): the
model's ``Params`` validate and cast every point before a model sees it. hyperopt itself is
imported only by :func:`hyperopt_space`, so that loading a config stays fast.
"""
from __future__ import annotations

import ast
import itertools
import math
from dataclasses import dataclass
from typing import Any

# Distribution name -> the argument counts hyperopt's ``hp.<name>(label, *args)`` accepts.
DISTRIBUTIONS: dict[str, tuple[int, ...]] = {
    "choice": (1,),
    "randint": (1, 2),
    "uniform": (2,),
    "quniform": (3,),
    "loguniform": (2,),
    "qloguniform": (3,),
    "normal": (2,),
    "qnormal": (3,),
    "lognormal": (2,),
    "qlognormal": (3,),
}

_ARGUMENT_NAMES: dict[str, str] = {
    "choice": "[options]",
    "randint": "upper or low, high",
    "uniform": "low, high",
    "quniform": "low, high, q",
    "loguniform": "low, high (of the log)",
    "qloguniform": "low, high (of the log), q",
    "normal": "mu, sigma",
    "qnormal": "mu, sigma, q",
    "lognormal": "mu, sigma (of the log)",
    "qlognormal": "mu, sigma (of the log), q",
}


@dataclass(frozen=True)
class Dimension:
    """One searched hyperparameter: ``distribution`` is a hyperopt name, ``args`` its arguments.

    For ``choice`` the args are the options themselves (plain Python values, tuples kept).
    """

    name: str
    distribution: str
    args: tuple[Any, ...]

    @property
    def is_discrete(self) -> bool:
        """True when the dimension has finitely many values a grid can enumerate."""
        return self.distribution in ("choice", "randint")

    def values(self) -> list[Any]:
        """Every value of a discrete dimension, in declaration (or ascending) order."""
        if self.distribution == "choice":
            return list(self.args)
        if self.distribution == "randint":
            low, high = (0, self.args[0]) if len(self.args) == 1 else self.args
            return list(range(int(low), int(high)))
        raise ValueError(f"{self.name}: a {self.distribution} dimension is continuous; it has no finite "
                         "list of values (set hyper_max_evals and let the search sample it)")

    def representative(self) -> Any:
        """One value hyperopt could produce, for type-checking a dimension against ``Params``."""
        if self.is_discrete:
            return self.values()[0]
        first = self.args[0]
        quantum = self.args[2] if len(self.args) == 3 else None
        value = math.exp(first) if self.distribution in ("loguniform", "qloguniform", "lognormal",
                                                         "qlognormal") else float(first)
        return float(round(value / quantum) * quantum) if quantum else float(value)


def _literal(value: Any) -> Any:
    """A YAML string read as a Python literal where it is one (``"(64, 1)"`` -> ``(64, 1)``)."""
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_dimension(name: str, values: list[Any]) -> Dimension:
    """A YAML list of model ``name`` as a :class:`Dimension`, following Elliot's ``fill_model`` rules.

    Raises ``ValueError`` naming the distribution and the arguments it expects when the list is
    malformed (empty, wrong argument count, non-numeric or empty ranges).
    """
    if not isinstance(values, list):
        raise ValueError(f"expected a list of values, got {values!r}")
    if not values:
        raise ValueError("an empty list searches nothing; give at least one value")
    head = values[0]
    if isinstance(head, str) and head.strip() in DISTRIBUTIONS:
        return _distribution(name, head.strip(), [_literal(v) for v in values[1:]])
    if _split_tuples(values):
        return Dimension(name, "choice", tuple(_rejoined(name, values)))
    if all(isinstance(v, str) for v in values):
        return Dimension(name, "choice", tuple(values))
    return Dimension(name, "choice", tuple(_literal(v) for v in values))


def _split_tuples(values: list[Any]) -> bool:
    """True when YAML cut tuples apart: ``[(64, 1), (128, 1)]`` reads as ``['(64', '1)', '(128', '1)']``."""
    return any(isinstance(v, str) and v.count("(") != v.count(")") for v in values)


def _rejoined(name: str, values: list[Any]) -> list[Any]:
    """The options of a flow list whose tuples YAML split at their commas, put back together.

    Elliot joins the elements with commas and ``literal_eval``s the result when the list mixes
    strings and numbers (so ``[(32, 16, 8), (64, 32, 16)]`` works there); the same join here also
    mends all-string fragments (``(64, 1)``), which Elliot would turn into a choice over fragments.
    """
    text = "[" + ", ".join(str(v) for v in values) + "]"
    try:
        options = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"cannot read {text} as a list of values; quote each tuple, e.g. ['(64, 1)', '(128, 1)']"
                         ) from None
    return [_literal(v) for v in options]


def _distribution(name: str, distribution: str, args: list[Any]) -> Dimension:
    expected = DISTRIBUTIONS[distribution]
    usage = f"write [{distribution}, {_ARGUMENT_NAMES[distribution]}]"
    if len(args) not in expected:
        counts = " or ".join(str(n) for n in expected)
        raise ValueError(f"{distribution} takes {counts} argument(s), got {len(args)} ({args!r}); {usage}")
    if distribution == "choice":
        options = args[0]
        if not isinstance(options, (list, tuple)) or not options:
            raise ValueError(f"choice takes one non-empty list of options, got {options!r}; {usage}")
        return Dimension(name, "choice", tuple(_literal(v) for v in options))
    if not all(_is_number(a) for a in args):
        raise ValueError(f"{distribution} arguments must be numbers, got {args!r}; {usage}")
    if distribution == "randint":
        low, high = (0, args[0]) if len(args) == 1 else args
        if not (float(low).is_integer() and float(high).is_integer()) or high <= low:
            raise ValueError(f"randint needs integers with low < high, got {args!r}; {usage}")
    elif distribution.endswith("uniform") and args[1] <= args[0]:
        raise ValueError(f"{distribution} needs low < high, got {args!r}; {usage}")
    elif distribution.endswith("normal") and args[1] <= 0:
        raise ValueError(f"{distribution} needs sigma > 0, got {args!r}; {usage}")
    if len(args) == 3 and args[2] <= 0:
        raise ValueError(f"{distribution} needs a quantum q > 0, got {args!r}; {usage}")
    return Dimension(name, distribution, tuple(args))


def grid_size(dimensions: list[Dimension]) -> int | None:
    """Number of grid points (Elliot's default ``hyper_max_evals``); None if a dimension is continuous."""
    if not all(d.is_discrete for d in dimensions):
        return None
    return math.prod(len(d.values()) for d in dimensions)


def grid_points(dimensions: list[Dimension]) -> list[dict[str, Any]]:
    """The full cartesian product, last dimension varying fastest, in declaration order.

    Deterministic, unlike Elliot's grid (which draws the same points in a seeded random order):
    with ties on the validation metric the first point wins, so a stable order matters.
    """
    continuous = [d.name for d in dimensions if not d.is_discrete]
    if continuous:
        raise ValueError(f"no grid over continuous dimensions ({', '.join(continuous)})")
    names = [d.name for d in dimensions]
    return [dict(zip(names, combo)) for combo in itertools.product(*(d.values() for d in dimensions))]


def hyperopt_space(dimensions: list[Dimension]) -> dict[str, Any]:
    """The dimensions as hyperopt ``hp.*`` expressions, keyed by name in declaration order."""
    from hyperopt import hp  # imported here: hyperopt pulls in scipy.stats (~1.5 s)

    space: dict[str, Any] = {}
    for d in dimensions:
        function = getattr(hp, d.distribution)
        space[d.name] = function(d.name, list(d.args)) if d.distribution == "choice" else function(d.name, *d.args)
    return space
