"""The per-transaction protocol at real scale: grouping, rolling profiles, candidates, VisRank and Random.

    python benchmarks/transactions.py                 # ../shared/data/amazon_egcf_2018/amazon_men (timestamps)
    python benchmarks/transactions.py --one-of-a-kind

The 2018 Amazon Men split (train + validation + test, 3,218 users, 7,605 items, ~60k purchases with
day-resolution timestamps) has no image features, so items get planted 1,024-d vectors (style centre
plus noise): the timings do not depend on what the features mean. Prints one row per step with its
wall time and the machine's load (``uptime``), to quote as ratios within one run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elliot_visual.config.schema import Evaluation, Transactions  # noqa: E402
from elliot_visual.data.interactions import Interactions  # noqa: E402
from elliot_visual.evaluation.evaluator import build_metrics  # noqa: E402
from elliot_visual.evaluation.transactions import evaluate_transactions, transaction_view  # noqa: E402
from elliot_visual.features.store import train_positives  # noqa: E402
from elliot_visual.models.base import build_model  # noqa: E402
from elliot_visual.models.random import Random  # noqa: E402
from elliot_visual.models.visrank import VisRank  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon_egcf_2018" / "amazon_men"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--one-of-a-kind", action="store_true")
    parser.add_argument("--window", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: {args.data} is absent (the project's shared data folder; --data names another)")
        return
    torch.set_num_threads(args.threads)
    parts = [pd.read_csv(args.data / name, sep="\t", header=None, names=["user", "item", "rating", "timestamp"])
             for name in ("trainingset.tsv", "validationset.tsv", "testset.tsv")]
    events = pd.concat(parts, ignore_index=True)
    data = Interactions.from_frames("men", events, events.iloc[:0])
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(32, 1024)).astype(np.float32)
    features = torch.from_numpy(centres[rng.integers(0, 32, data.n_items)]
                                + rng.normal(size=(data.n_items, 1024)).astype(np.float32))
    metrics = build_metrics(Evaluation(simple_metrics=["Recall", "Precision", "F1", "MAP", "MRR", "nDCG"]))
    rows = []
    start = time.perf_counter()
    view = transaction_view(data, Transactions(window=args.window, one_of_a_kind=args.one_of_a_kind))
    rows.append(("transaction view", time.perf_counter() - start, f"{view.profiles.n_users:,} evaluated, "
                 f"{view.skipped:,} skipped, {len(view.log):,} transactions of {len(events):,} purchases"))
    for name, model in (
            ("VisRank (max)", build_model(VisRank, VisRank.Params(), view.profiles.n_users, data.n_items,
                                          {"visual_features": features,
                                           "train_positives": train_positives(view.profiles)})),
            ("Random", build_model(Random, Random.Params(), view.profiles.n_users, data.n_items))):
        start = time.perf_counter()
        result = evaluate_transactions(model, view, metrics, [20], 20)
        rows.append((name, time.perf_counter() - start, f"Recall@20 {result.values[20]['Recall']:.4f}"))
    print(f"amazon_men: {data.n_users:,} users, {data.n_items:,} items; one_of_a_kind={args.one_of_a_kind}, "
          f"window={args.window:g}s, {args.threads} torch thread(s); load: {os.getloadavg()[0]:.2f}")
    print(f"| step | seconds | |\n|---|---|---|")
    for step, seconds, note in rows:
        print(f"| {step} | {seconds:.2f} | {note} |")


if __name__ == "__main__":
    main()
