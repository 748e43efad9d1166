"""What a task is: the kind of work a model serves, owning its evaluator, metrics, selection rule
and report table.

The tuner asks the model entry's task to validate (the selection value and the early-stopping
monitor at each validation event) and to evaluate the selected weights on test; the report writer
asks it which table the rows go to. Neither special-cases a model. A new protocol (a sampled
setting, a per-transaction rolling evaluation, a label-prediction task) is one more registered
:class:`Task` subclass::

    @register_task("ranking")
    class RankingTask(Task):
        def evaluate(self, model, data, part, *, metrics=None, cutoffs=None, features=None, inputs=None): ...
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal, TypeVar

import numpy as np
import torch
from torch import Tensor

from elliot_visual.config.schema import Evaluation, split_metric_at
from elliot_visual.data.interactions import HeldOut, Interactions
from elliot_visual.evaluation.evaluator import EvaluationResult, build_metrics
from elliot_visual.evaluation.scoring import ModelScores
from elliot_visual.registry import METRICS, TASKS

if TYPE_CHECKING:
    from elliot_visual.models.base import Recommender

Part = Literal["validation", "test"]
T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class TaskSettings:
    """The config sections a task reads: ``evaluation`` (metrics, cutoffs, protocol keys), the list
    length ``top_k``, and the device the model scores on."""

    evaluation: Evaluation
    top_k: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


@dataclass(frozen=True)
class Selection:
    """A metric at a cutoff, as ``meta.validation_metric`` names it (``Recall@10``)."""

    metric: str
    cutoff: int

    @property
    def key(self) -> str:
        return f"{self.metric}@{self.cutoff}"


class Task:
    """Base of every task. Subclasses implement :meth:`evaluate`; the rest has sensible defaults."""

    name: ClassVar[str] = ""
    table: ClassVar[str] = "rec"  # report file family: ``<table>_cutoff_<k>_relthreshold_<t>_<ts>.tsv``

    def __init__(self, settings: TaskSettings) -> None:
        self.settings = settings

    @property
    def evaluation(self) -> Evaluation:
        return self.settings.evaluation

    def metric_names(self) -> list[str]:
        """The configured metrics this task computes, in configured order (registered spelling)."""
        simple = [METRICS.canonical(n) for n in self.evaluation.simple_metrics]
        return simple + [METRICS.canonical(c.metric) for c in self.evaluation.complex_metrics]

    def trial_metrics(self) -> list[str]:
        """The metrics computed for every trial: all but the feature-reading ones (VisDiv: a t-SNE per
        user), which the tuner adds for the selected configuration only."""
        return [m.name for m in build_metrics(self.evaluation, self.metric_names()) if not m.needs_features]

    def selectable(self) -> list[str]:
        """Metrics a model entry may be selected on: the configured simple metrics."""
        return [METRICS.canonical(n) for n in self.evaluation.simple_metrics]

    def selection(self, text: str | None) -> Selection:
        """``meta.validation_metric`` (``Metric@k``; default: the first simple metric at the first
        cutoff; without ``@k`` the first cutoff), checked against this task's metrics and cutoffs."""
        simple = self.selectable()
        cutoffs = self.evaluation.cutoffs
        if not simple:
            raise ValueError("evaluation.simple_metrics is empty: the validation metric must be one of them")
        if not cutoffs:
            raise ValueError("evaluation.cutoffs is empty: set cutoffs (or top_k) before choosing a validation metric")
        if text is None or not str(text).strip():
            return Selection(simple[0], cutoffs[0])
        name, k = split_metric_at(str(text), what="meta.validation_metric")
        lowered = {m.lower(): m for m in simple}
        if name.lower() not in lowered:
            raise ValueError(f"meta.validation_metric {text!r}: {name!r} is not in evaluation.simple_metrics "
                             f"({', '.join(simple)}); pick one of them")
        if k is None:
            return Selection(lowered[name.lower()], cutoffs[0])
        if k not in cutoffs:
            raise ValueError(f"meta.validation_metric {text!r}: cutoff {k} is not in evaluation.cutoffs "
                             f"({', '.join(map(str, cutoffs))})")
        return Selection(lowered[name.lower()], k)

    def evaluate(self, model: "Recommender", data: Interactions, part: Part, *,
                 metrics: Sequence[str] | None = None, cutoffs: Sequence[int] | None = None,
                 features: Mapping[str, np.ndarray] | None = None,
                 inputs: Mapping[str, Tensor] | None = None) -> "EvaluationResult":
        """Every configured metric (or ``metrics``) at every cutoff (or ``cutoffs``) on ``part``.

        ``features`` are item-aligned arrays for metrics that read side information (VisDiv);
        ``inputs`` the model's own feature tensors (what its ``needs`` received), for tasks whose
        targets come from them (the multilabel task's ``item_labels``)."""
        raise NotImplementedError

    def validate(self, model: "Recommender", data: Interactions, watched: Sequence[Selection],
                 inputs: Mapping[str, Tensor] | None = None) -> dict[str, float]:
        """The watched values (selection value, early-stopping monitor) on validation, keyed
        ``Metric@k``; without a validation split, on test (Elliot's rule; the tuner warns)."""
        part: Part = "validation" if data.validation is not None else "test"
        result = self.evaluate(model, data, part, metrics=sorted({s.metric for s in watched}),
                               cutoffs=sorted({s.cutoff for s in watched}), inputs=inputs)
        return {s.key: result.values[s.cutoff][s.metric] for s in watched}


def register_task(name: str) -> Callable[[T], T]:
    """``@register_task("ranking")``: add a task to the registry under ``name``."""

    def add(cls: T) -> T:
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise TypeError(f"task {name} must subclass Task")
        cls.name = name
        TASKS.register(name, cls)
        return cls

    return add


def event_times(part: HeldOut, n_users: int) -> np.ndarray:
    """(n_users,) float64: each user's earliest event time in ``part`` (NaN where she has none or
    the part has no timestamps): the time a temporal model scores her ranking at."""
    if part.timestamps is None or not len(part):
        return np.full(n_users, np.nan)
    times = np.full(n_users, np.inf)
    np.minimum.at(times, part.users, part.timestamps)
    times[np.isinf(times)] = np.nan
    return times


def score_function(model: "Recommender", data: Interactions, part: Part) -> Callable[[Tensor], Tensor]:
    """``users -> scores`` for ranking ``part``: the model's scores for this one evaluation
    (:class:`~elliot_visual.evaluation.scoring.ModelScores`: its item side computed once, in
    blocks), given each user's event time when the model ``uses_time``."""
    scores = ModelScores(model)
    if not getattr(model, "uses_time", False):
        return scores
    held = data.validation if part == "validation" and data.validation is not None else data.test
    times = torch.from_numpy(event_times(held, data.n_users))
    return lambda users: scores(users, at=times[users.cpu()].to(users.device))


def default_task(model_tasks: Sequence[str], evaluation: Evaluation) -> str:
    """The task a model entry runs when ``meta.task`` is not given: ``sampled`` when the config has
    ``evaluation.negative_sampling`` and the model serves it, ``transactions`` likewise with
    ``evaluation.transactions``, else the model's first task."""
    if evaluation.negative_sampling is not None and "sampled" in model_tasks:
        return "sampled"
    if evaluation.transactions is not None and "transactions" in model_tasks:
        return "transactions"
    return model_tasks[0]

