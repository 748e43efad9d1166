"""Feature-extraction throughput: the batched pipeline against a one-image-at-a-time loop.

    python benchmarks/extract.py                 # CPU: ResNet50 and EfficientNet-Lite0, 96 images
    python benchmarks/extract.py --images 4096   # on a GPU machine: adds the GPU rows

Images are real photos (scikit-image's samples), cropped and resized to 500x500 JPEGs, the size
of a typical Amazon product image. Rows, per backbone:

* ``loop``: the reference tools' way (sisinflab/Image-Feature-Extractor, Ducho): for each image,
  decode, preprocess, run the network on a batch of one, save one ``.npy``. The network is built
  once here (the reference tool rebuilds it per image, which would only make it slower).
* ``pipeline``: ``elliot_visual.extraction.extract`` end to end (listing, loader workers, batched
  inference, shards, the final ``features.npy`` and metadata), CPU.
* on CUDA: ``inference only`` is the network alone on a uint8 batch already on the GPU (bf16
  autocast, channels-last: the ceiling), ``pipeline (gpu)`` the whole run from JPEG files, and
  its share of the ceiling (the goal is >= 80%); ``pipeline (gpu, fast_jpeg)`` decodes JPEGs at a
  reduced DCT scale.

ResNet50 runs with random weights (``weights: random``): speed does not depend on the values and
torchvision's file is not on this machine. EfficientNet-Lite0 uses its real ImageNet weights.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elliot_visual.extraction.catalogue import get_backbone  # noqa: E402
from elliot_visual.config.extraction import parse_block  # noqa: E402
from elliot_visual.extraction.extract import extract  # noqa: E402
from elliot_visual.extraction.images import list_images, load_rgb  # noqa: E402

BACKBONES = {"resnet50": "random", "efficientnet_lite0": "pretrained"}


def make_images(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` 500x500 JPEG crops of real photos."""
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(seed)
    sources = [getattr(data, name)() for name in ("chelsea", "coffee", "astronaut", "rocket",
                                                 "hubble_deep_field", "immunohistochemistry")]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        source = sources[i % len(sources)][..., :3]
        height, width = source.shape[:2]
        side = int(rng.integers(min(height, width) // 2, min(height, width)))
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        crop = Image.fromarray(source[top:top + side, left:left + side])
        crop.resize((500, 500), Image.Resampling.BILINEAR).save(folder / f"{i}.jpg", quality=90)


def loop_rate(name: str, weights: str, folder: Path, out: Path) -> float:
    """Images/s of the one-at-a-time loop on the CPU."""
    import torch

    from elliot_visual.extraction.taps import build_taps

    backbone = get_backbone(name)
    model, _ = backbone.build(weights)
    preprocessing = backbone.preprocessing()
    taps, _ = build_taps(backbone, model, [backbone.default_layer], preprocessing)
    records = list_images(folder)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with torch.inference_mode():
        for record in records:
            pixels = preprocessing(load_rgb(record.path))[None]
            feature = taps(pixels)[backbone.default_layer][0].numpy()
            np.save(out / f"{record.item_id}.npy", feature)
    return len(records) / (time.perf_counter() - start)


def pipeline_rate(name: str, weights: str, folder: Path, out: Path, gpu: int, batch_size: int,
                  workers: int | None, fast_jpeg: bool = False) -> float:
    """Images/s of a whole extraction run (network build excluded: it happens once per run)."""
    config = parse_block({"images": str(folder), "backbone": name, "weights": weights,
                          "output": str(out), "batch_size": batch_size, "workers": workers,
                          "gpu": gpu, "progress": False, "fast_jpeg": fast_jpeg,
                          "shard_size": 4096}, "/")
    import elliot_visual.extraction.extract as module

    built = {}
    original = module.build_extractor

    def timed_build(cfg):  # start the clock once the network is built and traced
        result = original(cfg)
        built["at"] = time.perf_counter()
        return result

    module.build_extractor = timed_build
    try:
        result = extract(config)
    finally:
        module.build_extractor = original
    return result.n_items / (time.perf_counter() - built["at"])


def inference_rate(name: str, weights: str, batch_size: int, seconds: float = 10.0) -> float:
    """Images/s of the network alone on a uint8 batch already on the GPU (the ceiling)."""
    import torch

    from elliot_visual.extraction.taps import TorchExtractor, build_taps

    backbone = get_backbone(name)
    model, _ = backbone.build(weights)
    preprocessing = backbone.preprocessing()
    taps, _ = build_taps(backbone, model, [backbone.default_layer], preprocessing)
    extractor = TorchExtractor(taps, torch.device("cuda", 0))
    batch = torch.randint(0, 255, (batch_size, 3, preprocessing.crop, preprocessing.crop),
                          dtype=torch.uint8, device="cuda")
    for _ in range(3):
        extractor(batch)
    torch.cuda.synchronize()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        extractor(batch)  # returns host arrays: the copy back is part of the ceiling too
        count += batch_size
    torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--gpu-batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default: auto)")
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--loop-images", type=int, default=48, help="images for the slow loop")
    args = parser.parse_args(argv)
    import torch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_images(root / "images", args.images)
        make_images(root / "loop_images", min(args.loop_images, args.images))
        print(f"{args.images} images 500x500 JPEG; CPU: {os.cpu_count()} cores, torch threads "
              f"{torch.get_num_threads()}; CUDA: "
              f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
        for name in args.backbones:
            weights = BACKBONES.get(name, "random")
            loop = loop_rate(name, weights, root / "loop_images", root / "loop_out" / name)
            rows.append((name, weights, "cpu", "loop (one image at a time)", loop, ""))
            cpu = pipeline_rate(name, weights, root / "images", root / "cpu_out", -1,
                                args.batch_size, args.workers)
            rows.append((name, weights, "cpu", "pipeline", cpu, f"{cpu / loop:.1f}x loop"))
            if torch.cuda.is_available():
                ceiling = inference_rate(name, weights, args.gpu_batch_size)
                rows.append((name, weights, "cuda", "inference only (preloaded)", ceiling, "100%"))
                for fast in (False, True):
                    rate = pipeline_rate(name, weights, root / "images",
                                         root / f"gpu_out_{fast}", 0, args.gpu_batch_size,
                                         args.workers, fast_jpeg=fast)
                    label = "pipeline (gpu, fast_jpeg)" if fast else "pipeline (gpu)"
                    rows.append((name, weights, "cuda", label, rate,
                                 f"{100 * rate / ceiling:.0f}% of inference"))
    header = ("backbone", "weights", "device", "method", "images/s", "relative")
    widths = [max(len(str(r[i])) if i != 4 else 9 for r in rows + [header]) for i in range(6)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        cells = [*row[:4], f"{row[4]:.1f}", row[5]]
        print(" | ".join(str(c).ljust(w) for c, w in zip(cells, widths)))


if __name__ == "__main__":
    main()
