"""Atomic writes and the on-disk layout: the only place that decides where files go.

Every file the project writes goes through :func:`atomic_write`: the bytes land in a temporary
file beside the target, are flushed and fsynced, then renamed over the target, so a crash never
leaves a half-written report, split or feature shard.

Layouts owned here: Elliot's result folders (:class:`ResultPaths`) and the feature folders that
extraction writes and ``features/`` reads (:func:`feature_folder`, the ``*_FILE`` names).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success rename it to ``path``, on error delete it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding,
                       newline=None if binary else "") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, indent: int = 4) -> Path:
    """Atomically write ``obj`` as JSON (Elliot writes its best-params files with indent 4)."""
    return write_text(path, json.dumps(obj, indent=indent, default=_json_default))


def write_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Atomically write one array in NumPy's ``.npy`` format (byte-identical for equal arrays)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return write_bytes(path, buffer.getvalue())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def timestamp_suffix(now: _dt.datetime | None = None) -> str:
    """Elliot's file-name time stamp, ``%Y_%m_%d_%H_%M_%S``."""
    return (now or _dt.datetime.now()).strftime("%Y_%m_%d_%H_%M_%S")


@dataclass(frozen=True)
class ResultPaths:
    """Elliot's result folders for one dataset: ``recs/``, ``weights/``, ``performance/`` (+ ``figures/``)."""

    recs: Path
    weights: Path
    performance: Path
    figures: Path

    @classmethod
    def under(cls, root: str | os.PathLike, dataset: str) -> "ResultPaths":
        """The default layout ``<root>/<dataset>/{recs,weights,performance,figures}``."""
        base = Path(root) / dataset
        return cls(base / "recs", base / "weights", base / "performance", base / "figures")

    def create(self) -> "ResultPaths":
        """Create every folder (Elliot creates them all before the first model runs)."""
        for folder in (self.recs, self.weights, self.performance, self.figures):
            blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
            if blocking is not None:
                raise NotADirectoryError(f"{blocking} is a file, so the result folder {folder} cannot be created "
                                         "there; move the file or set the path_output_* key to a folder")
            folder.mkdir(parents=True, exist_ok=True)
        return self


def write_manifest(path: str | os.PathLike, files: list[Path], extra: dict[str, Any] | None = None) -> Path:
    """The completion marker of a run, written LAST: every output file with its size and SHA-256.

    A results folder without the manifest of a run's time stamp holds an interrupted run; one with
    it can be checked file by file (``verify_manifest``)."""
    import hashlib

    root = Path(path).parent
    entries = []
    for file in files:
        file = Path(file)
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        try:
            name = os.path.relpath(file, root)
        except ValueError:  # another drive (Windows)
            name = str(file)
        entries.append({"path": name, "bytes": file.stat().st_size, "sha256": digest})
    return write_json(path, {"complete": True, **(extra or {}), "files": entries})


def verify_manifest(path: str | os.PathLike) -> list[str]:
    """Problems with a manifest's files (missing or changed); an empty list means the run is whole."""
    import hashlib

    manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    root = Path(path).parent
    problems = []
    for entry in manifest.get("files", []):
        file = root / entry["path"]
        if not file.is_file():
            problems.append(f"{file}: missing")
        elif hashlib.sha256(file.read_bytes()).hexdigest() != entry["sha256"]:
            problems.append(f"{file}: changed since the run")
    return problems


def safe_file_name(name: str) -> str:
    """A model name usable as a file name (Elliot names ``recs/<model name>.tsv`` verbatim)."""
    return name.replace(os.sep, "-").replace("\0", "")


# --- feature folders: written by extraction/, read by features/ -------------------------------
# <root>/<network>/<layer>/ holds FEATURES_FILE (n_items, *shape) with IDS_FILE (one public item id
# per line, in row order), FAILED_FILE (images that could not be decoded), NAMES_FILE (named
# columns, e.g. class probabilities: one name per line, one line per column; optional) and
# METADATA_FILE, written last: a folder without it is incomplete.
FEATURES_FILE = "features.npy"
IDS_FILE = "item_ids.txt"
FAILED_FILE = "failed_images.tsv"
NAMES_FILE = "names.txt"
METADATA_FILE = "metadata.json"


def network_folder(root: str | os.PathLike, network: str) -> Path:
    """``<root>/<network>/``: one network's layer folders, its in-progress shards (``.partial-<hash>``)
    and, for a fine-tuned network, its checkpoint."""
    return Path(root) / network


def feature_folder(root: str | os.PathLike, network: str, layer: str) -> Path:
    """``<root>/<network>/<layer>/`` (the study's ``data/<dataset>/features/<backbone>/<layer>/``)."""
    return network_folder(root, network) / layer.replace(os.sep, "_")


def pca_layer_name(layer: str, n_components: int) -> str:
    """The layer name of a PCA-reduced copy: ``<layer>_pca<k>``."""
    return f"{layer}_pca{n_components}"


def pca_projection_cache(features: str | os.PathLike, n_components: int, key: str) -> Path:
    """Where a PCA projection fitted on ``features`` is cached: beside them, keyed by ``key``
    (a digest of the file and of the train items it was fitted on)."""
    origin = Path(features)
    return origin.parent / f"{origin.stem}_pca{n_components}_{key}.npz"


def is_complete_feature_folder(folder: str | os.PathLike) -> bool:
    """A feature folder is complete once its metadata file exists (it is written last)."""
    return (Path(folder) / METADATA_FILE).is_file()


def write_id_list(path: str | os.PathLike, ids: Iterator[str] | list[str]) -> Path:
    """Atomically write public ids, one per line (the ``IDS_FILE`` format)."""
    return write_text(path, "".join(f"{i}\n" for i in ids))
