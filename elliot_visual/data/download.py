"""Fetch item images from their URLs: concurrent, bounded, resumable, and never fatal.

Amazon's ``imUrl`` links are a decade old: some hosts answer 404, some stall, some return an
HTML page with status 200. A dataset of tens of thousands of items must survive all of that, so
every item ends as ``downloaded``, ``present`` (a valid file was already there: the run resumes)
or ``failed`` with the reason written to ``download_report.tsv``; no single item stops the run.

Written on the standard library (``urllib`` in a bounded ``ThreadPoolExecutor``) rather than an
HTTP client package because the needs are small: timeouts, retries with exponential back-off on
transient errors (timeouts, connection errors, 408/429/5xx), a size cap, and a Pillow check that
the body really is an image. Every file lands atomically through :mod:`elliot_visual.storage`.
"""
from __future__ import annotations

import csv
import http.client
import io
import logging
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from PIL import Image
from elliot_visual.progress import progress as progress_bar

from elliot_visual.storage import atomic_write, write_bytes

log = logging.getLogger(__name__)

REPORT_NAME = "download_report.tsv"
# Pillow format name -> file extension written; other formats are rejected as "not an image we use".
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tiff"}
_KNOWN_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
_RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}

Status = Literal["downloaded", "present", "failed"]


@dataclass(frozen=True)
class DownloadOptions:
    """How to fetch: pool size, per-request ``timeout`` (s), ``retries`` after the first try, back-off."""

    workers: int = 8
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.5
    max_bytes: int = 20_000_000
    user_agent: str = "elliot-visual image download"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.backoff < 0:
            raise ValueError(f"backoff must be >= 0 seconds, got {self.backoff}")


@dataclass(frozen=True)
class DownloadResult:
    """What happened to one item's image; ``attempts`` counts HTTP requests made (0 when present)."""

    item: str
    url: str
    status: Status
    path: Path | None = None
    attempts: int = 0
    error: str = ""


@dataclass
class DownloadReport:
    """All outcomes of one :func:`download_images` call, in the order of the input mapping."""

    results: list[DownloadResult] = field(default_factory=list)

    def count(self, status: Status) -> int:
        """How many items ended with ``status``."""
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[DownloadResult]:
        """The items whose image could not be obtained."""
        return [r for r in self.results if r.status == "failed"]

    def paths(self) -> dict[str, Path]:
        """Item id -> image file, for every item that has a valid image now."""
        return {r.item: r.path for r in self.results if r.path is not None}


class _Permanent(Exception):
    """A failure that retrying cannot fix (404, not an image, too large, bad URL)."""


def image_format(data: bytes) -> str | None:
    """Pillow's format name (``JPEG``, ``PNG``...) when ``data`` is a complete image we keep, else None."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format
            image.verify()
    except Exception:  # Pillow raises many types for broken input; all mean "not a usable image"
        return None
    return fmt if fmt in EXTENSIONS else None


def existing_images(folder: Path) -> dict[str, list[Path]]:
    """Image files already in ``folder`` grouped by stem (the item id), read with one directory scan."""
    found: dict[str, list[Path]] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            if path.suffix.lower() in _KNOWN_SUFFIXES and path.is_file():
                found.setdefault(path.stem, []).append(path)
    return found


def download_images(urls: Mapping[str, str], folder: str | Path,
                    options: DownloadOptions = DownloadOptions(),
                    report_path: str | Path | None = None) -> DownloadReport:
    """Fetch ``urls`` (item id -> URL) into ``folder/<item>.<ext>``; write the failures to a TSV report.

    Items with a valid image already in ``folder`` are skipped (the call resumes an interrupted
    one); an invalid leftover is replaced. The report (default ``download_report.tsv`` beside ``folder``, so
    the image folder holds images only and extraction never meets it,
    columns ``item, url, attempts, error``) lists only failures and is rewritten on every call.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    present = existing_images(folder)
    items = list(urls.items())
    by_item: dict[str, DownloadResult] = {}
    with ThreadPoolExecutor(max_workers=options.workers) as pool, \
            progress_bar(total=len(items), desc="images", unit="img", enabled=options.progress) as bar:
        futures = {pool.submit(_fetch_one, item, url, folder, present.get(item, []), options): item
                   for item, url in items}
        for future in as_completed(futures):
            item = futures[future]
            try:
                result = future.result()
            except Exception as err:  # a bug in one item must not lose the other items' results
                result = DownloadResult(item, urls[item], "failed", error=f"{type(err).__name__}: {err}")
            by_item[item] = result
            bar.update(1)
    report = DownloadReport([by_item[item] for item, _ in items])
    target = Path(report_path) if report_path else folder.parent / REPORT_NAME
    write_download_report(report, target)
    if report.failed:
        log.warning("%d of %d images failed; see %s", len(report.failed), len(items), target)
    return report


def write_download_report(report: DownloadReport, path: Path) -> Path:
    """Write the failed items as TSV with header ``item, url, attempts, error``."""
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["item", "url", "attempts", "error"])
        for r in report.failed:
            writer.writerow([r.item, r.url, r.attempts, " ".join(r.error.split())])
    return path


def _fetch_one(item: str, url: str, folder: Path, leftovers: list[Path],
               options: DownloadOptions) -> DownloadResult:
    """Reuse a valid existing file or download, verify and store the image of one item."""
    for path in leftovers:
        if image_format(path.read_bytes()) is not None:
            return DownloadResult(item, url, "present", path)
    if not item or item != Path(item).name or item.startswith("."):
        return DownloadResult(item, url, "failed", error="item id is not usable as a file name")
    attempts, error = 0, ""
    for attempt in range(options.retries + 1):
        if attempt:
            time.sleep(options.backoff * 2 ** (attempt - 1))
        attempts += 1
        try:
            data = _get(url, options)
            fmt = image_format(data)
            if fmt is None:
                raise _Permanent(f"body is not an image ({len(data)} bytes)")
        except _Permanent as err:
            error = str(err)
            break
        except (OSError, http.client.HTTPException) as err:  # URLError, timeouts, resets, bad status lines
            error = _describe(err)
            continue
        path = folder / f"{item}.{EXTENSIONS[fmt]}"
        for stale in leftovers:
            if stale != path:
                stale.unlink(missing_ok=True)
        write_bytes(path, data)
        return DownloadResult(item, url, "downloaded", path, attempts)
    return DownloadResult(item, url, "failed", attempts=attempts, error=error)


def _get(url: str, options: DownloadOptions) -> bytes:
    """One GET with a timeout per socket operation and an overall deadline; raises on failure."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise _Permanent(f"unsupported URL scheme '{scheme}' (only http and https are fetched)")
    request = urllib.request.Request(url, headers={"User-Agent": options.user_agent})
    deadline = time.monotonic() + 4 * options.timeout  # a server trickling bytes must not hold a worker forever
    try:
        with urllib.request.urlopen(request, timeout=options.timeout) as response:
            chunks, size = [], 0
            while chunk := response.read(65536):
                size += len(chunk)
                if size > options.max_bytes:
                    raise _Permanent(f"image larger than {options.max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"download slower than {4 * options.timeout:g} s")
                chunks.append(chunk)
            return b"".join(chunks)
    except urllib.error.HTTPError as err:
        if err.code in _RETRYABLE_STATUS:
            raise
        raise _Permanent(f"HTTP {err.code} {err.reason}") from None
    except ValueError as err:  # urllib's "unknown url type" and malformed URLs
        raise _Permanent(f"bad URL: {err}") from None


def _describe(err: BaseException) -> str:
    """A one-line reason for a transient failure (the last one is what the report shows)."""
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        reason = err.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return "timed out"
        return f"connection error: {reason}"
    if isinstance(err, (socket.timeout, TimeoutError)):
        return f"timed out{': ' + str(err) if str(err) and str(err) != 'timed out' else ''}"
    return f"{type(err).__name__}: {err}"
