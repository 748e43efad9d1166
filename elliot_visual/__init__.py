"""elliot_visual: visually-aware recommendation, the Elliot way.

Importing the package does nothing observable; ``run_experiment`` is imported on first use.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "run_experiment", "load_experiment"]


def __getattr__(name: str) -> Any:
    if name == "run_experiment":
        from elliot_visual.experiment import run_experiment
        return run_experiment
    if name == "load_experiment":
        from elliot_visual.config import load_experiment
        return load_experiment
    raise AttributeError(name)
