"""The one error a bad config produces: which file, which YAML key, what was wrong, what to do.

Every check of ``config/`` (YAML syntax, pydantic validation, registry names, hyperparameters)
ends in a :class:`ConfigError`, never a traceback from deep inside the pipeline. One error may
carry several problems so that a researcher fixes a config in one pass.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from elliot_visual.registry import closest_match

# How many known names an "unknown name" message lists before it abbreviates.
_MAX_LISTED = 40


@dataclass(frozen=True)
class Problem:
    """One fault in a config: ``what`` is wrong ``at`` a YAML key path; ``hint`` says what to do.

    ``at`` is a dotted key path (``experiment.evaluation.simple_metrics[2]``) or ``""`` when the
    file as a whole is at fault (missing, unreadable, not YAML).
    """

    what: str
    at: str = ""
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.what} at {self.at}" if self.at else self.what
        return f"{text}; {self.hint}" if self.hint else text


class ConfigError(ValueError):
    """A config that cannot run; the message names the file and each problem's key path."""

    def __init__(self, problems: Problem | str | Sequence[Problem], file: str | Path | None = None) -> None:
        if isinstance(problems, (Problem, str)):
            problems = [problems if isinstance(problems, Problem) else Problem(problems)]
        self.problems: list[Problem] = list(problems)
        self.file = Path(file) if file is not None else None
        where = f"{self.file}: " if self.file is not None else ""
        if len(self.problems) == 1:
            message = f"{where}{self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"{where}{len(self.problems)} problems in the config:\n{lines}"
        super().__init__(message)


def key_path(*parts: str | int) -> str:
    """``("experiment", "evaluation", "simple_metrics", 2)`` -> ``experiment.evaluation.simple_metrics[2]``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != "":
            text += f".{part}" if text else str(part)
    return text


def listing(names: Iterable[str]) -> str:
    """Known names for a message, comma separated, abbreviated past a screenful."""
    names = list(names)
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _MAX_LISTED else "")


def unknown_name(kind: str, name: object, at: str, known: Sequence[str]) -> Problem:
    """``unknown metric 'Recal' at ...; did you mean 'Recall'? known: ...``."""
    close = closest_match(str(name), list(known)) if isinstance(name, str) else None
    hint = f"did you mean '{close}'? " if close else ""
    return Problem(f"unknown {kind} {name!r}", at, f"{hint}known: {listing(known)}")
