"""VisDiv projection speed: the ``global`` map (scikit-learn vs openTSNE) and ``per_user`` (joblib vs a loop).

    python benchmarks/visdiv.py            # 10k / 50k / 100k items x 2048-d; 2,000 users at k=100
    python benchmarks/visdiv.py --quick    # 2k / 5k / 10k items; 200 users

``global``: PCA to 50 dimensions (randomized SVD, timed apart), then a 2-D t-SNE of the whole
catalogue with each implementation at the settings VisDiv uses for it (perplexity 30, 1000
iterations in all, learning rate ``auto``, PCA initialisation, seed 1234, every core).
scikit-learn is skipped above ``--sklearn-max`` items (default 50,000) when it would take too long.

``per_user``: the study's method for ``--users`` users with k=100 recommendations each: one
scikit-learn t-SNE per user over her positives and her top-k. "loop" is the reference tool's way
(sisinflab/Image-Feature-Extractor ``evaluate_visual_profile.py``: per user, filter the training
frame with pandas, then ``TSNE(...).fit_transform`` in a plain for-loop, OpenMP threads free);
"joblib" is :func:`VisDivEngine.compute` with ``projection: per_user`` (users spread over every
core, one thread each). Both use the same settings; the script checks they give the same values.
The loop runs ``--loop-users`` users (default 50 of the 2,000; all with ``--quick``) and its time
is scaled to all users (the per-user cost is flat), twice: with OpenMP threads free as the
reference ran (on a busy machine libgomp's spinning threads slow each small t-SNE many times
over) and held to one thread (the pure effect of spreading users over cores).

Item features are planted: 64 style centres in 2048-d plus noise (CNN features cluster by style;
pure noise would be an unrealistically hard t-SNE input).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elliot_visual.evaluation.metrics.visdiv import (TSNESettings, VisDivEngine, parse_options,  # noqa: E402
                                                     tsne_2d)

DIM = 2048
K = 100


def planted_features(n_items: int, seed: int = 0, n_styles: int = 64) -> np.ndarray:
    """(n_items, 2048) float32: style centre + noise, like ReLU-free CNN descriptors that cluster by style."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_styles, DIM)).astype(np.float32)
    styles = rng.integers(0, n_styles, size=n_items)
    out = np.empty((n_items, DIM), dtype=np.float32)
    for start in range(0, n_items, 10_000):  # in blocks: 100k x 2048 noise at once would double peak memory
        stop = min(start + 10_000, n_items)
        noise = rng.standard_normal((stop - start, DIM), dtype=np.float32)
        out[start:stop] = centres[styles[start:stop]] + 0.8 * noise
    return out


def time_global(sizes: list[int], sklearn_max: int, threads: int) -> list[dict]:
    rows = []
    for n in sizes:
        features = planted_features(n)
        pca_only = TSNESettings(pca_components=50)
        start = time.perf_counter()
        from sklearn.decomposition import PCA

        reduced = PCA(50, svd_solver="randomized", random_state=pca_only.seed).fit_transform(features)
        pca_s = time.perf_counter() - start
        del features
        for implementation in ("opentsne", "sklearn"):
            if implementation == "sklearn" and n > sklearn_max:
                rows.append({"items": n, "implementation": implementation, "pca_s": pca_s, "tsne_s": float("nan"),
                             "total_s": float("nan"), "note": f"skipped (> --sklearn-max {sklearn_max})"})
                continue
            settings = TSNESettings(learning_rate="auto", init="pca", implementation=implementation,
                                    pca_components=0, n_jobs=threads)
            start = time.perf_counter()
            tsne_2d(reduced, settings)
            tsne_s = time.perf_counter() - start
            rows.append({"items": n, "implementation": implementation, "pca_s": pca_s, "tsne_s": tsne_s,
                         "total_s": pca_s + tsne_s, "note": ""})
            print(f"  global {n:>7,} items {implementation:>8}: PCA {pca_s:7.1f} s + t-SNE {tsne_s:8.1f} s",
                  flush=True)
    return rows


def planted_users(n_users: int, n_items: int, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """A training frame (user, item) with ~15 positives per user (at least 5), and (n_users, K) top-k lists."""
    rng = np.random.default_rng(seed)
    counts = np.maximum(5, rng.poisson(15, size=n_users))
    users = np.repeat(np.arange(n_users), counts)
    items = np.concatenate([rng.choice(n_items, c, replace=False) for c in counts])
    top = np.stack([rng.choice(n_items, K, replace=False) for _ in range(n_users)])
    return pd.DataFrame({"user": users, "item": items}), top


def reference_loop(features: np.ndarray, training: pd.DataFrame, top: np.ndarray, settings: TSNESettings,
                   threads: int | None = None) -> np.ndarray:
    """The reference tool's per-user loop (pandas filter + one TSNE per user), same settings as ours.

    ``threads``: OpenMP threads per t-SNE (None: left free, as the reference tool ran).
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    out = np.empty(top.shape[0])
    with threadpool_limits(limits=threads):
        for u in range(top.shape[0]):
            pos = training[training["user"] == u]["item"].to_list()
            points = np.concatenate((features[pos], features[top[u]]), axis=0)
            xy = TSNE(n_components=2, perplexity=settings.perplexity, learning_rate=settings.learning_rate,
                      max_iter=settings.max_iter, init=settings.init,
                      random_state=settings.seed).fit_transform(points)
            out[u] = np.linalg.norm(xy[:len(pos)].mean(axis=0) - xy[len(pos):].mean(axis=0))
    return out


def time_per_user(n_users: int, n_items: int, loop_users: int) -> list[dict]:
    features = planted_features(n_items, seed=2)
    training, top = planted_users(n_users, n_items)
    # In training-row order, as the reference stacks them (t-SNE's random start depends on point order).
    positives = [group.to_numpy() for _, group in training.groupby("user", sort=True)["item"]]
    options = parse_options({"projection": "per_user", "n_jobs": -1})
    start = time.perf_counter()
    ours = VisDivEngine(options, features, np.arange(n_items).astype(str), progress=False).compute(positives, top, K)
    ours_s = time.perf_counter() - start
    print(f"  per_user {n_users:,} users joblib: {ours_s:8.1f} s", flush=True)
    timed = min(loop_users, n_users)
    rows = []
    for label, threads in (("loop (reference tool, OpenMP free)", None), ("loop, 1 OpenMP thread", 1)):
        start = time.perf_counter()
        loop = reference_loop(features, training, top[:timed], options.tsne(), threads)
        loop_s = (time.perf_counter() - start) * n_users / timed
        print(f"  per_user {n_users:,} users {label}: {loop_s:8.1f} s ({timed} users timed)", flush=True)
        diff = float(np.max(np.abs(loop - ours.per_user[:timed])))
        measured = "measured" if timed == n_users else f"{timed} users timed, x{n_users / timed:g}"
        rows.append({"users": n_users, "way": label, "seconds": loop_s, "per_user_ms": 1000 * loop_s / n_users,
                     "note": f"{measured}; max |loop - joblib| = {diff:.1e}; joblib x{loop_s / ours_s:.2f} faster"})
    rows.append({"users": n_users, "way": f"joblib (n_jobs=-1, {os.cpu_count()} cores)", "seconds": ours_s,
                 "per_user_ms": 1000 * ours_s / n_users, "note": f"measured; VisDiv {ours.value:.4f}"})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a minute or two)")
    parser.add_argument("--sklearn-max", type=int, default=50_000, help="largest catalogue timed with scikit-learn")
    parser.add_argument("--users", type=int, default=None, help="users for per_user (default 2000, quick 200)")
    parser.add_argument("--loop-users", type=int, default=None,
                        help="users timed with the reference loop, scaled to --users (default: all when quick, 50)")
    parser.add_argument("--threads", type=int, default=-1,
                        help="t-SNE threads for the global map (-1: every core; 1: stable timings on a shared machine)")
    parser.add_argument("--skip-global", action="store_true")
    parser.add_argument("--skip-per-user", action="store_true")
    args = parser.parse_args(argv)
    sizes = [2_000, 5_000, 10_000] if args.quick else [10_000, 50_000, 100_000]
    users = args.users or (200 if args.quick else 2_000)
    print(f"machine: {os.cpu_count()} cores; load average at start {os.getloadavg()[0]:.1f}", flush=True)
    import openTSNE
    import sklearn

    print(f"scikit-learn {sklearn.__version__}, openTSNE {openTSNE.__version__}", flush=True)
    if not args.skip_global:
        table = pd.DataFrame(time_global(sizes, args.sklearn_max, args.threads))
        print(f"\nglobal projection (2048-d -> PCA 50 -> t-SNE 2-D; t-SNE threads: {args.threads})")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    if not args.skip_per_user:
        loop_users = args.loop_users or (users if args.quick else 50)
        table = pd.DataFrame(time_per_user(users, 10_000, loop_users))
        print(f"\nper_user projection ({users:,} users, k={K}, ~15 positives each, 2048-d, 10,000 items)")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
