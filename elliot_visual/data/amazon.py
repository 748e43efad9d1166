"""Prepare McAuley's Amazon files as a dataset folder the configs read.

Input, as published (McAuley et al., SIGIR 2015; He & McAuley, WWW 2016; Ni et al., EMNLP 2019):

* reviews, one record per line, plain or gzipped: strict JSON (``reviews_<Category>.json.gz``)
  or the Python-literal lines of the older dumps (read with :func:`ast.literal_eval`, never
  ``eval``); fields ``reviewerID``, ``asin``, ``overall``, ``unixReviewTime``;
* or a ratings-only table ``user, item, rating[, timestamp]`` (``ratings_<Category>.csv``, or a
  TSV such as Ducho's ``reviews.tsv``);
* metadata lines (``asin``, ``imUrl``, ``categories``, ``title``, ``price``; the 2018 names
  ``imageURLHighRes``/``imageURL`` and ``category`` are understood too);
* an image-URL table (``itemID,asin,imUrl`` with header, or ``asin,url``);
* the binary CNN features ``image_features_<Category>.b``: records of a 10-byte ASIN followed by
  4096 little-endian float32 (:func:`iter_amazon_binary_features`).

Output, under ``<output_folder>/<name>/`` and written atomically: ``dataset.tsv`` (headerless
``user, item, rating[, timestamp]``), ``items.tsv`` (header; title, price, categories and the
top/sub/leaf category columns DeepStyle and multitask fine-tuning read), ``images/<item>.<ext>``,
``image_features.b`` (the binary file restricted to the dataset's items), ``malformed_lines.tsv``
and ``card.json`` (users, items, interactions, density, time span, per-category counts). With
``labels``: ``item_labels.tsv`` (``item \t label|label``, the categories held by enough items, see
:func:`category_labels`) and, with ``labels.finetune_users``, the aggregation paper's user cut:
``finetune_items.tsv`` (header ``item, categories``: the labelled items of the fine-tuning users,
the ``metadata`` of ``elliot-visual finetune`` with a ``multilabel`` task on ``categories``) and
``dataset_aggregation.tsv`` (the rows of the other users, for the set networks).

The filters the papers apply (rating threshold, date range, category subset, items without an
image, iterative k-core) are options of :class:`~elliot_visual.config.prepare.PrepareConfig`,
applied in that order; k-core is Elliot's ``iterative_k_core`` prefilter, looked up in ``PREFILTERS``.
"""
from __future__ import annotations

import ast
import csv
import datetime as _dt
import gzip
import io
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
from elliot_visual.progress import progress as progress_bar

from elliot_visual.config.prepare import OnError, PrepareConfig, Sources
from elliot_visual.data.download import DownloadOptions, DownloadReport, download_images
from elliot_visual.data.item_labels import write_item_labels
from elliot_visual.data.readers import DataError
from elliot_visual.data.user_partition import partition_users
from elliot_visual.registry import PREFILTERS
from elliot_visual.storage import atomic_write, write_json

log = logging.getLogger(__name__)

FEATURE_DIM = 4096          # He & McAuley's Caffe fc7 features
ASIN_BYTES = 10
CATEGORY_SEPARATOR = " > "  # between levels of one category path ("A > B" in filters and items.tsv)
PATH_SEPARATOR = " | "      # between the several paths of one item in items.tsv
MAX_LINE_BYTES = 4_000_000  # longer lines are reported as malformed rather than parsed


# --------------------------------------------------------------------------- malformed lines

class MalformedLineError(DataError):
    """A raw line that cannot be read, raised when ``on_error: fail``."""


@dataclass(frozen=True)
class MalformedLine:
    """One skipped line: the file, its 1-based line number and why it was rejected."""

    file: str
    line: int
    reason: str


@dataclass
class LineIssues:
    """Collects malformed lines, or raises on the first one when ``on_error`` is ``fail``."""

    on_error: OnError = "skip"
    lines: list[MalformedLine] = field(default_factory=list)

    def report(self, path: Path, line: int, reason: str) -> None:
        """Record (skip) or raise (fail) one malformed line of ``path``."""
        if self.on_error == "fail":
            raise MalformedLineError(f"{path}, line {line}: {reason}. Fix the line or set on_error: skip")
        if len(self.lines) < 5:
            log.warning("%s, line %d: %s (skipped)", path, line, reason)
        self.lines.append(MalformedLine(str(path), line, reason))

    def counts(self) -> dict[str, int]:
        """Skipped lines per file."""
        return dict(Counter(m.file for m in self.lines))


class _Malformed(Exception):
    """Internal: the reason a line is rejected."""


# --------------------------------------------------------------------------- raw file readers

def open_binary(path: str | Path) -> IO[bytes]:
    """Open ``path`` for reading bytes, transparently gunzipping (detected by magic bytes, not name)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open("rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else path.open("rb")


def iter_lines(path: Path, issues: LineIssues, progress: bool = False,
               desc: str | None = None) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line; undecodable or oversized lines are reported."""
    with open_binary(path) as handle:
        for number, raw in enumerate(progress_bar(handle, desc=desc or path.name, unit=" lines",
                                          enabled=progress), start=1):
            if len(raw) > MAX_LINE_BYTES:
                issues.report(path, number, f"line longer than {MAX_LINE_BYTES} bytes")
                continue
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError as err:
                issues.report(path, number, f"not UTF-8 ({err.reason} at byte {err.start})")
                continue
            if text:
                yield number, text


def parse_record(text: str) -> dict:
    """One McAuley line as a dict: strict JSON, else a Python literal (``ast.literal_eval``, safe)."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        try:
            record = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as err:
            raise _Malformed(f"neither JSON nor a Python literal ({type(err).__name__})") from None
    if not isinstance(record, dict):
        raise _Malformed(f"expected a record {{...}}, found {type(record).__name__}")
    return record


def read_reviews(path: str | Path, issues: LineIssues | None = None,
                 progress: bool = False) -> pd.DataFrame:
    """McAuley reviews (JSON or Python-literal lines, plain or gzipped) as ``user, item, rating, timestamp``.

    Rows keep file order; ids are strings, ratings float64, timestamps int64 unix seconds.
    """
    path, issues = Path(path), issues or LineIssues("fail")
    users, items, ratings, times = [], [], [], []
    for number, text in iter_lines(path, issues, progress, "reviews"):
        try:
            record = parse_record(text)
            user, item = _text_field(record, "reviewerID"), _text_field(record, "asin")
            rating = _number_field(record, "overall")
            stamp = _number_field(record, "unixReviewTime")
            if stamp != int(stamp):
                raise _Malformed(f"unixReviewTime {stamp!r} is not whole seconds")
        except _Malformed as err:
            issues.report(path, number, str(err))
            continue
        users.append(user)
        items.append(item)
        ratings.append(rating)
        times.append(int(stamp))
    return _frame(users, items, ratings, times)


def read_ratings(path: str | Path, issues: LineIssues | None = None,
                 progress: bool = False) -> pd.DataFrame:
    """A ratings-only table ``user, item, rating[, timestamp]`` (tab or comma separated, plain or gzipped).

    McAuley's ``ratings_<Category>.csv`` and Ducho's ``reviews.tsv`` are headerless; a first line
    naming the columns (``rating``/``overall`` in third place) is skipped as a header. The
    column count is fixed by the first data line; a line with another count is malformed.
    """
    path, issues = Path(path), issues or LineIssues("fail")
    users, items, ratings, times = [], [], [], []
    separator, width = None, None
    for number, text in iter_lines(path, issues, progress, "ratings"):
        if separator is None:
            separator = "\t" if "\t" in text else ","
        fields = [f.strip() for f in text.split(separator)]
        if width is None:
            if len(fields) >= 3 and fields[2].lower() in ("rating", "ratings", "overall", "score"):
                continue
            if len(fields) not in (3, 4):
                issues.report(path, number, f"expected user, item, rating[, timestamp], found {len(fields)} fields")
                continue
            width = len(fields)
        try:
            if len(fields) != width:
                raise _Malformed(f"expected {width} fields like the first data line, found {len(fields)}")
            if not fields[0] or not fields[1]:
                raise _Malformed("empty user or item id")
            rating = _as_number(fields[2], "rating")
            stamp = _as_number(fields[3], "timestamp") if width == 4 else None
            if stamp is not None and stamp != int(stamp):
                raise _Malformed(f"timestamp {fields[3]!r} is not whole seconds")
        except _Malformed as err:
            issues.report(path, number, str(err))
            continue
        users.append(fields[0])
        items.append(fields[1])
        ratings.append(rating)
        if stamp is not None:
            times.append(int(stamp))
    return _frame(users, items, ratings, times if width == 4 else None)


@dataclass(frozen=True)
class ItemMeta:
    """What the metadata says about one item; ``categories`` holds paths from top level to leaf."""

    asin: str
    title: str = ""
    price: float | None = None
    categories: tuple[tuple[str, ...], ...] = ()
    image_url: str = ""


_ASIN_PATTERN = re.compile(r"""['"]asin['"]\s*:\s*['"]([^'"]+)['"]""")


def read_metadata(path: str | Path, keep: set[str] | None = None, issues: LineIssues | None = None,
                  progress: bool = False) -> dict[str, ItemMeta]:
    """McAuley metadata lines (JSON or Python literals) as ``asin -> ItemMeta``, for ``keep`` items only.

    With ``keep``, a line whose ASIN (found by a quick pattern) is not wanted is not parsed, which
    makes reading a multi-million-line category dump for a small dataset fast; such lines are
    therefore not checked for malformation.
    """
    path, issues = Path(path), issues or LineIssues("fail")
    found: dict[str, ItemMeta] = {}
    for number, text in iter_lines(path, issues, progress, "metadata"):
        if keep is not None:
            quick = _ASIN_PATTERN.search(text)
            if quick and quick.group(1) not in keep:
                continue
        try:
            record = parse_record(text)
            asin = _text_field(record, "asin")
        except _Malformed as err:
            issues.report(path, number, str(err))
            continue
        if keep is None or asin in keep:
            found[asin] = _item_meta(asin, record)
    return found


def read_image_urls(path: str | Path, issues: LineIssues | None = None) -> dict[str, str]:
    """An image-URL table as ``asin -> url``.

    With a header, the ASIN column is ``asin`` (else ``item``/``itemID``) and the URL column
    ``imUrl``/``url``/``image_url``/``imageURL`` (case-insensitive), like MMRec's
    ``itemID,asin,imUrl``. Without a header the rows are ``asin, url``.
    """
    path, issues = Path(path), issues or LineIssues("fail")
    urls: dict[str, str] = {}
    lines = list(iter_lines(path, issues))
    if not lines:
        raise DataError(f"{path}: no rows; expected a table asin, imUrl")
    separator = "\t" if "\t" in lines[0][1] else ","
    rows = [(number, next(csv.reader([text], delimiter=separator))) for number, text in lines]
    asin_col, url_col, start = 0, 1, 0
    header = [name.strip().lower() for name in rows[0][1]]
    if not any(name.startswith(("http://", "https://")) for name in header):
        asin_col = _column(header, ("asin", "item", "itemid", "item_id"), path)
        url_col = _column(header, ("imurl", "url", "image_url", "imageurl", "image"), path)
        start = 1
    for number, row in rows[start:]:
        if len(row) <= max(asin_col, url_col) or not row[asin_col].strip():
            issues.report(path, number, f"expected an ASIN in column {asin_col + 1} and a URL "
                                        f"in column {url_col + 1}, found {len(row)} fields")
            continue
        url = row[url_col].strip()
        if url:
            urls[row[asin_col].strip()] = url
    return urls


def iter_amazon_binary_features(path: str | Path, keep: set[str] | None = None,
                                dim: int = FEATURE_DIM) -> Iterator[tuple[str, np.ndarray]]:
    """Stream ``image_features_<Category>.b``: (ASIN, (dim,) float32) for the ASINs in ``keep`` (all if None).

    Each record is a 10-byte ASCII ASIN then ``dim`` little-endian float32 (He & McAuley 2016).
    Unwanted records are skipped with a seek, so scanning a multi-gigabyte file for a few
    thousand items reads only their bytes; the scan stops once every wanted ASIN was seen.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    vector_bytes = 4 * dim
    size = path.stat().st_size
    remaining = None if keep is None else set(keep)
    with path.open("rb") as handle:
        for offset in range(0, size, ASIN_BYTES + vector_bytes):
            if remaining is not None and not remaining:
                return
            if offset + ASIN_BYTES + vector_bytes > size:
                raise DataError(f"{path}: the record at byte {offset} is truncated (a record is a "
                                f"{ASIN_BYTES}-byte ASIN then {dim} float32); the file is incomplete")
            asin = handle.read(ASIN_BYTES).decode("ascii", errors="replace").strip("\x00 ")
            if remaining is not None and asin not in remaining:
                handle.seek(vector_bytes, io.SEEK_CUR)
                continue
            if remaining is not None:
                remaining.discard(asin)
            yield asin, np.frombuffer(handle.read(vector_bytes), dtype="<f4").astype(np.float32)


def amazon_binary_asins(path: str | Path, dim: int = FEATURE_DIM) -> set[str]:
    """Every ASIN in a binary feature file, read without loading the vectors."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    record = ASIN_BYTES + 4 * dim
    size = path.stat().st_size
    if size % record:
        raise DataError(f"{path}: size {size} is not a multiple of the {record}-byte record "
                        f"({ASIN_BYTES}-byte ASIN + {dim} float32); the file is incomplete")
    found = set()
    with path.open("rb") as handle:
        for start in range(0, size, record):
            handle.seek(start)
            found.add(handle.read(ASIN_BYTES).decode("ascii", errors="replace").strip("\x00 "))
    return found


def write_amazon_binary_features(path: str | Path, records: Iterable[tuple[str, np.ndarray]]) -> int:
    """Write (ASIN, vector) records in the binary format atomically; returns how many were written."""
    count = 0
    with atomic_write(path, "wb") as handle:
        for asin, vector in records:
            encoded = asin.encode("ascii")
            if len(encoded) > ASIN_BYTES:
                raise DataError(f"item id {asin!r} is longer than {ASIN_BYTES} bytes; the binary format holds ASINs")
            handle.write(encoded.ljust(ASIN_BYTES))
            handle.write(np.asarray(vector, dtype="<f4").tobytes())
            count += 1
    return count


# --------------------------------------------------------------------------- filters

@dataclass(frozen=True)
class FilterStep:
    """The dataset's size after one preparation step."""

    step: str
    interactions: int
    users: int
    items: int


def deduplicate(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item): the latest by timestamp, ties and untimed files by the later line."""
    order = frame.assign(_row=np.arange(len(frame)))
    if "timestamp" in order:
        order = order.sort_values(["timestamp", "_row"], kind="stable")
    kept = order.drop_duplicates(["user", "item"], keep="last").sort_values("_row")
    return kept.drop(columns="_row").reset_index(drop=True)


def filter_min_rating(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Rows with ``rating >= threshold``."""
    return frame[frame["rating"] >= threshold].reset_index(drop=True)


def filter_dates(frame: pd.DataFrame, start: _dt.date | None, end: _dt.date | None) -> pd.DataFrame:
    """Rows reviewed on days ``start`` .. ``end`` inclusive (UTC, as McAuley's day-resolution times)."""
    if "timestamp" not in frame:
        raise DataError("start_date / end_date need timestamps, but the interaction file has none")
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= frame["timestamp"].to_numpy() >= _epoch(start)
    if end is not None:
        keep &= frame["timestamp"].to_numpy() < _epoch(end + _dt.timedelta(days=1))
    return frame[keep].reset_index(drop=True)


def item_in_categories(paths: tuple[tuple[str, ...], ...], wanted: list[str]) -> bool:
    """Whether any of an item's category paths matches any wanted category.

    ``"Girls"`` matches that name at any level; ``"Clothing, Shoes & Jewelry > Girls"`` matches
    paths starting with those levels. Comparison ignores case.
    """
    lowered = [tuple(level.lower() for level in path) for path in paths]
    for entry in wanted:
        levels = tuple(part.strip().lower() for part in entry.split(CATEGORY_SEPARATOR.strip()))
        for path in lowered:
            if (len(levels) == 1 and levels[0] in path) or (len(levels) > 1 and path[:len(levels)] == levels):
                return True
    return False


def filter_items(frame: pd.DataFrame, keep: set[str]) -> pd.DataFrame:
    """Rows whose item is in ``keep``."""
    return frame[frame["item"].isin(keep)].reset_index(drop=True)


def iterative_k_core(frame: pd.DataFrame, core: int) -> pd.DataFrame:
    """Users and items with at least ``core`` rows each, repeated to a fixed point (Elliot's ``iterative_k_core``)."""
    strategy = PREFILTERS.get("iterative_k_core")
    return strategy(frame, core=core).reset_index(drop=True)


# --------------------------------------------------------------------------- the dataset card

@dataclass
class DatasetCard:
    """Summary of a prepared dataset, written as ``card.json`` and printed by the command."""

    name: str
    users: int
    items: int
    interactions: int
    density: float
    first_day: str | None
    last_day: str | None
    span_days: int | None
    ratings: dict[str, int]
    items_with_metadata: int
    items_with_image_url: int
    items_with_features: int | None
    items_with_image_file: int | None
    images_failed: int | None
    top_categories: dict[str, dict[str, int]]
    leaf_categories: dict[str, dict[str, int]]
    malformed_lines: dict[str, int]
    duplicates_removed: int
    steps: list[FilterStep]
    sources: dict[str, str | None]
    filters: dict
    labels: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready content."""
        return asdict(self)

    def to_text(self, top: int = 10) -> str:
        """A short human-readable rendering (the command prints it)."""
        lines = [f"dataset {self.name}",
                 f"  users {self.users:,}  items {self.items:,}  interactions {self.interactions:,}  "
                 f"density {self.density:.6f}"]
        if self.first_day:
            lines.append(f"  time span {self.first_day} .. {self.last_day} ({self.span_days:,} days)")
        lines.append("  ratings " + ", ".join(f"{k}: {v:,}" for k, v in self.ratings.items()))
        images = [f"metadata {self.items_with_metadata:,}", f"image URL {self.items_with_image_url:,}"]
        if self.items_with_features is not None:
            images.append(f"features {self.items_with_features:,}")
        if self.items_with_image_file is not None:
            images.append(f"image file {self.items_with_image_file:,} (failed {self.images_failed:,})")
        lines.append("  items with " + ", ".join(images))
        if self.malformed_lines:
            lines.append("  malformed lines skipped " + ", ".join(
                f"{Path(f).name}: {n:,}" for f, n in self.malformed_lines.items()))
        if self.duplicates_removed:
            lines.append(f"  duplicate (user, item) rows removed {self.duplicates_removed:,}")
        lines.append("  steps " + " -> ".join(f"{s.step} {s.interactions:,}" for s in self.steps))
        if self.labels:
            lines.append(f"  labels {self.labels['n_labels']:,} categories with >= {self.labels['min_items']:,} "
                         f"items; {self.labels['items_with_labels']:,} items labelled")
        for title, table in (("top categories", self.top_categories), ("leaf categories", self.leaf_categories)):
            if table:
                shown = list(table.items())[:top]
                more = f" (+{len(table) - top} more)" if len(table) > top else ""
                lines.append(f"  {title}{more}: " + ", ".join(
                    f"{name} {c['items']:,} items/{c['interactions']:,} rows" for name, c in shown))
        return "\n".join(lines)


def dataset_card(name: str, frame: pd.DataFrame, meta: dict[str, ItemMeta], urls: dict[str, str],
                 steps: list[FilterStep], issues: LineIssues, duplicates_removed: int,
                 features: set[str] | None = None, images: DownloadReport | None = None,
                 sources: dict[str, str | None] | None = None, filters: dict | None = None) -> DatasetCard:
    """The card of the final ``frame`` (density = interactions / (users * items))."""
    users, items = frame["user"].nunique(), frame["item"].nunique()
    item_set = set(frame["item"].unique())
    first = last = span = None
    if "timestamp" in frame and len(frame):
        low, high = int(frame["timestamp"].min()), int(frame["timestamp"].max())
        first, last = _day(low).isoformat(), _day(high).isoformat()
        span = (_day(high) - _day(low)).days + 1
    ratings = {_rating_label(r): int(n) for r, n in sorted(Counter(frame["rating"].tolist()).items())}
    per_item = frame["item"].value_counts()
    top, leaf = Counter(), Counter()
    top_rows, leaf_rows = Counter(), Counter()
    for item, rows in per_item.items():
        info = meta.get(item)
        if info is None or not info.categories:
            continue
        path = info.categories[0]
        top[path[0]] += 1
        top_rows[path[0]] += int(rows)
        leaf[path[-1]] += 1
        leaf_rows[path[-1]] += int(rows)
    return DatasetCard(
        name=name, users=int(users), items=int(items), interactions=int(len(frame)),
        density=float(len(frame) / (users * items)) if users and items else 0.0,
        first_day=first, last_day=last, span_days=span, ratings=ratings,
        items_with_metadata=len(item_set & meta.keys()),
        items_with_image_url=len(item_set & urls.keys()),
        items_with_features=None if features is None else len(item_set & features),
        items_with_image_file=None if images is None else len(item_set & images.paths().keys()),
        images_failed=None if images is None else len(images.failed),
        top_categories=_category_table(top, top_rows), leaf_categories=_category_table(leaf, leaf_rows),
        malformed_lines=issues.counts(), duplicates_removed=duplicates_removed, steps=steps,
        sources=sources or {}, filters=filters or {})


# --------------------------------------------------------------------------- the whole preparation

@dataclass
class PreparedDataset:
    """Where a prepared dataset lies, and its card."""

    folder: Path
    card: DatasetCard
    images: DownloadReport | None = None


def prepare_amazon(config: PrepareConfig) -> PreparedDataset:
    """Read the raw files, filter, write the dataset folder and its card (see the module docstring)."""
    src, flt = config.sources, config.filters
    check_sources_exist(src)
    issues = LineIssues(config.on_error)
    if src.reviews is not None:
        frame = read_reviews(src.reviews, issues, config.progress)
    else:
        frame = read_ratings(src.ratings, issues, config.progress)
    if frame.empty:
        raise DataError(f"{src.reviews or src.ratings}: no readable interactions")
    steps = [_step("read", frame)]
    if flt.categories is not None and src.meta is None:
        raise DataError("filters.categories needs the metadata file (sources.meta / --meta)")
    meta = read_metadata(src.meta, set(frame["item"].unique()), issues, config.progress) if src.meta else {}
    urls = {asin: m.image_url for asin, m in meta.items() if m.image_url}
    if src.image_urls is not None:
        urls.update(read_image_urls(src.image_urls, issues))
    features = amazon_binary_asins(src.image_features) if src.image_features else None

    read_rows = len(frame)
    if flt.deduplicate:
        frame = deduplicate(frame)
        steps.append(_step("deduplicate", frame))
    duplicates_removed = read_rows - len(frame)
    if flt.min_rating is not None:
        frame = filter_min_rating(frame, flt.min_rating)
        steps.append(_step(f"rating>={flt.min_rating:g}", frame))
    if flt.start_date or flt.end_date:
        frame = filter_dates(frame, flt.start_date, flt.end_date)
        steps.append(_step("dates", frame))
    if flt.categories is not None:
        wanted = [c for c in flt.categories if c.strip()]
        frame = filter_items(frame, {i for i, m in meta.items() if item_in_categories(m.categories, wanted)})
        steps.append(_step("categories", frame))
    if flt.drop_items_without_image:
        with_image = _items_with_image(urls, features, src)
        frame = filter_items(frame, with_image)
        steps.append(_step("with image", frame))
    if flt.k_core is not None:
        frame = iterative_k_core(frame, flt.k_core)
        steps.append(_step(f"{flt.k_core}-core", frame))

    folder = config.folder
    images: DownloadReport | None = None
    if config.images.download and not frame.empty:
        images = _download(frame, urls, folder / "images", config)
        if flt.drop_items_without_image and images.failed:
            frame = _drop_failed_images(frame, images, flt.k_core)
            steps.append(_step("image downloaded", frame))
    if frame.empty:
        trail = " -> ".join(f"{s.step} {s.interactions}" for s in steps)
        raise DataError(f"no interactions left after filtering ({trail}); relax the filters")

    _write_dataset(folder / "dataset.tsv", frame)
    _write_items(folder / "items.tsv", list(pd.unique(frame["item"])), meta, urls)
    _write_malformed(folder / "malformed_lines.tsv", issues)
    if src.image_features is not None:
        kept = set(frame["item"].unique())
        count = write_amazon_binary_features(folder / "image_features.b",
                                             iter_amazon_binary_features(src.image_features, kept))
        log.info("wrote features of %d items to %s", count, folder / "image_features.b")
    card = dataset_card(config.name, frame, meta, urls, steps, issues, duplicates_removed, features, images,
                        sources={k: None if v is None else str(v) for k, v in src.model_dump().items()},
                        filters=flt.model_dump(mode="json"))
    if config.labels is not None:
        card.labels = _write_labels(folder, frame, meta, config)
    write_json(folder / "card.json", card.to_dict())
    return PreparedDataset(folder, card, images)


# --------------------------------------------------------------------------- category labels

def category_labels(items: Iterable[str], meta: dict[str, ItemMeta], min_items: int,
                    skip_top_level: bool = True) -> dict[str, list[str]]:
    """``item -> labels``: the category-tree nodes (named by their path ``A > B``) held by >= ``min_items`` items.

    Every prefix of every path of an item is a node it holds, so ``Kitchen & Dining > Bakeware``
    implies ``Kitchen & Dining``; ``skip_top_level`` leaves out level-1 nodes (``Home & Kitchen``
    holds every item of its dump and says nothing). Items keep their labels in sorted order.
    """
    held: dict[str, set[str]] = {}
    for item in items:
        info = meta.get(item)
        nodes = set()
        for path in info.categories if info is not None else ():
            for depth in range(2 if skip_top_level else 1, len(path) + 1):
                nodes.add(CATEGORY_SEPARATOR.join(path[:depth]))
        held[item] = nodes
    counts = Counter(node for nodes in held.values() for node in nodes)
    kept = {node for node, n in counts.items() if n >= min_items}
    return {item: sorted(nodes & kept) for item, nodes in held.items()}


def _write_labels(folder: Path, frame: pd.DataFrame, meta: dict[str, ItemMeta], config: PrepareConfig) -> dict:
    """Write the label files of the module docstring; returns the card's ``labels`` section."""
    options = config.labels
    items = list(pd.unique(frame["item"]))
    labels = category_labels(items, meta, options.min_items, options.skip_top_level)
    names = sorted({n for row in labels.values() for n in row})
    if not names:
        raise DataError(f"no category is held by {options.min_items} items or more (labels.min_items); "
                        "lower it, or give the metadata file (sources.meta) that carries the categories")
    write_item_labels(folder / "item_labels.tsv", ((item, labels[item]) for item in items))
    section = {"min_items": options.min_items, "skip_top_level": options.skip_top_level, "n_labels": len(names),
               "items_with_labels": sum(1 for row in labels.values() if row),
               "label_items": dict(Counter(n for row in labels.values() for n in row).most_common())}
    if options.finetune_users > 0:
        tuning, rest = partition_users(frame["user"].to_numpy(), [options.finetune_users], options.seed)
        tuning_items = pd.unique(frame.loc[frame["user"].isin(set(tuning)), "item"])
        count = write_item_labels(folder / "finetune_items.tsv",
                                  ((item, labels[item]) for item in tuning_items if labels[item]),
                                  header=("item", "categories"))
        _write_dataset(folder / "dataset_aggregation.tsv", frame[frame["user"].isin(set(rest))])
        section.update(finetune_users=int(tuning.size), finetune_items=count, aggregation_users=int(rest.size),
                       seed=options.seed)
    return section


# --------------------------------------------------------------------------- helpers

RAW_DATA_HINT = ("McAuley's Amazon product data (2014) is distributed by the McAuley lab, UCSD "
                 "(https://jmcauley.ucsd.edu/data/amazon/links.html, research use): download the category's "
                 "reviews (reviews_<Category>.json.gz or its 5-core), metadata (meta_<Category>.json.gz) and, "
                 "optionally, image features (image_features_<Category>.b), and put them at the paths above "
                 "(or change sources: in the prepare config)")


def check_sources_exist(src: Sources) -> None:
    """Stop before any reading when a raw file is missing: every missing path, and where to get it."""
    given = {"reviews": src.reviews, "ratings": src.ratings, "meta": src.meta, "image_urls": src.image_urls,
             "image_features": src.image_features}
    missing = [f"sources.{key}: {path}" for key, path in given.items() if path is not None and not Path(path).is_file()]
    if missing:
        raise DataError("raw data missing:\n  " + "\n  ".join(missing) + "\n" + RAW_DATA_HINT)


def _frame(users: list[str], items: list[str], ratings: list[float], times: list[int] | None) -> pd.DataFrame:
    data = {"user": pd.Series(users, dtype=object), "item": pd.Series(items, dtype=object),
            "rating": np.asarray(ratings, dtype=np.float64)}
    if times is not None:
        data["timestamp"] = np.asarray(times, dtype=np.int64)
    return pd.DataFrame(data)


def _text_field(record: dict, key: str) -> str:
    value = record.get(key)
    if value is None:
        raise _Malformed(f"missing key '{key}'")
    if not isinstance(value, (str, int)) or isinstance(value, bool) or not str(value).strip():
        raise _Malformed(f"'{key}' is {value!r}, expected a non-empty id")
    text = str(value).strip()
    if any(c in text for c in "\t\r\n"):
        raise _Malformed(f"'{key}' {value!r} contains a tab or line break")
    return text


def _number_field(record: dict, key: str) -> float:
    if key not in record:
        raise _Malformed(f"missing key '{key}'")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Malformed(f"'{key}' is {value!r}, expected a number")
    return _as_number(value, key)


def _as_number(value: object, key: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _Malformed(f"{key} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise _Malformed(f"{key} {value!r} is not finite")
    return number


def _item_meta(asin: str, record: dict) -> ItemMeta:
    """Normalise the 2014 (``imUrl``, ``categories``) and 2018 (``imageURL*``, ``category``) field names."""
    url = record.get("imUrl")
    if not url:
        for key in ("imageURLHighRes", "imageURL"):
            listed = record.get(key)
            if isinstance(listed, list) and listed:
                url = listed[0]
                break
    raw_paths = record.get("categories")
    if raw_paths is None and isinstance(record.get("category"), list):
        raw_paths = [record["category"]]
    paths = []
    for raw in raw_paths if isinstance(raw_paths, list) else []:
        if isinstance(raw, list):
            levels = tuple(" ".join(str(level).split()) for level in raw if str(level).strip())
            if levels:
                paths.append(levels)
    return ItemMeta(asin=asin, title=" ".join(str(record.get("title") or "").split()),
                    price=_price(record.get("price")), categories=tuple(paths),
                    image_url=str(url).strip() if isinstance(url, str) else "")


def _price(value: object) -> float | None:
    """2014 prices are numbers; 2018 prices are text such as ``$12.99`` (ranges and blanks give None)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        match = re.fullmatch(r"\s*\$?\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*", value)
        if match:
            return float(match.group(1).replace(",", ""))
    return None


def _column(header: list[str], names: tuple[str, ...], path: Path) -> int:
    for name in names:
        if name in header:
            return header.index(name)
    raise DataError(f"{path}: header {header} has none of the columns {', '.join(names)}; expected "
                    "a header like 'itemID,asin,imUrl' or headerless rows 'asin,url'")


def _items_with_image(urls: dict[str, str], features: set[str] | None, src: Sources) -> set[str]:
    """Items that have an image: a URL (when URLs are known) and features (when a feature file is given)."""
    if src.meta is None and src.image_urls is None and features is None:
        raise DataError("drop_items_without_image needs metadata with imUrl (--meta), an image-URL "
                        "table (--image-urls) or a binary feature file (--image-features)")
    have: set[str] | None = None
    if src.meta is not None or src.image_urls is not None:
        have = set(urls)
    if features is not None:
        have = features if have is None else have & features
    return have


def _download(frame: pd.DataFrame, urls: dict[str, str], folder: Path, config: PrepareConfig) -> DownloadReport:
    wanted = {item: urls[item] for item in pd.unique(frame["item"]) if item in urls}
    options = DownloadOptions(workers=config.images.workers, timeout=config.images.timeout,
                              retries=config.images.retries, backoff=config.images.backoff,
                              progress=config.progress)
    return download_images(wanted, folder, options)


def _drop_failed_images(frame: pd.DataFrame, images: DownloadReport, core: int | None) -> pd.DataFrame:
    """Remove items whose download failed; re-apply the k-core, and delete images it made orphans."""
    have = images.paths()
    reduced = filter_items(frame, set(have))
    if core is not None:
        reduced = iterative_k_core(reduced, core)
    kept = set(reduced["item"].unique())
    for item, path in have.items():
        if item not in kept:
            path.unlink(missing_ok=True)
    return reduced


def _write_dataset(path: Path, frame: pd.DataFrame) -> None:
    """Headerless ``user \\t item \\t rating [\\t timestamp]`` (Elliot's dataset file)."""
    with atomic_write(path, "w") as handle:
        columns = [frame["user"], frame["item"], frame["rating"].astype(str)]
        if "timestamp" in frame:
            columns.append(frame["timestamp"].astype(str))
        for row in zip(*columns):
            handle.write("\t".join(row) + "\n")


ITEM_COLUMNS = ("item", "title", "price", "categories", "top_category", "sub_category",
                "leaf_category", "image_url")


def item_table(items: list[str], meta: dict[str, ItemMeta], urls: dict[str, str]) -> list[list[str]]:
    """Rows of ``items.tsv`` (see :data:`ITEM_COLUMNS`): the categories of an item's first path give
    its top (level 1), sub (level 2) and leaf (last level) category."""
    rows = []
    for item in items:
        info = meta.get(item, ItemMeta(item))
        first = info.categories[0] if info.categories else ()
        rows.append([item, info.title, "" if info.price is None else f"{info.price:g}",
                     PATH_SEPARATOR.join(CATEGORY_SEPARATOR.join(p) for p in info.categories),
                     first[0] if first else "", first[1] if len(first) > 1 else "",
                     first[-1] if first else "", urls.get(item, "")])
    return rows


def _write_items(path: Path, items: list[str], meta: dict[str, ItemMeta], urls: dict[str, str]) -> None:
    """``items.tsv`` with header; tabs and line breaks inside values are turned into spaces."""
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(ITEM_COLUMNS)
        for row in item_table(items, meta, urls):
            writer.writerow([" ".join(value.split()) for value in row])


def _write_malformed(path: Path, issues: LineIssues) -> None:
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["file", "line", "reason"])
        for issue in issues.lines:
            writer.writerow([issue.file, issue.line, issue.reason])


def _step(name: str, frame: pd.DataFrame) -> FilterStep:
    return FilterStep(name, len(frame), int(frame["user"].nunique()), int(frame["item"].nunique()))


def _epoch(day: _dt.date) -> int:
    return int(_dt.datetime(day.year, day.month, day.day, tzinfo=_dt.timezone.utc).timestamp())


def _day(stamp: int) -> _dt.date:
    return _dt.datetime.fromtimestamp(stamp, tz=_dt.timezone.utc).date()


def _rating_label(value: float) -> str:
    return f"{value:g}"


def _category_table(items: Counter, rows: Counter) -> dict[str, dict[str, int]]:
    """``{category: {items, interactions}}``, most items first, ties by name."""
    return {name: {"items": n, "interactions": rows[name]}
            for name, n in sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))}
