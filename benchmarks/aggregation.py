"""Throughput of the aggregation paper's two stages (Demochkin & Savchenko, 2019).

    python benchmarks/aggregation.py                # CPU rows (and CUDA rows when a GPU is present)
    python benchmarks/aggregation.py --steps 20 --threads 2

* Stage 2 (set networks): training users/s (weighted-BCE loss, backward, Adam step; the model's own
  ``configure_optimizer``) and scoring users/s, for AveragePooling, NeuralAggregation with 1 and 2
  blocks, and 2 blocks + context gating, at the paper's sizes: F = 1024 (MobileNet v1 features),
  head 2048, D = 60 categories, batches of 64 users with sets of 5-40 items padded to the batch's
  longest set.
* Stage 1 (fine-tuning MobileNet v1/v2/v3 at 224 px): training images/s with the first blocks
  frozen (phase 1: the last half of the blocks train), with every layer training (phase 2), and
  extraction images/s (inference), on uint8 batches already in memory. Random weights: speed does
  not depend on the values, and no download is needed.

Each number is the median of ``--repeats`` timings of ``--steps`` steps after one warm-up step; the
machine's load (``uptime``) is printed with the table.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elliot_visual.data.samplers import UserSets, user_sets  # noqa: E402
from elliot_visual.extraction.catalogue import get_backbone  # noqa: E402
from elliot_visual.extraction.finetune import SharedHead, Task, backbone_blocks  # noqa: E402
from elliot_visual.extraction.taps import TapModule  # noqa: E402
from elliot_visual.models.aggregation import (AveragePoolingModel, NeuralAggregationModel,  # noqa: E402
                                              NeuralAggregationParams, SetCategoryParams)
from elliot_visual.models.base import build_model  # noqa: E402
from elliot_visual.training.optimizers import build_optimizer  # noqa: E402

N_ITEMS, DIM, LABELS, BATCH_USERS = 5000, 1024, 60, 64


def set_batches(rng: np.random.Generator, device: torch.device, n: int = 8) -> list[UserSets]:
    """``n`` batches of the ``user_sets`` sampler's layout: users with 5-40 items, D-label targets."""
    sizes = rng.integers(5, 41, size=n * BATCH_USERS)
    rows = np.repeat(np.arange(sizes.size), sizes)
    cols = np.concatenate([rng.choice(N_ITEMS, size=s, replace=False) for s in sizes])
    sets = sp.csr_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(sizes.size, N_ITEMS))
    labels = (rng.random((N_ITEMS, LABELS)) < 0.05).astype(np.float32)
    return [user_sets(sets, np.arange(b * BATCH_USERS, (b + 1) * BATCH_USERS), labels, 40, rng).to(device)
            for b in range(n)]


def timed(step: Callable[[], None], steps: int, repeats: int, device: torch.device) -> float:
    """Median seconds per step."""
    step()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def stage_two(device: torch.device, steps: int, repeats: int) -> list[tuple[str, str, float, float]]:
    rng = np.random.default_rng(0)
    features = {"visual_features": torch.randn(N_ITEMS, DIM), "item_labels": torch.zeros(N_ITEMS, LABELS)}
    batches = set_batches(rng, device)
    rows = []
    for name, cls, params in [
            ("AveragePooling", AveragePoolingModel, SetCategoryParams()),
            ("NeuralAggregation blocks=1", NeuralAggregationModel, NeuralAggregationParams(blocks=1)),
            ("NeuralAggregation blocks=2", NeuralAggregationModel, NeuralAggregationParams(blocks=2)),
            ("NeuralAggregation blocks=2 +CG", NeuralAggregationModel,
             NeuralAggregationParams(blocks=2, context_gating=True))]:
        model = build_model(cls, params, 1, N_ITEMS, features).to(device)
        optimizer = build_optimizer(model, "adam")
        counter = iter(range(10**9))

        def train_step() -> None:
            batch = batches[next(counter) % len(batches)]
            optimizer.zero_grad(set_to_none=True)
            model.loss(batch).backward()
            optimizer.step()

        def score_step() -> None:
            with torch.no_grad():
                model.predict(batches[next(counter) % len(batches)])

        model.train()
        train = BATCH_USERS / timed(train_step, steps, repeats, device)
        model.eval()
        score = BATCH_USERS / timed(score_step, steps, repeats, device)
        rows.append((name, device.type, train, score))
    return rows


def stage_one(device: torch.device, steps: int, repeats: int, batch: int) -> list[tuple[str, str, float, float, float]]:
    rows = []
    images = torch.randint(0, 256, (batch, 3, 224, 224), dtype=torch.uint8, device=device)
    targets = (torch.rand(batch, LABELS, device=device) < 0.1).float()
    task = Task("categories", "multilabel", 1.0, classes=[str(i) for i in range(LABELS)], pos_weight=36.0)
    for name in ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3"):
        backbone = get_backbone(name)
        model, _ = backbone.build("random")
        taps = TapModule(backbone, model, {"pooled": backbone.layer("pooled", model)},
                         backbone.preprocessing()).to(device).eval()
        head = SharedHead(backbone.layers["pooled"].shape[0], 1024, [task]).to(device)
        blocks = backbone_blocks(taps)
        speeds = []
        for trained in (blocks[len(blocks) // 2:], blocks):
            for parameter in taps.parameters():
                parameter.requires_grad_(False)
            tuned = [p for block in trained for p in block.parameters()]
            for parameter in tuned:
                parameter.requires_grad_(True)
            optimizer = torch.optim.Adam(list(head.parameters()) + tuned, lr=1e-4)

            def train_step() -> None:
                optimizer.zero_grad(set_to_none=True)
                task.loss(head(taps(images)["pooled"])[0], targets).backward()
                optimizer.step()

            speeds.append(batch / timed(train_step, steps, repeats, device))

        def extract_step() -> None:
            with torch.inference_mode():
                head.shared(taps(images)["pooled"])

        speeds.append(batch / timed(extract_step, steps, repeats, device))
        rows.append((name, device.type, *speeds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--skip-stage-one", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"load before: {os.popen('uptime').read().strip()}; torch threads {args.threads}")
    print(f"\nStage 2: {BATCH_USERS} users/batch, sets 5-40, F={DIM}, head 2048, D={LABELS}")
    print(f"{'model':34s} {'device':6s} {'train users/s':>14s} {'score users/s':>14s}")
    for device in devices:
        for name, kind, train, score in stage_two(device, args.steps, args.repeats):
            print(f"{name:34s} {kind:6s} {train:14.0f} {score:14.0f}")
    if not args.skip_stage_one:
        print(f"\nStage 1: 224 px, batch {args.image_batch}, D={LABELS}, weighted BCE")
        print(f"{'backbone':14s} {'device':6s} {'train img/s (half frozen)':>26s} {'train img/s (all)':>18s} "
              f"{'extract img/s':>14s}")
        for device in devices:
            for name, kind, half, full, extract in stage_one(device, args.steps, args.repeats, args.image_batch):
                print(f"{name:14s} {kind:6s} {half:26.1f} {full:18.1f} {extract:14.1f}")
    print(f"\nload after: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()
