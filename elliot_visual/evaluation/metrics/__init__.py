"""Evaluation metrics, one module per family; importing this package registers them all in METRICS.

Every module in this package is imported, so a new metric file (e.g. ``visdiv.py``) registers
itself by being here. Third-party metrics register through the ``elliot_visual.plugins`` entry points.
"""
from __future__ import annotations

import importlib
import pkgutil

from elliot_visual.evaluation.metrics.base import Metric, MetricValue, RankingContext, register_metric

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["Metric", "MetricValue", "RankingContext", "register_metric"]
