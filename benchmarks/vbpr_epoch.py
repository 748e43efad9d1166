"""VBPR training speed: one epoch on a 1M-interaction set with 2048-d features, CPU and GPU.

    python -m benchmarks.vbpr_epoch                          # full epochs on CPU (and CUDA if present)
    python -m benchmarks.vbpr_epoch --steps 400 --devices cpu # time 400 steps, extrapolate to an epoch

Three ways to compute the same BPR loss, each in its own process (so peak memory is its own):

* ``elliot-order``: Elliot's order of work, x_ui and x_uj each scored in full: f_i E, f_j E,
  f_i·β', f_j·β' (four products per batch over the F features);
* ``all-items``: project every item once per step (E f for the catalogue), then gather, the
  usual way of "precomputing" the visual term (cheap when n_items < 2 * batch);
* ``ours+adam``: elliot_visual's VBPR loss: the visual term is linear in f, so x_uij's visual
  part is (f_i − f_j)[E | β'], one (B x F)(F x (d+1)) product; rows gathered with index_select;
* ``ours``: the same with the training loop's default optimiser (``meta.optimizer: adam``), Adam
  with torch's fused kernel (the same update rule; on large embedding tables the dense Adam step
  otherwise dominates a step);
* ``ours+lazy_adam``: the same with ``meta.optimizer: lazy_adam``: sparse row gradients, only the
  batch's embedding rows updated (a different optimiser from Elliot's dense Adam).

The first three use torch's default Adam, as a plain training loop would.

All three give the same loss (checked on the first batch). Batches come from the package's BPR
sampler (Elliot's scheme: ``transactions // batch_size`` batches per epoch, vectorised sampling);
its time is included, and reported alone as ``sampler``. ``epoch s`` is wall time; ``cpu s/epoch``
the process's CPU time (all its threads), the figure to read on a shared, loaded machine. Peak
memory is the process's peak RSS on the CPU and ``torch.cuda.max_memory_allocated`` on the GPU.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import Tensor

from elliot_visual.data.interactions import HeldOut, Interactions
from elliot_visual.data.samplers import BPRSampler, Triples
from elliot_visual.models.base import build_model
from elliot_visual.models.pairwise import bpr_loss, l2
from elliot_visual.models.vbpr import VBPR
from elliot_visual.training.optimizers import build_optimizer

# (loss, optimizer): "adam" is torch's default Adam (what a plain loop builds), "fused" the fused
# kernel the training loop's default ``adam`` selects (same update rule), "lazy_adam" the opt-in
# sparse optimizer (training/optimizers.py: only the batch's embedding rows are updated).
VARIANTS = {"elliot-order": ("elliot-order", "adam"), "all-items": ("all-items", "adam"),
            "ours+adam": ("ours", "adam"), "ours": ("ours", "fused"), "ours+lazy_adam": ("ours", "lazy_adam")}


def synthetic(n_interactions: int, n_users: int, n_items: int, dim: int, seed: int) -> tuple[Interactions, Tensor]:
    """Random implicit data (popularity-skewed items) and non-negative float32 features (n_items, dim)."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, int(n_interactions * 1.05))
    items = np.minimum((rng.pareto(1.2, len(users)) * n_items / 20).astype(np.int64), n_items - 1)
    items = rng.permutation(n_items)[items]
    pairs = np.unique(users * n_items + items)[:n_interactions]
    train = sp.csr_matrix((np.ones(len(pairs), np.float32), (pairs // n_items, pairs % n_items)),
                          shape=(n_users, n_items))
    empty = HeldOut(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0))
    data = Interactions("bench", np.arange(n_users).astype(str).astype(object),
                        np.arange(n_items).astype(str).astype(object), train, empty, train_frame=pd.DataFrame())
    features = torch.from_numpy(np.abs(rng.normal(size=(n_items, dim))).astype(np.float32))
    return data, features


def loss_elliot_order(model: VBPR, batch: Triples) -> Tensor:
    p = model.params
    u, i, j = batch.users, batch.pos, batch.neg
    gu, gi, gj, tu = model.Gu[u], model.Gi[i], model.Gi[j], model.Tu[u]
    fi, fj = model.features[i], model.features[j]
    x_ui = model.Bi[i] + (gu * gi).sum(1) + (tu * (fi @ model.E)).sum(1) + (fi @ model.Bp).squeeze(1)
    x_uj = model.Bi[j] + (gu * gj).sum(1) + (tu * (fj @ model.E)).sum(1) + (fj @ model.Bp).squeeze(1)
    reg = p.l_w * l2(gu, gi, gj, tu) + p.l_b * l2(model.Bi[i]) + p.l_b * l2(model.Bi[j]) / 10 \
        + p.l_e * l2(model.E, model.Bp)
    return bpr_loss(x_ui - x_uj) + reg


def loss_all_items(model: VBPR, batch: Triples) -> Tensor:
    p = model.params
    u, i, j = batch.users, batch.pos, batch.neg
    visual = model.features @ torch.cat([model.E, model.Bp], 1)          # every item, every step
    gu, gi, gj, tu = model.Gu[u], model.Gi[i], model.Gi[j], model.Tu[u]
    diff = visual[i] - visual[j]
    x_uij = model.Bi[i] - model.Bi[j] + (gu * (gi - gj)).sum(1) + (tu * diff[:, :-1]).sum(1) + diff[:, -1]
    reg = p.l_w * l2(gu, gi, gj, tu) + p.l_b * l2(model.Bi[i]) + p.l_b * l2(model.Bi[j]) / 10 \
        + p.l_e * l2(model.E, model.Bp)
    return bpr_loss(x_uij) + reg


LOSSES = {"elliot-order": loss_elliot_order, "all-items": loss_all_items, "ours": VBPR.loss}


def run_variant(args: argparse.Namespace) -> dict:
    """Train ``args.variant`` for one epoch (or ``args.steps`` steps) and report its time and peak memory."""
    device = torch.device(args.device)
    data, features = synthetic(args.interactions, args.users, args.items, args.dim, seed=0)
    params = VBPR.Params(batch_size=args.batch_size, factors=64, factors_d=20, lr=0.001, l_w=1e-5, l_b=0)
    model = build_model(VBPR, params, data.n_users, data.n_items, {"visual_features": features}).to(device)
    loss_name, optimizer_name = VARIANTS[args.variant]
    optimizer = torch.optim.Adam(model.parameters(), lr=float(params.lr)) if optimizer_name == "adam" else \
        build_optimizer(model, "adam" if optimizer_name == "fused" else optimizer_name)
    sampler = BPRSampler(data, args.batch_size, seed=0)
    loss_fn = LOSSES[loss_name]
    first = sampler.sample(args.batch_size).to(device)
    reference = float(VBPR.loss(model, first))
    assert abs(float(loss_fn(model, first)) - reference) <= 1e-3 * max(1.0, abs(reference)), "losses differ"
    steps = sampler.batches_per_epoch() if args.steps <= 0 else min(args.steps, sampler.batches_per_epoch())
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _, batch in zip(range(steps), sampler.epoch()):
        batch = batch.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model, batch).backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    sampling_start = time.perf_counter()
    for _, _batch in zip(range(steps), BPRSampler(data, args.batch_size, seed=1).epoch()):
        pass
    sampling = time.perf_counter() - sampling_start
    scale = sampler.batches_per_epoch() / steps
    return {"variant": args.variant, "optimizer": optimizer_name, "device": str(device), "batch": args.batch_size, "steps timed": steps,
            "epoch s": round(elapsed * scale, 1), "cpu s/epoch": round(cpu * scale, 1),
            "steps/s": round(steps / elapsed, 1),
            "sampler s/epoch": round(sampling * scale, 2), "peak MiB": round(peak / 2 ** 20)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--steps", type=int, default=0, help="time this many steps and extrapolate (0: full epoch)")
    parser.add_argument("--devices", default="cpu,cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--device", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.variant:  # child process: one measurement, printed as JSON
        args.batch_size = args.batch_size[0]
        print(json.dumps(run_variant(args)))
        return
    devices = [d for d in args.devices.split(",") if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]
    rows = []
    for device in devices:
        for batch in args.batch_size:
            for variant in VARIANTS:
                command = [sys.executable, "-m", "benchmarks.vbpr_epoch", "--variant", variant, "--device", device,
                           "--batch-size", str(batch), "--steps", str(args.steps), "--interactions",
                           str(args.interactions), "--users", str(args.users), "--items", str(args.items),
                           "--dim", str(args.dim), "--threads", str(args.threads)]
                out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(f"\nVBPR, {args.interactions:,} interactions, {args.users:,} users x {args.items:,} items, "
          f"{args.dim}-d features (torch {torch.__version__}, {torch.get_num_threads()} CPU threads)")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
