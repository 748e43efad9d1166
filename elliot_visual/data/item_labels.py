"""Writing item label files: ``item<TAB>label|label|...``, one line per item, the multi-label targets.

Written by ``prepare amazon`` (item categories, D = categories with enough items) and by the
synthetic category generator; read by the ``ItemLabels`` feature loader and, with a header, as
the metadata of multi-label fine-tuning. An empty label field means the item has none of the labels.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from elliot_visual.storage import atomic_write

LABEL_SEPARATOR = "|"


def clean_label(name: str) -> str:
    """A label as it can be written: no tab, line break or separator inside, spaces collapsed."""
    return " ".join(name.replace(LABEL_SEPARATOR, "/").split())


def write_item_labels(path: str | Path, rows: Iterable[tuple[str, Sequence[str]]],
                      header: tuple[str, str] | None = None) -> int:
    """Write ``(item, labels)`` rows atomically; returns the number of item lines.

    ``header`` (e.g. ``("item", "categories")``) makes the file a metadata TSV that fine-tuning reads.
    """
    count = 0
    with atomic_write(Path(path), "w") as handle:
        if header is not None:
            handle.write("\t".join(header) + "\n")
        for item, labels in rows:
            handle.write(f"{item}\t{LABEL_SEPARATOR.join(clean_label(n) for n in labels)}\n")
            count += 1
    return count
