"""Numbers as Elliot's report files print them (pandas ``to_csv``), shared by every report table."""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def format_number(value: Any) -> str:
    """A value as Elliot's pandas ``to_csv`` writes it: float repr, NaN empty."""
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, (int, np.integer)):
        return repr(float(value))
    return str(value)


def format_threshold(threshold: float | int) -> str:
    """``relthreshold_<t>`` as Elliot prints the YAML value (``1`` stays ``1``, ``1.5`` stays ``1.5``)."""
    return str(threshold)
