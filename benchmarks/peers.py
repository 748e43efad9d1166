"""VBPR and BPR-MF against Cornac on the same data and hyperparameters: epoch time, triples/s, Recall@20.

    python -m benchmarks.peers                    # both tables (Cornac rows skipped when not installed)
    python -m benchmarks.peers --only vbpr --epochs 10
    python -m benchmarks.peers --only bprmf       # needs the real Baby split (see below)

* **VBPR** on a planted synthetic split (``data.synthetic``: 2,000 users x 2,000 items, 512-d
  features, 20 interactions per user, the last 2 of each user held out), batch 256, k = 64,
  k2 = 20, lr 0.001, lambdas 1e-5 / 0 / 1e-5, ``--epochs`` epochs on both sides. Ours runs through
  the package's training loop with Elliot's dense Adam (``adam``) and with ``lazy_adam``;
  Cornac's ``VBPR`` has its own torch loop (dense Adam).
* **BPR-MF** on the real Amazon Baby 5-core split of MMRec/LATTICE, read from
  ``data/amazon_baby_5core`` (or ``--baby``): ours is the whole shipped experiment
  ``config_files/amazon_baby_5core_bprmf.yml`` (MostPop + a 2-point ``l_w`` grid on validation
  with early stopping, lazy Adam), timed end to end; Cornac's compiled ``BPR`` (SGD, 80 epochs,
  k = 64, lr 0.05, lambda 0.01: its usual settings) is timed over fit + the same test ranking.

Recall@20 is computed for both sides by the package's evaluator (full ranking, train items
masked, Elliot's Recall), from each model's own scores. Both sides run on the same torch threads
(``--threads``, default 1); times are wall seconds measured in this one run, with ``uptime``.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from elliot_visual.config.schema import Evaluation
from elliot_visual.data.interactions import Interactions
from elliot_visual.data.synthetic import make_planted_dataset
from elliot_visual.evaluation.evaluator import evaluate
from elliot_visual.models.base import build_model
from elliot_visual.models.vbpr import VBPR
from elliot_visual.training.loop import TrainingConfig, train

ROOT = Path(__file__).resolve().parents[1]
RECALL = Evaluation(cutoffs=[20], simple_metrics=["Recall"])
CORNAC = importlib.util.find_spec("cornac") is not None
SKIP = "skipped: Cornac is not installed (pip install cornac)"


def recall_at_20(score_fn, data: Interactions) -> float:
    return evaluate(score_fn, data, "test", RECALL, 20).values[20]["Recall"]


def planted_split(seed: int) -> tuple[Interactions, np.ndarray]:
    planted = make_planted_dataset(n_users=2000, n_items=2000, feature_dim=512, interactions_per_user=20,
                                   seed=seed, n_styles=16)
    frame = planted.interactions.sort_values(["user", "timestamp"])
    last = frame.groupby("user").cumcount(ascending=False) < 2
    data = Interactions.from_frames("planted", frame[~last], frame[last], extra_items=planted.item_ids)
    order = {item: n for n, item in enumerate(planted.item_ids)}
    features = planted.features[[order[i] for i in data.item_ids]].astype(np.float32)
    return data, features


def vbpr_rows(epochs: int, seed: int) -> list[dict]:
    data, features = planted_split(seed)
    rows = []
    params = VBPR.Params(epochs=epochs, batch_size=256, factors=64, factors_d=20, lr=0.001, l_w=1e-5, l_b=0,
                         l_e=1e-5, seed=seed)
    for optimizer in ("adam", "lazy_adam"):
        model = build_model(VBPR, params, data.n_users, data.n_items, {"visual_features": torch.from_numpy(features)})
        start = time.perf_counter()
        train(model, data, TrainingConfig(progress=False, optimizer=optimizer))
        fit = time.perf_counter() - start
        with torch.no_grad():
            recall = recall_at_20(model.score, data)
        rows.append(_row(f"elliot_visual VBPR ({optimizer})", fit, time.perf_counter() - start, epochs,
                         data.transactions, recall))
    rows.append(_cornac_vbpr(data, features, epochs, seed) if CORNAC else {"run": "Cornac VBPR", "note": SKIP})
    return rows


def _cornac_vbpr(data: Interactions, features: np.ndarray, epochs: int, seed: int) -> dict:
    import cornac
    from cornac.data import ImageModality

    users, items = data.train.nonzero()
    triples = list(zip(data.user_ids[users], data.item_ids[items], np.ones(len(users))))
    start = time.perf_counter()
    image = ImageModality(features=features, ids=list(data.item_ids), normalized=False)
    train_set = cornac.data.Dataset.from_uir(triples, seed=seed)
    train_set.add_modalities(item_image=image)
    model = cornac.models.VBPR(k=64, k2=20, n_epochs=epochs, batch_size=256, learning_rate=0.001, lambda_w=1e-5,
                               lambda_b=0, lambda_e=1e-5, use_gpu=False, seed=seed, verbose=False)
    model.fit(train_set)
    fit = time.perf_counter() - start
    recall = recall_at_20(_cornac_scores(model, train_set, data), data)
    return _row("Cornac VBPR (dense Adam)", fit, time.perf_counter() - start, epochs, data.transactions, recall)


def _cornac_scores(model, train_set, data: Interactions):
    """score_fn over our dense indices from a fitted Cornac model (its own user/item numbering)."""
    user_map = np.array([train_set.uid_map[u] for u in data.user_ids])
    item_map = np.array([train_set.iid_map.get(i, -1) for i in data.item_ids])
    known = item_map >= 0

    def score(users: torch.Tensor) -> torch.Tensor:
        out = np.full((len(users), data.n_items), -np.inf, dtype=np.float32)
        for row, u in enumerate(users.tolist()):
            out[row, known] = model.score(int(user_map[u]))[item_map[known]]
        return torch.from_numpy(out)

    return score


def bprmf_rows(baby: Path, seed: int) -> list[dict]:
    from elliot_visual.data.readers import read_mmrec_split
    from elliot_visual.experiment import run_experiment

    if not (baby / "train.json").is_file():
        return [{"run": "BPR-MF on Baby", "note": f"skipped: no MMRec Baby split at {baby} (see the config's header)"}]
    train_frame, validation, test = read_mmrec_split(baby)
    data = Interactions.from_frames("baby", train_frame, test, validation=validation)
    rows = []
    config = ROOT / "config_files" / "amazon_baby_5core_bprmf.yml"
    start = time.perf_counter()
    summary = run_experiment(config)
    whole = time.perf_counter() - start
    for outcome in summary.outcomes:
        trained = sum(len(t.history) for trial in outcome.trials for t in trial.training)
        rows.append({"run": f"elliot_visual {outcome.best.name.split('_')[0]} (whole config: "
                            f"{len(outcome.trials)} trial(s), {trained} epochs)",
                     "whole run s": round(whole, 1) if outcome is summary.outcomes[-1] else None,
                     "Recall@20": round(outcome.best.test.values[20]["Recall"], 4)})
    if not CORNAC:
        return rows + [{"run": "Cornac BPR", "note": SKIP}]
    import cornac

    users, items = data.train.nonzero()
    triples = list(zip(data.user_ids[users], data.item_ids[items], np.ones(len(users))))
    start = time.perf_counter()
    train_set = cornac.data.Dataset.from_uir(triples, seed=seed)
    model = cornac.models.BPR(k=64, max_iter=80, learning_rate=0.05, lambda_reg=0.01, seed=seed, verbose=False)
    model.fit(train_set)
    fit = time.perf_counter() - start
    recall = recall_at_20(_cornac_scores(model, train_set, data), data)
    rows.append(_row("Cornac BPR (SGD, 80 epochs)", fit, time.perf_counter() - start, 80, data.transactions, recall))
    rows[-1]["whole run s"] = rows[-1].pop("end to end s")
    return rows


def _row(run: str, fit: float, whole: float, epochs: int, transactions: int, recall: float) -> dict:
    return {"run": run, "s/epoch": round(fit / epochs, 2), "triples/s": round(transactions * epochs / fit),
            "end to end s": round(whole, 1), "Recall@20": round(recall, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["vbpr", "bprmf"])
    parser.add_argument("--epochs", type=int, default=10, help="VBPR epochs (both sides)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--baby", type=Path, default=ROOT / "data" / "amazon_baby_5core")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"torch {torch.__version__}, {args.threads} thread(s); Cornac: "
          f"{'installed' if CORNAC else 'not installed'}; uptime: {uptime}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        if args.only in (None, "vbpr"):
            print(f"\nVBPR, planted 2000 x 2000, 512-d, batch 256, {args.epochs} epochs")
            print(pd.DataFrame(vbpr_rows(args.epochs, args.seed)).astype(object).fillna("").to_string(index=False))
        if args.only in (None, "bprmf"):
            print("\nBPR-MF, Amazon Baby 5-core (MMRec split), test Recall@20")
            print(pd.DataFrame(bprmf_rows(args.baby, args.seed)).astype(object).fillna("").to_string(index=False))
    print(f"\nuptime after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
