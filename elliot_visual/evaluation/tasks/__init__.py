"""Tasks: the kinds of work a model serves (``ranking``, ``sampled``, ``auc``, ``multilabel``),
registered in ``TASKS``; see :mod:`elliot_visual.evaluation.tasks.base`."""
from elliot_visual.evaluation.tasks import auc, multilabel, ranking  # noqa: F401  (registers the tasks)
from elliot_visual.evaluation.tasks.base import (Selection, Task, TaskSettings, build_task, default_task,
                                                 register_task, score_function)

__all__ = ["Selection", "Task", "TaskSettings", "build_task", "default_task", "register_task", "score_function"]
