"""What a run checks on the prepared data before it trains anything.

The config layer validates what it can see in the YAML; some faults show only against the data:
a ``top_k`` longer than the catalogue, sizes that would allocate gigabytes before failing
(``factors: 10000000``), a batch many times the data, feature rows of a model's loader, metric
options. Each is a clean error naming the YAML key, raised in seconds instead of after hours of
training. ``experiment.config_test: True`` (Elliot's dry-run switch) runs only this and stops.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from elliot_visual.config.errors import ConfigError, Problem, key_path
from elliot_visual.config.schema import Experiment, ModelSpec
from elliot_visual.config.search_space import parse_dimension
from elliot_visual.data.interactions import Interactions
from elliot_visual.evaluation.evaluator import build_metrics
from elliot_visual.registry import MODELS

# An embedding of this many bytes or more per model is refused (float32 rows for every user and item).
MAX_EMBEDDING_BYTES = 8 * 2**30
# A batch of more than this many times the train interactions is a typo, not a choice.
MAX_BATCH_RATIO = 10
# Grid points checked per entry (a grid's values are each checked anyway; this bounds the products).
MAX_POINTS = 64
SIZE_SUFFIXES = ("factors", "factors_d", "_size", "_dim", "embedding", "hidden")


def preflight(exp: Experiment, folds: list[list[Interactions]],
              features: Callable[[type, str, Interactions], Any]) -> None:
    """Raise a :class:`ConfigError` naming the key of the first data-dependent fault (see module doc)."""
    from elliot_visual.tuning.tune import comparison_variants

    data = folds[0][0]
    n_items = min(d.n_items for inner in folds for d in inner)
    transactions = min(d.transactions for inner in folds for d in inner)
    problems: list[Problem] = []
    if exp.top_k > n_items:
        problems.append(Problem(f"top_k {exp.top_k} exceeds the catalogue of {n_items} items", "experiment.top_k",
                                f"a list cannot hold more items than the catalogue; use at most {n_items}"))
    threshold = exp.evaluation.relevance_threshold
    for inner in folds:
        for split in inner:
            for label, part in (("validation", split.validation), ("test", split.test)):
                if part is not None and len(part) and not (part.ratings >= threshold).any():
                    problems.append(Problem(
                        f"no {label} rating reaches relevance_threshold {threshold} (highest: {part.ratings.max():g})",
                        "experiment.evaluation.relevance_threshold",
                        "no item would be relevant and every metric empty; lower the threshold"))
                    break
    try:
        build_metrics(exp.evaluation)
    except (ValueError, TypeError) as error:
        problems.append(Problem(str(error), "experiment.evaluation.complex_metrics"))
    for spec in exp.models:
        for variant in comparison_variants(spec):
            problems += _check_entry(variant, data, transactions, features)
    if problems:
        raise ConfigError(problems, exp.config_path)


def _points(spec: ModelSpec) -> list[dict[str, Any]]:
    """Every grid point (capped), or one representative per continuous dimension."""
    dimensions = [parse_dimension(name, values) for name, values in spec.search.items()]
    axes = [[(d.name, v) for v in (d.values() if d.is_discrete else [d.representative()])] for d in dimensions]
    return [dict(point) for point in itertools.islice(itertools.product(*axes), MAX_POINTS)] or [{}]


def _check_entry(spec: ModelSpec, data: Interactions, transactions: int,
                 features: Callable[[type, str, Interactions], Any]) -> list[Problem]:
    from elliot_visual.models.base import DEFAULT_LOADER

    cls = MODELS.get(spec.name)
    at = ("experiment", "models", spec.key)
    loader = spec.loader or DEFAULT_LOADER
    problems: list[Problem] = []
    features_checked = False
    for point in _points(spec):
        try:
            params = cls.Params(**{**spec.params, **point})
        except ValidationError as error:
            item = error.errors(include_url=False)[0]
            key = item["loc"][0] if item["loc"] else ""
            problems.append(Problem(f"invalid value {item.get('input')!r}", key_path(*at, key),
                                    item["msg"].removeprefix("Value error, ")))
            break
        for name, value in params:
            if isinstance(value, bool) or not isinstance(value, int):
                continue
            if name == "batch_size" and value > MAX_BATCH_RATIO * max(transactions, 1):
                problems.append(Problem(
                    f"batch_size {value} is over {MAX_BATCH_RATIO} times the {transactions} train interactions",
                    key_path(*at, name), "use -1 for one batch of every interaction, or a smaller batch"))
            elif name.endswith(SIZE_SUFFIXES) and value * (data.n_users + data.n_items) * 4 >= MAX_EMBEDDING_BYTES:
                gib = value * (data.n_users + data.n_items) * 4 / 2**30
                problems.append(Problem(f"{name} {value} would need {gib:.0f} GiB for the user and item vectors",
                                        key_path(*at, name), "choose a size in the tens or hundreds"))
        if not features_checked:
            features_checked = True
            try:
                features(cls, loader, data)
            except ValueError as error:
                problems.append(Problem(str(error), key_path(*at, "loader") if spec.loader else key_path(*at)))
        if problems:
            break
    return problems
