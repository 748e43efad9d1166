"""Tasks: the kinds of work a model serves (``ranking``, ``sampled``, ``auc``, ``multilabel``,
``transactions``), registered in ``TASKS``; see :mod:`elliot_visual.evaluation.tasks.base`."""
from __future__ import annotations

from elliot_visual.evaluation.tasks import auc, multilabel, ranking, transactions  # noqa: F401  (registers the tasks)
from elliot_visual.evaluation.tasks.base import (Selection, Task, TaskSettings, default_task, register_task,
                                                 score_function)
from elliot_visual.registry import TASKS


def build_task(name: str, settings: TaskSettings) -> Task:
    """The registered task ``name`` for these settings (looked up here, above the modules that
    register tasks, so that no task module depends on the registry's other entries)."""
    return TASKS.get(name)(settings)


__all__ = ["Selection", "Task", "TaskSettings", "build_task", "default_task", "register_task", "score_function"]
