"""VNPR's full-ranking pass against a bare batched MLP forward over the same user-item pairs.

    python -m benchmarks.vnpr_score                     # Baby's catalogue (7,050 items), the study's MLP
    python -m benchmarks.vnpr_score --users 512 --threads 2

``bare MLP forward``: both towers' dense layers over every (user, item) pair of ``--users`` users
and the whole catalogue, with the (pairs, k + P) inputs ALREADY built (their construction is not
timed), in blocks of pairs: the arithmetic the scores need and nothing else. ``VNPR.score``: the
model's own scoring of the same users (what the evaluator calls). The ratio is the figure to read;
the extrapolation to all of Baby's 19,445 users is the ``score`` time scaled linearly.
"""
from __future__ import annotations

import argparse
import subprocess
import time

import torch

from elliot_visual.models.base import build_model
from elliot_visual.models.vnpr import VNPR

BABY_USERS = 19_445


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--items", type=int, default=7050)
    parser.add_argument("--pca", type=int, default=128)
    parser.add_argument("--mf-factors", type=int, default=64)
    parser.add_argument("--mlp", default="(128, 64, 1)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    features = torch.rand(args.items, args.pca, generator=torch.Generator().manual_seed(0))
    params = VNPR.Params(mf_factors=args.mf_factors, mlp_hidden_size=args.mlp)
    model = build_model(VNPR, params, args.users, args.items, {"visual_pca_features": features}).eval()
    users = torch.arange(args.users)
    pair_block = 65_536
    with torch.inference_mode():
        inputs = []
        for tower, items in model._towers():
            x = torch.cat([model.U_MF[:, None] * items[None], model.U_V[:, None] * features[None]], 2)
            inputs.append((tower, x.reshape(-1, x.shape[-1])))

        def bare() -> None:
            for tower, x in inputs:
                for start in range(0, x.shape[0], pair_block):
                    h = x[start:start + pair_block]
                    for layer in tower:
                        h = torch.relu(layer(h))

        def score() -> None:
            model.score(users)

        bare_s, score_s = best_of(bare, args.repeats), best_of(score, args.repeats)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"VNPR scoring: {args.users} users x {args.items} items, mf {args.mf_factors}, PCA {args.pca}, "
          f"MLP {params.mlp_hidden_size}, 2 towers, {args.threads} thread(s); uptime: {uptime}")
    print(f"{'pass':<28} {'seconds':>9} {'x bare':>7} {'Baby, all users (min)':>22}")
    for label, seconds in (("bare MLP forward", bare_s), ("VNPR.score", score_s)):
        print(f"{label:<28} {seconds:>9.3f} {seconds / bare_s:>7.2f} {seconds * BABY_USERS / args.users / 60:>22.1f}")


if __name__ == "__main__":
    main()
