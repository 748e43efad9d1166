"""One training step (sample, loss, backward, optimizer step) under each thread count and optimizer.

    python -m benchmarks.train_step                  # VBPR and BPR-MF, 1 thread vs one per core,
                                                     # alone and beside one busy process
    python -m benchmarks.train_step --steps 50 --no-busy

Why: a step of these models is a few MFLOP, so its cost is kernel-call overhead and, with several
intra-op threads, the time worker threads wait for a core another process holds. Torch's default
(one thread per core) collapses on a shared machine; ``threads: 1`` (the package's default) does
not. ``lazy_adam`` (``meta.optimizer``) updates only the batch's embedding rows, so its step no
longer grows with the catalogue, unlike Elliot's dense Adam (``adam``, the default).

Each row is the median step time in ms over ``--steps`` steps after warm-up, measured in this one
process (thread counts switched with ``torch.set_num_threads``); ``busy`` rows run while a second
process spins a core (``while True: pass``), which this script starts and stops itself. Read the
ratios: the absolute numbers move with whatever else the machine runs (``uptime`` is printed).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp
import torch

from elliot_visual.data.interactions import HeldOut, Interactions
from elliot_visual.data.samplers import BPRSampler
from elliot_visual.models.base import Recommender, build_model
from elliot_visual.models.bprmf import BPRMF
from elliot_visual.models.vbpr import VBPR
from elliot_visual.training.optimizers import build_optimizer


def random_train(n_users: int, n_items: int, per_user: int, seed: int = 0) -> Interactions:
    """A split whose train part has ``per_user`` distinct random items per user (no held-out rows)."""
    rng = np.random.default_rng(seed)
    cols = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :per_user] if n_items <= 4096 else \
        np.stack([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    rows = np.repeat(np.arange(n_users), per_user)
    train = sp.csr_matrix((np.ones(rows.shape[0], np.float32), (rows, cols.ravel())), shape=(n_users, n_items))
    empty = np.zeros(0, dtype=np.int64)
    return Interactions(name="random", user_ids=np.arange(n_users).astype(str).astype(object),
                        item_ids=np.arange(n_items).astype(str).astype(object), train=train,
                        test=HeldOut(users=empty, items=empty, item_ids=np.zeros(0, dtype=object),
                                     ratings=np.zeros(0)))


def cases() -> list[tuple[str, type[Recommender], object, int, int, int, dict]]:
    """(label, model, params, users, items, batch, features); the issue's VBPR and the Baby-sized BPR-MF."""
    features = {"visual_features": torch.rand(2000, 512, generator=torch.Generator().manual_seed(0))}
    return [
        ("VBPR 2000x2000, 512-d, batch 256", VBPR,
         VBPR.Params(batch_size=256, factors=64, factors_d=20, lr=0.001, l_w=1e-5), 2000, 2000, 256, features),
        ("BPR-MF 19445x7050, 64 f, batch 2048", BPRMF,
         BPRMF.Params(batch_size=2048, factors=64, lr=0.005, l_w=1e-5), 19445, 7050, 2048, {}),
    ]


@contextmanager
def busy_process(enabled: bool) -> Iterator[None]:
    """A second process spinning one core while the block runs (stopped by its own handle)."""
    if not enabled:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        spinner.kill()
        spinner.wait()


def step_ms(model: Recommender, optimizer: torch.optim.Optimizer, sampler: BPRSampler, steps: int) -> float:
    batches = sampler.epoch()
    times = []
    for n in range(steps + 5):
        start = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            batches = sampler.epoch()
            batch = next(batches)
        optimizer.zero_grad(set_to_none=True)
        model.loss(batch).backward()
        optimizer.step()
        if n >= 5:
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--no-busy", action="store_true", help="skip the rows beside a busy process")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"torch {torch.__version__}, {cores} cores; median ms per step over {args.steps} steps\n")
    print(f"{'case':<38} {'optimizer':<10} {'threads':>7} {'busy':>5} {'ms/step':>9} {'x best':>7}")
    for label, cls, params, n_users, n_items, batch, features in cases():
        train = random_train(n_users, n_items, per_user=6)
        rows = []
        for busy in ([False] if args.no_busy else [False, True]):
            with busy_process(busy):
                for optimizer_name in ("adam", "lazy_adam"):
                    for threads in sorted({1, cores}):
                        torch.set_num_threads(threads)
                        model = build_model(cls, params, n_users, n_items, features)
                        optimizer = build_optimizer(model, optimizer_name)
                        sampler = BPRSampler(train, batch, seed=0)
                        rows.append((optimizer_name, threads, busy, step_ms(model, optimizer, sampler, args.steps)))
        best = min(r[3] for r in rows)
        for optimizer_name, threads, busy, ms in rows:
            print(f"{label:<38} {optimizer_name:<10} {threads:>7} {'yes' if busy else 'no':>5} {ms:>9.2f} "
                  f"{ms / best:>7.1f}")
    torch.set_num_threads(cores)


if __name__ == "__main__":
    main()
