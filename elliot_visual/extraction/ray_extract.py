"""An ``extraction:`` block as a Ray Data pipeline: decoding on CPU tasks, inference on actors.

The same sharded job as the local extractor (:mod:`.extract`): the same batches (never crossing
a shard boundary), the same shard files under ``.partial-<fingerprint>``, the same assembly and
metadata. Only who computes a batch changes::

    batches of image positions --map(decode, num_cpus)--> ImageBatch (uint8 pixels, failures)
        --map(Inference actor, num_gpus, concurrency=actors)--> per-layer arrays
        --> the driver writes each shard once all its batches are in (atomically, ids last)

With ``gpus: 0`` the two stages need the same resources and Ray Data fuses them into the actors
(each decodes its own batch; no pixels move between processes); with GPUs they stay apart.
A batch is one Ray Data row, so every forward pass sees exactly the inputs the local loop gives
it and the features are byte-identical to the local extractor's on the same device. Since the
shard files and their fingerprint are shared, a killed run resumes where it stopped, and a local
run can finish a Ray run's shards or the reverse. The shards are written by the driver: on a
cluster, ``output`` must be a folder the driver can write (the workers read only the images,
so ``images`` must be visible to every node). The block's ``workers`` (local loader processes)
are replaced by Ray's decoding tasks; its ``gpu`` by the actors' ``gpus``.
"""
from __future__ import annotations

import logging
from typing import Any

from elliot_visual import storage
from elliot_visual.config.extraction import ExtractionConfig
from elliot_visual.config.schema import RayExtraction
from elliot_visual.extraction.extract import (ExtractionResult, ShardWriter, already_extracted,
                                              build_extractor, check_pca_size, feature_job, finish_job,
                                              pending_batches)
from elliot_visual.extraction.images import ImageBatch, ImageDataset, ImageRecord, collate_images, list_images

log = logging.getLogger(__name__)


def _describe(config: ExtractionConfig) -> tuple[Any, Any, Any, dict[str, Any]]:
    """On a worker with the actors' resources: layers, preprocessing, weights and device of the
    network (what the metadata and the resume fingerprint record)."""
    _, layers, preprocessing, weights, run = build_extractor(config)
    return layers, preprocessing, weights, run


class _Decode:
    """Row ``{"positions": [...]}`` -> ``{"batch": ImageBatch}``, with the robust decoder
    (:mod:`.images`) and the network's own preprocessing."""

    def __init__(self, records: list[ImageRecord], preprocessing: Any, max_pixels: int, fast_jpeg: bool) -> None:
        self.dataset = ImageDataset(records, preprocessing, max_pixels,
                                    preprocessing.draft_size if fast_jpeg else None)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"batch": collate_images([self.dataset[int(i)] for i in row["positions"]])}


class _Inference:
    """A Ray actor holding one copy of the network; ``{"batch"}`` -> ``{"batch", "outputs"}``."""

    def __init__(self, config: ExtractionConfig) -> None:
        self.extractor = build_extractor(config)[0]

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        batch: ImageBatch = row["batch"]
        outputs = self.extractor(batch.images) if batch.images is not None else None
        return {"batch": ImageBatch(batch.indices, None, batch.failures), "outputs": outputs}


def extract_on_ray(config: ExtractionConfig, settings: RayExtraction) -> ExtractionResult:
    """Run one extraction block on the connected Ray instance (:func:`elliot_visual.cluster.ray_session`)."""
    import ray

    finished = already_extracted(config)
    if finished is not None:
        return finished
    records = list_images(config.images)
    check_pca_size(config, records)
    # An actor sees only the GPUs Ray gave it, numbered from 0; without any it runs on the CPU.
    config = config.model_copy(update={"gpu": 0 if settings.gpus > 0 else -1})
    describe = ray.remote(num_cpus=1, num_gpus=settings.gpus)(_describe)
    layers, preprocessing, weights, run = ray.get(describe.remote(config))
    job = feature_job(config, records, None, layers, preprocessing, weights, run)
    done, batches = pending_batches(job)
    writer = ShardWriter(job, done)
    if batches:
        total, finished = len(records), len(records) - sum(len(b) for b in batches)
        log.info("extract %s on Ray: %d images in %d batches (%d shard(s) already done), %d actor(s)",
                 config.backbone, total, len(batches), len(done), settings.actors)
        pipeline = (ray.data.from_items([{"positions": b} for b in batches], override_num_blocks=len(batches))
                    .map(_Decode(records, preprocessing, config.max_pixels, config.fast_jpeg),
                         num_cpus=settings.decode_cpus)  # an instance: stateless tasks, spread over CPUs
                    .map(_Inference, fn_constructor_args=(config,), num_cpus=1, num_gpus=settings.gpus,
                         compute=ray.data.ActorPoolStrategy(size=settings.actors)))
        for row in pipeline.iter_rows():
            batch = row["batch"]
            before = writer.shards_written
            finished += writer.add(batch.indices, batch.failures, row["outputs"])
            if writer.shards_written > before:
                log.info("extract %s on Ray: %d/%d images", config.backbone, finished, total)
    result = finish_job(job, done)
    if result.failed:
        log.warning("%d image(s) could not be decoded; listed in %s", len(result.failed),
                    next(iter(result.folders.values())) / storage.FAILED_FILE)
    return result
