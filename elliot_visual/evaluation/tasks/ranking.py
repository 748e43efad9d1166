"""The ranking tasks: Elliot's full ranking with train masking, and the sampled-negatives protocol.

Both rank items for a user with the model's ``score`` and compute Elliot's metrics on the lists
(:mod:`elliot_visual.evaluation.evaluator`); they differ in the candidates. ``ranking`` ranks the
whole catalogue minus the user's train items; ``sampled`` ranks each held-out positive against N
sampled negatives over T seeded trials and reports the mean (``<metric>``) and the standard
deviation (``<metric>_std``) over trials, with the settings of ``evaluation.negative_sampling``
(Elliot's key) or, when a model entry picks ``meta.task: sampled`` without it, its defaults.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from torch import Tensor

from elliot_visual.config.schema import Evaluation, NegativeSampling
from elliot_visual.data.interactions import Interactions
from elliot_visual.evaluation.evaluator import EvaluationResult, evaluate
from elliot_visual.evaluation.tasks.base import Part, Task, TaskSettings, register_task, score_function
from elliot_visual.models.base import Recommender


class _ListTask(Task):
    """Shared body: rank with the model's scores under this task's protocol settings."""

    def protocol(self) -> Evaluation:
        raise NotImplementedError

    def evaluate(self, model: Recommender, data: Interactions, part: Part, *,
                 metrics: Sequence[str] | None = None, cutoffs: Sequence[int] | None = None,
                 features: Mapping[str, np.ndarray] | None = None,
                 inputs: Mapping[str, Tensor] | None = None) -> EvaluationResult:
        return evaluate(score_function(model, data, part), data, part, self.protocol(), self.settings.top_k,
                        self.settings.device, metrics=list(metrics) if metrics is not None else None,
                        features=features, cutoffs=cutoffs)


@register_task("ranking")
class RankingTask(_ListTask):
    """Full ranking: every catalogue item except the user's train items is a candidate."""

    def __init__(self, settings: TaskSettings) -> None:
        super().__init__(settings)
        self._protocol = settings.evaluation.model_copy(update={"negative_sampling": None})

    def protocol(self) -> Evaluation:
        return self._protocol


@register_task("sampled")
class SampledTask(_ListTask):
    """1 held-out positive against N sampled negatives, T seeded trials, mean ± std."""

    def __init__(self, settings: TaskSettings) -> None:
        super().__init__(settings)
        sampling = settings.evaluation.negative_sampling or NegativeSampling()
        self._protocol = settings.evaluation.model_copy(update={"negative_sampling": sampling})

    def protocol(self) -> Evaluation:
        return self._protocol
