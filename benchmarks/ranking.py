"""Full-ranking evaluation time against the bare score matmul (scores = U @ V.T), same machine.

    python -m benchmarks.ranking                       # from the repo root: 20k x 20k x 64, CPU
    python -m benchmarks.ranking --device cuda --k 10 100

Each user has ``--train`` train items (masked) and 1..``--held-out`` held-out items (relevant).
Rows: the bare matmul over all users in batches; ``rank`` (matmul + train mask + top-k with the
lower-index tie order); ``rank`` + full-rank positions of the held-out items (what AUC/GAUC
need); the metric step alone (RankingContext + Recall + nDCG). Ratios are to the bare matmul.
Times are the best of ``--repeats`` runs.

A second table times one BPR-MF training epoch (the project's one training loop: sampler, loss,
Adam step) on a synthetic set of ``--bpr-interactions`` train pairs (default 1M), 64 factors.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from elliot_visual.data.interactions import Interactions
from elliot_visual.evaluation.metrics.base import RankingContext
from elliot_visual.evaluation.ranking import rank
from elliot_visual.registry import METRICS


def synthetic_split(n_users: int, n_items: int, n_train: int, max_held_out: int, seed: int) -> Interactions:
    """Every user: ``n_train`` train items and 1..max_held_out other held-out items.

    A user's items are an arithmetic progression modulo n_items with a random start and a prime
    stride that does not divide n_items, so they are distinct without sorting a users x items matrix.
    """
    rng = np.random.default_rng(seed)
    per_user = n_train + max_held_out
    primes = np.array([p for p in range(7, 2000) if all(p % d for d in range(2, int(p ** 0.5) + 1))
                       and n_items % p])
    starts = rng.integers(0, n_items, n_users)[:, None]
    strides = rng.choice(primes, n_users)[:, None]
    items = (starts + strides * np.arange(per_user)[None, :]) % n_items
    held_counts = rng.integers(1, max_held_out + 1, n_users)
    users = np.repeat(np.arange(n_users), n_train)
    train = pd.DataFrame({"user": users.astype(str), "item": items[:, :n_train].ravel().astype(str), "rating": 1.0})
    # one extra user holding every item, so that the catalogue is all n_items (ids in index order)
    catalogue = pd.DataFrame({"user": "catalogue", "item": np.arange(n_items).astype(str), "rating": 1.0})
    held_mask = np.arange(max_held_out)[None, :] < held_counts[:, None]
    held_users = np.repeat(np.arange(n_users)[:, None], max_held_out, axis=1)[held_mask]
    test = pd.DataFrame({"user": held_users.astype(str), "item": items[:, n_train:][held_mask].astype(str),
                         "rating": 1.0})
    return Interactions.from_frames("benchmark", pd.concat([catalogue, train]), test)


def best_time(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--k", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--train", type=int, default=20, help="train items per user")
    parser.add_argument("--held-out", type=int, default=5, help="at most this many held-out items per user")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: the package's default)")
    parser.add_argument("--bpr-interactions", type=int, default=1_000_000)
    parser.add_argument("--bpr-batch-size", type=int, default=2048)
    parser.add_argument("--skip-ranking", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_ranking:
        ranking_table(args)
    if args.bpr_interactions > 0:  # 0 skips the training table
        bprmf_epoch_table(args)


def bprmf_epoch_table(args: argparse.Namespace) -> None:
    """Seconds per BPR-MF epoch through ``training.loop.train`` (sampling included)."""
    from elliot_visual.models.base import build_model
    from elliot_visual.models.bprmf import BPRMF
    from elliot_visual.training.loop import TrainingConfig, train

    n_train = 20
    n_users = args.bpr_interactions // n_train
    data = synthetic_split(n_users, args.items, n_train, 1, seed=1)
    params = BPRMF.Params(epochs=1, batch_size=args.bpr_batch_size, factors=args.factors, lr=0.001)
    device = torch.device(args.device)
    times = []
    for _ in range(args.repeats):
        model = build_model(BPRMF, params, data.n_users, data.n_items)
        start = time.perf_counter()
        train(model, data, TrainingConfig(device=device, progress=False))
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    batches = data.transactions // args.bpr_batch_size
    print(f"\n# BPR-MF epoch: {data.n_users} users x {data.n_items} items, {data.transactions} train pairs, "
          f"{args.factors} factors, batch {args.bpr_batch_size} ({batches} batches), device {device}")
    print(f"{'step':<44} {'seconds':>9} {'pairs/s':>12}")
    print(f"{'one epoch (sample + loss + Adam step)':<44} {min(times):9.3f} {data.transactions / min(times):12.0f}")


def ranking_table(args: argparse.Namespace) -> None:
    """Full-ranking evaluation time against the bare matmul (the issue's 2x goal)."""
    device = torch.device(args.device)

    data = synthetic_split(args.users, args.items, args.train, args.held_out, seed=0)
    generator = torch.Generator().manual_seed(0)
    user_factors = torch.randn(data.n_users, args.factors, generator=generator).to(device)
    item_factors = torch.randn(data.n_items, args.factors, generator=generator).to(device)

    def score(users: torch.Tensor) -> torch.Tensor:
        return user_factors[users] @ item_factors.T

    def bare_matmul() -> None:
        with torch.no_grad():
            for start in range(0, data.n_users, args.batch_size):
                users = torch.arange(start, min(start + args.batch_size, data.n_users), device=device)
                score(users)

    relevance = data.test.relevance(data.n_users, data.n_items, 0)
    base = best_time(bare_matmul, args.repeats, device)
    print(f"# {data.n_users} users x {data.n_items} items x {args.factors} factors, device {device}, "
          f"{torch.get_num_threads()} CPU threads, batch {args.batch_size}, "
          f"{data.transactions} train pairs, {relevance.nnz} held-out relevant pairs")
    print(f"{'step':<44} {'seconds':>9} {'x matmul':>9}")
    print(f"{'bare matmul U @ V.T':<44} {base:9.3f} {1.0:9.2f}")
    for k in args.k:
        plain = best_time(lambda: rank(score, data, k, batch_size=args.batch_size, device=device),
                          args.repeats, device)
        print(f"{f'rank top-{k} (mask + topk)':<44} {plain:9.3f} {plain / base:9.2f}")
        top = rank(score, data, k, batch_size=args.batch_size, device=device, relevant=relevance)
        with_positions = best_time(lambda: rank(score, data, k, batch_size=args.batch_size, device=device,
                                                relevant=relevance), args.repeats, device)
        print(f"{f'rank top-{k} + full-rank positions (AUC)':<44} {with_positions:9.3f} "
              f"{with_positions / base:9.2f}")

        def metrics() -> None:
            ctx = RankingContext.build(data, data.test, top, 0, relevance=relevance)
            METRICS.get("Recall")().compute(ctx, k)
            METRICS.get("nDCG")().compute(ctx, k)

        cost = best_time(metrics, args.repeats, device)
        print(f"{f'Recall@{k} + nDCG@{k} (context + 2 metrics)':<44} {cost:9.3f} {cost / base:9.2f}")


if __name__ == "__main__":
    main()
