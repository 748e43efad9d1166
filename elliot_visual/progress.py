"""Progress of long work, readable on a terminal and in a log file alike.

On a terminal a tqdm bar is drawn (tqdm's own ``TQDM_DISABLE`` / ``TQDM_*`` environment settings
apply, because no ``disable`` argument overrides them). When standard error is not a terminal (a
log file, a pipe, CI) no carriage-return frames are written: a plain log line is emitted instead at
most every ``interval`` seconds and when the work ends (training logs one line per epoch). Bars can
be switched off for the whole process with :func:`configure` (``--no-progress`` / ``--quiet``);
the log lines stay, since the log file is where an unattended run is read.
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("elliot_visual.progress")

_bars_enabled = True


def configure(bars: bool = True) -> None:
    """Process-wide switch for terminal bars (the CLI's ``--no-progress`` and ``--quiet`` turn it off)."""
    global _bars_enabled
    _bars_enabled = bars


def bars_enabled() -> bool:
    """Whether a bar may be drawn now: enabled and standard error is a terminal."""
    stream = sys.stderr
    return _bars_enabled and bool(getattr(stream, "isatty", lambda: False)())


def format_seconds(seconds: float) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05`` (tqdm's style, so bars and log lines read alike)."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """A tqdm-like counter (``update``, ``set_postfix``, ``close``, iteration) that logs lines off a terminal.

    ``enabled=False`` silences it entirely (the caller's own switch, e.g. a small job); ``level``
    is the logging level of the lines (DEBUG keeps them in the log file only).
    """

    def __init__(self, iterable: Iterable[T] | None = None, *, desc: str = "", total: int | None = None,
                 unit: str = "it", initial: int = 0, interval: float = 30.0, enabled: bool = True,
                 level: int = logging.INFO, logger: logging.Logger | None = None, **bar_options: Any) -> None:
        self.iterable = iterable
        self.desc, self.unit, self.interval, self.level = desc, unit, interval, level
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n = self.initial = initial
        self.enabled = enabled
        self.logger = logger or log
        self.postfix = ""
        self.started = time.monotonic()
        self._last_line = self.started
        self._closed = False
        self._bar = None
        if enabled and bars_enabled():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit, initial=initial, leave=False, **bar_options)

    def __iter__(self) -> Iterator[T]:
        assert self.iterable is not None, "Progress(iterable) is needed to iterate"
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix(self, **values: Any) -> None:
        """Shown after the counter (``loss=0.6931``)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())
        if self._bar is not None:
            self._bar.set_postfix(values)

    def update(self, count: int = 1) -> None:
        self.n += count
        if self._bar is not None:
            self._bar.update(count)
        elif self.enabled and time.monotonic() - self._last_line >= self.interval:
            self._line()

    def line(self) -> str:
        """``desc: 3/20 epoch (15%), elapsed 0:12, remaining 1:08, loss=0.69``."""
        elapsed = time.monotonic() - self.started
        done = self.n - self.initial
        parts = [f"{self.desc}: {self.n}" + (f"/{self.total}" if self.total else "") + f" {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        parts.append(f"elapsed {format_seconds(elapsed)}")
        if self.total and done > 0 and self.n < self.total:
            parts.append(f"remaining {format_seconds(elapsed / done * (self.total - self.n))}")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def _line(self) -> None:
        self._last_line = time.monotonic()
        self.logger.log(self.level, "%s", self.line())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.n > self.initial and self.interval > 0:
            self._line()


def progress(iterable: Iterable[T] | None = None, **options: Any) -> Progress:
    """``Progress(iterable, **options)``: the one progress helper every layer uses instead of tqdm."""
    return Progress(iterable, **options)
