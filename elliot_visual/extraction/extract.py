"""Batched, resumable feature extraction: item images -> feature files the loaders read.

On-disk layout (the contract with ``features/``), for ``output=data/<dataset>/features``::

    data/<dataset>/features/<backbone>/<layer>/        one folder per extracted layer
        features.npy        format: matrix -- one array (n_items, *shape), float32 or float16,
                            rows in the order of item_ids.txt
        <item_id>.npy       format: per_item -- Elliot's layout, one array of `shape` per item
                            (instead of features.npy)
        item_ids.txt        the public item ids, one per line, in row order (both formats)
        failed_images.tsv   header + one 'item_id<TAB>path<TAB>reason' row per image that could
                            not be decoded; these items have no features
        names.txt           named layers only (probabilities): one class name per line, one line
                            per column; FeatureVectors reads it as the column names
        metadata.json       backbone, library, architecture, weights (kind, tag, file, sha256),
                            layer, FX node, per-item shape and layout, dtype, format, n_items,
                            preprocessing, library versions. Written last: a folder without it
                            is incomplete.
    data/<dataset>/features/<backbone>/<layer>_pca<k>/  same layout, PCA-reduced copy of a vector
                                                         layer (pca: k), for VNPR
    data/<dataset>/features/<backbone>/.partial-<hash>/  shards of a run in progress (removed at
                                                         the end; a restarted run resumes from them)

``<backbone>`` is the block's ``name`` when given (fine-tuned networks use
``<backbone>_finetuned_<mode>`` and the layer ``shared``). Shapes: vectors are ``(D,)``; spatial
maps are ``(H*W, C)`` in region-major order (e.g. ResNet50 ``conv5_block3_out`` = ``(49, 2048)``).

Resumability: images are processed in a fixed order, in shards of ``shard_size`` images whose
batches never cross a shard boundary; each finished shard is written atomically
(``elliot_visual.storage``), its id list last. A killed run restarts at the first unfinished
shard and, since every batch is the same as in an uninterrupted run, writes byte-identical files.
"""
from __future__ import annotations

import contextlib

import hashlib
import json
import logging
import math
import os
import platform
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from elliot_visual import storage
from elliot_visual.extraction import FunctionModule
from elliot_visual.extraction.backbones import Layer, Preprocessing, WeightsInfo
from elliot_visual.extraction.catalogue import get_backbone
from elliot_visual.config.extraction import ExtractionConfig, ExtractionConfigError
from elliot_visual.extraction.images import (ImageDataset, ImageRecord, collate_images,
                                             list_images)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MAX_WORKERS = 16
BATCH_TIMEOUT_S = 600  # a loader worker stuck this long on one batch is an error, not a hang
Extractor = Callable[[Any], dict[str, np.ndarray]]


@dataclass
class ExtractionResult:
    """What a run produced: the folder of each layer (PCA copies included) and the failures."""

    folders: dict[str, Path]
    n_items: int = 0
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: bool = False
    resumed_shards: int = 0


def resolve_workers(workers: int | None, gpu: bool = False) -> int:
    """Loader processes, capped at the CPU count and 16. Auto: every core but one when a GPU does
    the inference (decoding is then the bottleneck), a quarter of them (at least one) when the
    CPU does both."""
    cpus = os.cpu_count() or 1
    if workers is None:
        return min(MAX_WORKERS, max(0, cpus - 1)) if gpu else max(1, min(cpus - 1, cpus // 4))
    return min(workers, cpus, MAX_WORKERS)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the numbers, recorded in every metadata file."""
    import elliot_visual

    versions = {"python": platform.python_version(), "elliot_visual": elliot_visual.__version__}
    for package in ("numpy", "torch", "torchvision", "timm", "Pillow",
                    "scikit-learn", "efficientnet-lite-pytorch", "tensorflow"):
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def layout_of(shape: Sequence[int]) -> str:
    if len(shape) == 1:
        return "vector"
    if len(shape) == 2:
        return "regions (H*W, C), region-major: row h*W + w holds the channels of region (h, w)"
    return "as produced by the node"


# ----------------------------------------------------------------------------- the sharded job
@dataclass
class FeatureJob:
    """Everything one sharded run needs; built by :func:`extract` and by fine-tuning."""

    records: list[ImageRecord]
    extractor: Extractor
    layers: dict[str, Layer]
    preprocessing: Preprocessing
    folders: dict[str, Path]
    partial_dir: Path
    metadata: dict[str, Any]
    batch_size: int = 64
    workers: int = 0
    shard_size: int = 1024
    max_pixels: int = 89_478_485
    dtype: str = "float32"
    format: str = "matrix"
    pca: Any = None
    seed: int = 42
    progress: bool = True
    pin_memory: bool = False
    fast_jpeg: bool = False


def _shard_paths(partial: Path, shard: int, n_layers: int) -> tuple[Path, Path, list[Path]]:
    stem = partial / f"{shard:06d}"
    return (stem.with_suffix(".ids.txt"), stem.with_suffix(".failed.tsv"),
            [partial / f"{shard:06d}.layer{j}.npy" for j in range(n_layers)])


def _write_shard(partial: Path, shard: int, layer_names: Sequence[str], ids: list[str],
                 failures: list[tuple[str, str, str]], arrays: dict[str, list[np.ndarray]]) -> None:
    """Write one finished shard; the id list goes last and marks the shard complete."""
    ids_path, failed_path, layer_paths = _shard_paths(partial, shard, len(layer_names))
    for name, path in zip(layer_names, layer_paths):
        if ids:
            storage.write_npy(path, np.concatenate(arrays[name], axis=0))
    storage.write_text(failed_path, "".join(f"{i}\t{_one_field(p)}\t{_one_field(r)}\n"
                                            for i, p, r in failures))
    storage.write_text(ids_path, "".join(f"{i}\n" for i in ids))


def _one_field(text: str) -> str:
    """A value safe inside one TSV cell (decoder messages may hold tabs or newlines)."""
    return " ".join(str(text).split())


def _read_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return text.splitlines() if text else []


def pending_batches(job: FeatureJob) -> tuple[set[int], list[list[int]]]:
    """The shards already on disk and the batches still to run: ``batch_size`` consecutive image
    positions that never cross a shard boundary, so every batch is the same as in an uninterrupted
    run (and a batched forward pass sees the same inputs, whichever backend runs it)."""
    n = len(job.records)
    n_shards = math.ceil(n / job.shard_size)
    job.partial_dir.mkdir(parents=True, exist_ok=True)
    done = {s for s in range(n_shards) if _shard_paths(job.partial_dir, s, len(job.layers))[0].is_file()}
    batches = [list(range(b, min(b + job.batch_size, min((s + 1) * job.shard_size, n))))
               for s in range(n_shards) if s not in done
               for b in range(s * job.shard_size, min((s + 1) * job.shard_size, n), job.batch_size)]
    return done, batches


class ShardWriter:
    """Collects finished batches, in any order, and writes each shard once all its images are in.

    Within a shard the batches are concatenated by position, so the bytes do not depend on the
    order in which parallel workers finish them.
    """

    def __init__(self, job: FeatureJob, done: set[int]) -> None:
        self.job, n = job, len(job.records)
        n_shards = math.ceil(n / job.shard_size)
        self.remaining = {s: min((s + 1) * job.shard_size, n) - s * job.shard_size
                          for s in range(n_shards) if s not in done}
        self.parts: dict[int, list[tuple[int, list[int], dict[str, np.ndarray]]]] = {s: [] for s in self.remaining}
        self.failed: dict[int, list[tuple[int, str]]] = {s: [] for s in self.remaining}
        self.shards_written = 0

    def add(self, indices: list[int], failures: list[tuple[int, str]],
            outputs: dict[str, np.ndarray] | None) -> int:
        """Record one batch (positions decoded, ``(position, reason)`` failures, per-layer arrays
        ``(len(indices), *shape)``); returns how many images it held."""
        shard = (indices or [i for i, _ in failures])[0] // self.job.shard_size
        self.failed[shard].extend(failures)
        if indices:
            self.parts[shard].append((indices[0], indices, outputs or {}))
        count = len(indices) + len(failures)
        self.remaining[shard] -= count
        if self.remaining[shard] == 0:
            self._write(shard)
        return count

    def _write(self, shard: int) -> None:
        job, names = self.job, list(self.job.layers)
        parts = sorted(self.parts.pop(shard), key=lambda part: part[0])
        failures = [(job.records[i].item_id, str(job.records[i].path), reason)
                    for i, reason in sorted(self.failed.pop(shard))]
        ids = [job.records[i].item_id for _, indices, _ in parts for i in indices]
        arrays = {name: [outputs[name] for _, _, outputs in parts] for name in names}
        _write_shard(job.partial_dir, shard, names, ids, failures, arrays)
        self.shards_written += 1


def run_job(job: FeatureJob) -> ExtractionResult:
    """Extract every pending shard of ``job``, then assemble the final folders (see module doc)."""
    from torch.utils.data import DataLoader
    from elliot_visual.progress import progress as progress_bar

    done, batches = pending_batches(job)
    writer = ShardWriter(job, done)
    if batches:
        dataset = ImageDataset(job.records, job.preprocessing, job.max_pixels,
                               job.preprocessing.draft_size if job.fast_jpeg else None)
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=job.workers,
                            collate_fn=collate_images, pin_memory=job.pin_memory,
                            timeout=BATCH_TIMEOUT_S if job.workers else 0,
                            prefetch_factor=4 if job.workers else None)
        done_images = len(job.records) - sum(len(b) for b in batches)
        with progress_bar(total=len(job.records), initial=done_images, unit="img", enabled=job.progress,
                  desc=f"extract {job.metadata.get('backbone', '')}", dynamic_ncols=True) as bar:
            for batch in loader:
                outputs = job.extractor(batch.images) if batch.images is not None else None
                bar.update(writer.add(batch.indices, batch.failures, outputs))
    return finish_job(job, done)


def finish_job(job: FeatureJob, done: set[int]) -> ExtractionResult:
    """Assemble the shards into the final folders and remove them."""
    result = _assemble(job, math.ceil(len(job.records) / job.shard_size))
    result.resumed_shards = len(done)
    shutil.rmtree(job.partial_dir, ignore_errors=True)
    return result


def _assemble(job: FeatureJob, n_shards: int) -> ExtractionResult:
    """Concatenate the shards into the final folders, in shard order; metadata last."""
    names = list(job.layers)
    ids: list[str] = []
    failed: list[tuple[str, str, str]] = []
    shard_ids: list[list[str]] = []
    for s in range(n_shards):
        ids_path, failed_path, _ = _shard_paths(job.partial_dir, s, len(names))
        shard_ids.append(_read_lines(ids_path))
        ids.extend(shard_ids[-1])
        failed.extend(tuple(line.split("\t", 2)) for line in _read_lines(failed_path))
    if not ids:
        # Nothing to resume from: shards holding only failures would make a rerun skip the fixed images.
        shutil.rmtree(job.partial_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            job.partial_dir.parent.rmdir()  # the network's folder, when this run created it empty
        raise ExtractionConfigError(f"none of the {len(job.records)} images could be decoded (first: "
                                    f"{failed[0][1]}: {failed[0][2]}); check the 'images' key")
    dtype = np.dtype(job.dtype)
    failed_text = "item_id\tpath\treason\n" + "".join(f"{i}\t{p}\t{r}\n" for i, p, r in failed)
    folders: dict[str, Path] = {}
    for j, name in enumerate(names):
        folder = job.folders[name]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / storage.METADATA_FILE).unlink(missing_ok=True)
        parts = [(s, _shard_paths(job.partial_dir, s, len(names))[2][j])
                 for s in range(n_shards) if shard_ids[s]]
        shape = tuple(np.load(parts[0][1], mmap_mode="r").shape[1:])
        if job.format == "matrix":
            _stream_matrix(folder / storage.FEATURES_FILE, [p for _, p in parts], len(ids), shape, dtype)
        else:
            for s, path in parts:
                block = np.load(path)
                for item, row in zip(shard_ids[s], block):
                    storage.write_npy(folder / f"{_item_file_stem(item)}.npy", row.astype(dtype))
            _remove_stale_items(folder, ids)
        storage.write_id_list(folder / storage.IDS_FILE, ids)
        storage.write_text(folder / storage.FAILED_FILE, failed_text)
        layer = job.layers[name]
        meta = {**job.metadata, "layer": name, "node": layer.node, "shape": list(shape),
                "layout": layout_of(shape), "dtype": job.dtype, "format": job.format,
                "n_items": len(ids), "n_failed": len(failed), **_write_names(folder, layer, shape)}
        storage.write_json(folder / storage.METADATA_FILE, meta)
        folders[name] = folder
        if job.pca is not None and len(shape) == 1:
            folders.update(_write_pca(job, name, [p for _, p in parts], ids, failed_text, meta))
    return ExtractionResult(folders, len(ids), failed)


def _write_names(folder: Path, layer: Layer, shape: tuple[int, ...]) -> dict[str, Any]:
    """``names.txt`` for a named layer (a stale one removed otherwise); its metadata entries."""
    path = folder / storage.NAMES_FILE
    if layer.names is None:
        path.unlink(missing_ok=True)
        return {}
    if len(layer.names) != shape[-1]:
        raise RuntimeError(f"layer '{layer.node}' has {shape[-1]} columns but {len(layer.names)} "
                           "class names; its weights do not match the names' head")
    storage.write_text(path, "".join(f"{n}\n" for n in layer.names))
    return {"names_file": storage.NAMES_FILE, "values": "softmax probabilities" if layer.softmax else "",
            "class_subset": layer.columns is not None, "renormalised": False,
            "description": layer.description}


def _remove_stale_items(folder: Path, ids: list[str]) -> None:
    """Drop ``<item>.npy`` files an earlier run left for items this run does not have."""
    keep = {f"{item}.npy" for item in ids}
    for path in folder.glob("*.npy"):
        if path.name not in keep and path.name != storage.FEATURES_FILE:
            path.unlink()


def _item_file_stem(item: str) -> str:
    if not item or item in (".", "..") or "/" in item or "\\" in item or "\0" in item:
        raise ValueError(f"item id {item!r} cannot be a file name; use format: matrix")
    return item


def _stream_matrix(path: Path, parts: list[Path], rows: int, shape: tuple[int, ...],
                   dtype: np.dtype) -> None:
    """Write ``(rows, *shape)`` as one ``.npy`` shard by shard (never the whole matrix in memory)."""
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
              "shape": (rows, *shape)}
    with storage.atomic_write(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        for part in parts:
            block = np.load(part)
            if block.shape[1:] != shape:
                raise RuntimeError(f"shard {part} has per-item shape {block.shape[1:]}, "
                                   f"expected {shape}")
            handle.write(np.ascontiguousarray(block.astype(dtype, copy=False)).tobytes())


def _write_pca(job: FeatureJob, name: str, parts: list[Path], ids: list[str], failed_text: str,
               meta: dict[str, Any]) -> dict[str, Path]:
    """Fit scikit-learn's PCA on a vector layer and write the reduced copy beside it."""
    from sklearn.decomposition import PCA

    matrix = np.concatenate([np.load(p) for p in parts], axis=0).astype(np.float64)
    k = job.pca.n_components
    if k > min(matrix.shape):
        raise ExtractionConfigError(
            f"extraction key 'pca.n_components': {k} components need at least {k} items and "
            f"{k} dimensions; layer '{name}' has {matrix.shape[0]} items of {matrix.shape[1]} "
            f"dimensions. Lower 'pca'.")
    pca = PCA(n_components=k, whiten=job.pca.whiten, svd_solver="full", random_state=job.seed)
    reduced = pca.fit_transform(matrix).astype(np.dtype(job.dtype))
    pca_name = storage.pca_layer_name(name, k)
    folder = job.folders.get(pca_name) or job.folders[name].parent / pca_name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / storage.METADATA_FILE).unlink(missing_ok=True)
    if job.format == "matrix":
        storage.write_npy(folder / storage.FEATURES_FILE, reduced)
    else:
        for item, row in zip(ids, reduced):
            storage.write_npy(folder / f"{_item_file_stem(item)}.npy", row)
        _remove_stale_items(folder, ids)
    storage.write_id_list(folder / storage.IDS_FILE, ids)
    storage.write_text(folder / storage.FAILED_FILE, failed_text)
    storage.write_json(folder / storage.METADATA_FILE, {
        **meta, "layer": pca_name, "shape": [k], "layout": "vector",
        "pca": {"source_layer": name, "n_components": k, "whiten": job.pca.whiten,
                "explained_variance_ratio": float(pca.explained_variance_ratio_.sum()),
                "svd_solver": "full"}})
    return {pca_name: folder}


# ----------------------------------------------------------------------------- fingerprints
def job_fingerprint(parts: dict[str, Any], records: Sequence[ImageRecord]) -> str:
    """A hash of everything that shapes the shard bytes: resuming needs the same run."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for record in records:
        try:
            stat = record.path.stat()
            sig = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            sig = "missing"
        digest.update(f"{record.item_id}\0{record.path}\0{sig}\n".encode())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- public entry points
def build_extractor(config: ExtractionConfig) -> tuple[Extractor, dict[str, Layer], Preprocessing,
                                                       WeightsInfo, dict[str, Any]]:
    """Build the network and its taps once: ``(extractor, layers, preprocessing, weights, run info)``."""
    backbone = get_backbone(config.backbone, config.backend)
    overrides = config.preprocessing.model_dump(exclude_none=True) if config.preprocessing else {}
    preprocessing = backbone.preprocessing().overridden(**overrides)
    layer_names = config.layers or [backbone.default_layer]
    weights = config.weights
    if config.backend == "tensorflow":
        from elliot_visual.extraction.keras_backend import build_keras_extractor

        extractor, layers, info = build_keras_extractor(backbone, layer_names, weights)
        return extractor, layers, preprocessing, info, {"device": "keras"}
    from elliot_visual.extraction.taps import TorchExtractor, build_taps, resolve_device

    model, info = backbone.build(weights)
    if info.kind == "random":
        log.warning("backbone '%s' runs with RANDOM weights (weights: %s), as asked",
                    backbone.name, config.weights)
    taps, layers = build_taps(backbone, model, layer_names, preprocessing, weights, config.classes)
    device = resolve_device(config.device_index)
    extractor = TorchExtractor(taps, device, config.precision)
    return extractor, layers, preprocessing, info, extractor.describe()


def base_metadata(config: ExtractionConfig, preprocessing: Preprocessing, weights: WeightsInfo,
                  run: dict[str, Any]) -> dict[str, Any]:
    backbone = get_backbone(config.backbone, config.backend)
    return {"format_version": FORMAT_VERSION, "backbone": backbone.name, "backend": config.backend,
            "library": backbone.library, "architecture": backbone.architecture,
            "weights": weights.to_dict(), "preprocessing": preprocessing.to_dict(),
            "images": str(config.images), "batch_size": config.batch_size,
            "fast_jpeg": config.fast_jpeg,
            "device_type": str(run.get("device", "cpu")).split(":")[0],
            "autocast": run.get("autocast", "None"), "versions": library_versions()}


def output_folders(config: ExtractionConfig, layer_names: Sequence[str]) -> dict[str, Path]:
    folders = {name: storage.feature_folder(config.output, config.folder_name, name) for name in layer_names}
    if config.pca is not None:
        for name in layer_names:
            pca = storage.pca_layer_name(name, config.pca.n_components)
            folders[pca] = storage.feature_folder(config.output, config.folder_name, pca)
    return folders


def expected_folders(config: ExtractionConfig) -> dict[str, Path]:
    """The folders a run of ``config`` writes (PCA copies of map layers are never written)."""
    backbone = get_backbone(config.backbone, config.backend)
    names = config.layers or [backbone.default_layer]
    folders = output_folders(config, names)
    if config.pca is not None:
        for name in names:
            declared = backbone.layers.get(name)
            if declared is not None and not declared.is_vector:
                folders.pop(storage.pca_layer_name(name, config.pca.n_components), None)
    return folders


def already_extracted(config: ExtractionConfig) -> ExtractionResult | None:
    """The result of an earlier complete run of ``config`` (kept unless ``overwrite: true``), or None."""
    folders = expected_folders(config)
    if config.overwrite or not all(storage.is_complete_feature_folder(f) for f in folders.values()):
        return None
    log.info("features of %s already extracted in %s", config.backbone, next(iter(folders.values())).parent)
    return ExtractionResult(folders, skipped=True)


def extract(config: ExtractionConfig) -> ExtractionResult:
    """Run one extraction block; a complete earlier output is kept unless ``overwrite: true``."""
    finished = already_extracted(config)
    if finished is not None:
        return finished
    records = list_images(config.images)
    check_pca_size(config, records)
    extractor, layers, preprocessing, weights, run = build_extractor(config)
    result = run_job(feature_job(config, records, extractor, layers, preprocessing, weights, run))
    if result.failed:
        log.warning("%d image(s) could not be decoded; listed in %s", len(result.failed),
                    next(iter(result.folders.values())) / storage.FAILED_FILE)
    return result


def check_pca_size(config: ExtractionConfig, records: Sequence[ImageRecord]) -> None:
    if config.pca is not None and config.pca.n_components > len(records):
        raise ExtractionConfigError(
            f"extraction key 'pca.n_components': {config.pca.n_components} components need at "
            f"least as many items, and {config.images} has {len(records)} images. Lower 'pca'.")


def feature_job(config: ExtractionConfig, records: list[ImageRecord], extractor: Extractor | None,
                layers: dict[str, Layer], preprocessing: Preprocessing, weights: WeightsInfo,
                run: dict[str, Any]) -> FeatureJob:
    """The sharded job of one block; its ``.partial-<fingerprint>`` folder depends only on what
    shapes the bytes, so a run resumes the shards of an interrupted one, whichever backend ran it."""
    metadata = base_metadata(config, preprocessing, weights, run)
    fingerprint = job_fingerprint(
        {"meta": {k: v for k, v in metadata.items() if k != "versions"},
         "layers": {k: v.node if not v.softmax else [v.node, v.columns] for k, v in layers.items()},
         "shard_size": config.shard_size,
         "max_pixels": config.max_pixels, "fast_jpeg": config.fast_jpeg}, records)
    return FeatureJob(
        records=records, extractor=extractor, layers=layers, preprocessing=preprocessing,
        folders=output_folders(config, list(layers)),
        partial_dir=storage.network_folder(config.output, config.folder_name) / f".partial-{fingerprint[:16]}",
        metadata=metadata, batch_size=config.batch_size,
        workers=resolve_workers(config.workers, run.get("device", "cpu").startswith("cuda")),
        shard_size=config.shard_size, max_pixels=config.max_pixels, dtype=config.dtype,
        format=config.format, pca=config.pca, seed=config.seed, progress=config.progress,
        pin_memory=run.get("device", "cpu").startswith("cuda"), fast_jpeg=config.fast_jpeg)
    result = run_job(job)
    if result.failed:
        log.warning("%d image(s) could not be decoded; listed in %s", len(result.failed),
                    next(iter(result.folders.values())) / storage.FAILED_FILE)
    return result


sys.modules[__name__].__class__ = FunctionModule  # ``elliot_visual.extraction.extract(...)`` stays callable
