"""The VisDiv tables of ``elliot-visual visdiv`` (saved lists, no retraining), beside Elliot's files.

``performance/visdiv_<stamp>.tsv``: ``model \\t cutoff \\t <VisDiv columns>``, one row per model and
cutoff; ``performance/visdiv_per_user_<stamp>.tsv``: ``model \\t cutoff \\t metric \\t user \\t value``
for every user with a value (for significance tests, and to pick users to draw). Values are
printed as Elliot's tables print them (:func:`~elliot_visual.reports.numbers.format_number`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from elliot_visual.reports.numbers import format_number
from elliot_visual.storage import ResultPaths, write_text

# model -> cutoff -> column -> value, and model -> cutoff -> column -> {public user id: value}
Values = Mapping[str, Mapping[int, Mapping[str, float]]]
PerUserValues = Mapping[str, Mapping[int, Mapping[str, Mapping[str, float]]]]


def write_visdiv_tables(paths: ResultPaths, stamp: str, columns: Sequence[str], values: Values,
                        per_user: PerUserValues) -> tuple[Path, Path]:
    """The values table and the per-user table; returns their paths."""
    lines = ["\t".join(["model", "cutoff", *columns])]
    for model, by_k in values.items():
        for k, row in by_k.items():
            lines.append("\t".join([model, str(k), *(format_number(row.get(c)) for c in columns)]))
    table = write_text(paths.performance / f"visdiv_{stamp}.tsv", "\n".join(lines) + "\n")
    rows = "".join(f"{model}\t{k}\t{column}\t{user}\t{float(value)!r}\n"
                   for model, by_k in per_user.items() for k, by_column in by_k.items()
                   for column, by_user in by_column.items() for user, value in by_user.items())
    per_user_file = write_text(paths.performance / f"visdiv_per_user_{stamp}.tsv",
                               "model\tcutoff\tmetric\tuser\tvalue\n" + rows)
    return table, per_user_file
