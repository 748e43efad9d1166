"""Time bins over the training span, for models whose parameters change with time (TVBPR).

He & McAuley (WWW 2016) cut the timeline into equal-width bins and group contiguous bins into
"time epochs"; a model looks up the bin of the event it scores. Events before the first train event
fall in bin 0, events after the last in the last bin (a test event lies after the train span in a
temporal split, and gets the latest parameters).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from elliot_visual.data.interactions import Interactions


@dataclass(frozen=True)
class TimeBins:
    """``n_bins`` equal-width bins: ``edges`` (n_bins + 1,) float64 unix seconds, ascending."""

    edges: np.ndarray

    @property
    def n_bins(self) -> int:
        return int(self.edges.shape[0] - 1)

    @classmethod
    def equal_width(cls, timestamps: np.ndarray, n_bins: int) -> "TimeBins":
        """Bins spanning ``[min, max]`` of ``timestamps`` (NaN ignored)."""
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        stamps = np.asarray(timestamps, dtype=np.float64)
        stamps = stamps[np.isfinite(stamps)]
        if not stamps.size:
            raise ValueError("time bins need timestamps, but the data have none (a 'timestamp' column)")
        low, high = float(stamps.min()), float(stamps.max())
        if high == low:
            high = low + 1.0
        return cls(np.linspace(low, high, n_bins + 1))

    @classmethod
    def over_train(cls, data: Interactions, n_bins: int) -> "TimeBins":
        """Bins over ``data``'s train events."""
        if data.train_timestamps is None:
            raise ValueError(f"{data.name}: time bins need train timestamps, but the split has none; "
                             "read a dataset with a timestamp column")
        return cls.equal_width(data.train_timestamps.data, n_bins)

    def bin_of(self, timestamps: np.ndarray) -> np.ndarray:
        """(n,) int64 bin index of each timestamp, clipped to [0, n_bins - 1]; NaN maps to the last bin."""
        stamps = np.asarray(timestamps, dtype=np.float64)
        index = np.searchsorted(self.edges, np.nan_to_num(stamps, nan=np.inf), side="right") - 1
        return np.clip(index, 0, self.n_bins - 1).astype(np.int64)

    def labels(self, groups: np.ndarray | None = None) -> list[str]:
        """Date ranges ``YYYY-MM-DD – YYYY-MM-DD`` of each bin, or of each group of contiguous bins
        when ``groups`` gives the group of every bin (non-decreasing)."""
        if groups is None:
            starts, ends = self.edges[:-1], self.edges[1:]
        else:
            groups = np.asarray(groups)
            first = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
            last = np.r_[first[1:], self.n_bins]
            starts, ends = self.edges[first], self.edges[last]
        return [f"{_day(a)} – {_day(b)}" for a, b in zip(starts, ends)]


def _day(seconds: float) -> str:
    return datetime.fromtimestamp(float(seconds), tz=timezone.utc).strftime("%Y-%m-%d")
