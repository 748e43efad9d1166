"""ImgRec speed: ImgRec-FT epochs against VBPR's, ImgRec-EtE training images/s, the 1 + 500 evaluation.

    python benchmarks/imgrec.py                 # the issue's sizes (1M interactions, 45k users)
    python benchmarks/imgrec.py --quick         # a smaller run, same table

1. **epochs**: ImgRec-FT (pointwise: every pair + ``negatives`` sampled pairs per epoch) and VBPR
   (one BPR triple per pair) on the same random 1M-interaction set with 2048-d features, batch
   1024, each model's own optimiser (fused Adam); ``--steps`` steps are timed (sampling included)
   and extrapolated to a full epoch. CPU, and CUDA when present.
2. **EtE images/s**: ImgRec-EtE's stage 2 (ResNet50 unfrozen from ``layer3[4].conv2``) on 224 px
   images, images per second of training steps (forward + backward + Adam); ResNet50 with random
   weights when the pretrained file is not cached (the speed is the same). CUDA runs under the
   loop's bf16 autocast.
3. **1 + 500 evaluation**: the sampled protocol (500 negatives outside every held-out item, one
   trial, eq. 6 AUC, HR@10, nDCG@10) for 45,184 users over 166,270 items (DVBPR's Amazon
   Fashion sizes) with a 30-factor MF score, wall time.

The machine's load (``os.getloadavg``) is printed with the table: shared machines are noisy.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from elliot_visual.config.schema import Evaluation, NegativeSampling
from elliot_visual.data.interactions import HeldOut, Interactions
from elliot_visual.evaluation.evaluator import build_metrics
from elliot_visual.evaluation.sampled import evaluate_sampled
from elliot_visual.models.base import build_model
from elliot_visual.models.imgrec import ImgRecEtE, ImgRecFT
from elliot_visual.models.vbpr import VBPR
from elliot_visual.training.loop import build_sampler
from elliot_visual.training.optimizers import build_optimizer


def random_data(n_interactions: int, n_users: int, n_items: int, seed: int = 0) -> Interactions:
    """Random implicit pairs (popularity-skewed items), one held-out test item per user."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, int(n_interactions * 1.05))
    items = np.minimum((rng.pareto(1.2, len(users)) * n_items / 20).astype(np.int64), n_items - 1)
    pairs = np.unique(users * n_items + rng.permutation(n_items)[items])[:n_interactions]
    train = sp.csr_matrix((np.ones(len(pairs), np.float32), (pairs // n_items, pairs % n_items)),
                          shape=(n_users, n_items))
    test_users = np.arange(n_users)
    test_items = rng.integers(0, n_items, n_users)
    held = HeldOut(users=test_users, items=test_items, item_ids=test_items.astype(str).astype(object),
                   ratings=np.ones(n_users))
    return Interactions(name="random", user_ids=np.arange(n_users).astype(str).astype(object),
                        item_ids=np.arange(n_items).astype(str).astype(object), train=train, test=held)


def time_steps(model: torch.nn.Module, data: Interactions, steps: int, device: torch.device) -> tuple[float, int]:
    """(seconds per step, batches per epoch) over ``steps`` training steps, sampling included."""
    model.to(device).train()
    sampler = build_sampler(model, data)
    optimizer = build_optimizer(model, "adam")
    batches = sampler.epoch()
    amp = device.type == "cuda"

    def step() -> None:
        batch = next(batches).to(device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
            loss = model.loss(batch)
        loss.backward()
        optimizer.step()

    step()  # warm-up (allocations, caches)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps, sampler.batches_per_epoch()


def epochs(args: argparse.Namespace, device: torch.device) -> list[dict]:
    data = random_data(args.interactions, args.users, args.items)
    feats = torch.from_numpy(np.abs(np.random.default_rng(1).normal(size=(args.items, args.dim))).astype(np.float32))
    rows = []
    for name, cls, params in (("ImgRecFT", ImgRecFT, dict(batch_size=1024, factors=30, ft_units=150)),
                              ("VBPR", VBPR, dict(batch_size=1024, factors=30, factors_d=30))):
        model = build_model(cls, cls.Params(**params), data.n_users, data.n_items, {"visual_features": feats})
        per_step, batches = time_steps(model, data, args.steps, device)
        rows.append({"measure": f"{name} epoch (s)", "device": device.type, "value": per_step * batches,
                     "note": f"{batches} batches of 1024, {per_step * 1000:.1f} ms/step"})
    rows[0]["note"] += f"; {rows[0]['value'] / rows[1]['value']:.2f}x VBPR's epoch"
    return rows


def ete_images_per_second(args: argparse.Namespace, device: torch.device) -> dict:
    from elliot_visual.extraction.catalogue import get_backbone

    weights = "random" if get_backbone("resnet50").missing_weights() else "pretrained"
    n_items, n_users = 256, 64
    data = random_data(2_000, n_users, n_items, seed=2)
    images = torch.randint(0, 256, (n_items, 3, 224, 224), dtype=torch.uint8)
    params = ImgRecEtE.Params(backbone="resnet50", weights=weights, batch_size=args.ete_batch, factors=30)
    model = build_model(ImgRecEtE, params, n_users, n_items, {"images": images})
    model.training_stages()[1].enter()
    per_step, _ = time_steps(model, data, args.ete_steps, device)
    return {"measure": "ImgRecEtE stage 2 (images/s)", "device": device.type, "value": args.ete_batch / per_step,
            "note": f"ResNet50 ({weights} weights), batch {args.ete_batch}, 224 px, unfrozen from layer3.4.conv2"}


def sampled_evaluation(args: argparse.Namespace, device: torch.device) -> dict:
    data = random_data(args.eval_users * 8, args.eval_users, args.eval_items, seed=3)
    rng = np.random.default_rng(4)
    users_f = torch.from_numpy(rng.normal(size=(data.n_users, 30)).astype(np.float32)).to(device)
    items_f = torch.from_numpy(rng.normal(size=(data.n_items, 30)).astype(np.float32)).to(device)
    sampling = NegativeSampling(num_items=500, trials=1, exclude_all_held_out=True, auc="pairwise")
    metrics = build_metrics(Evaluation(cutoffs=[10], simple_metrics=["AUC", "HR", "nDCG"]))
    start = time.perf_counter()
    evaluate_sampled(lambda users: users_f[users] @ items_f.T, data, data.test, sampling, metrics, [10], 10, 0,
                     device=device)
    return {"measure": "1 + 500 evaluation (s)", "device": device.type, "value": time.perf_counter() - start,
            "note": f"{args.eval_users:,} users x {args.eval_items:,} items, 1 trial, AUC/HR/nDCG@10"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (100k interactions, 5k users)")
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per model (extrapolated to an epoch)")
    parser.add_argument("--ete-batch", type=int, default=32)
    parser.add_argument("--ete-steps", type=int, default=3)
    parser.add_argument("--eval-users", type=int, default=45_184)
    parser.add_argument("--eval-items", type=int, default=166_270)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--devices", default="cpu,cuda", help="comma-separated; cuda only when available")
    parser.add_argument("--only", default="epochs,ete,eval", help="comma-separated parts to run")
    args = parser.parse_args(argv)
    if args.quick:
        args.interactions, args.users, args.items, args.steps = 100_000, 5_000, 4_000, 10
        args.eval_users, args.eval_items, args.ete_steps, args.ete_batch = 5_000, 20_000, 2, 8
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device(d) for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]
    load_before = os.getloadavg()
    rows = []
    parts = set(args.only.split(","))
    for device in devices:
        if "epochs" in parts:
            rows += epochs(args, device)
            print(pd.DataFrame(rows[-2:]).to_string(index=False), flush=True)
        if "ete" in parts:
            rows.append(ete_images_per_second(args, device))
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
        if "eval" in parts:
            rows.append(sampled_evaluation(args, device))
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    table["value"] = table["value"].map(lambda v: f"{v:,.2f}")
    print(f"\nImgRec benchmark: {args.interactions:,} interactions, {args.users:,} users x {args.items:,} items, "
          f"{args.dim}-d features; torch threads {torch.get_num_threads()}; "
          f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
