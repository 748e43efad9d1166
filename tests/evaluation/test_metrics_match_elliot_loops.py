"""The vectorised metrics against a plain per-user loop transcription of Elliot's definitions.

The loops below read like elliot-semantics.md §4: dict-of-lists recommendations (public ids),
a test dict over train users that keeps items outside the catalogue, the full-length list for
AUC/GAUC with the masked train items at its tail. Random data with graded ratings, tied scores,
cold users (few candidates) and out-of-catalogue test items exercise every edge at once.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from elliot_visual.config.schema import Evaluation
from elliot_visual.data.interactions import Interactions
from elliot_visual.evaluation.evaluator import evaluate

METRIC_NAMES = ["Precision", "Recall", "F1", "HR", "MRR", "MAP", "nDCG", "AUC", "GAUC", "LAUC", "ItemCoverage",
                "UserCoverage", "UserCoverageAtN", "Gini", "SEntropy", "EFD", "EPC", "ARP", "APLT", "ACLT"]


def disc(r: int) -> float:
    return math.log(2) / math.log(r + 2)


def elliot_values(recs: dict, full: dict, test: dict, train: dict, catalogue: list, t: float, k: int) -> dict:
    """Every metric at cutoff k, one user at a time, following Elliot's definitions.

    ``catalogue`` lists the items in index order: popularity ties keep that order (Elliot's own
    item order is a set's, so its short head is only defined up to such ties).
    """
    n_items = len(catalogue)
    users = [u for u in recs if test.get(u)]                         # non-empty raw test set
    rel = {u: {i: r for i, r in test[u].items() if r >= t} for u in users}
    acc_users = [u for u in users if rel[u]]
    pop: dict = {i: 0 for i in catalogue}
    for items in train.values():
        for i in items:
            pop[i] += 1
    pop = {i: n for i, n in pop.items() if n > 0}
    out: dict = {}

    def mean(f, over):
        values = [f(u) for u in over]
        return float(np.mean(values)) if values else float("nan")

    def hits(u, n):
        return sum(1 for i in recs[u][:n] if i in rel[u])

    out["Precision"] = mean(lambda u: hits(u, k) / k, acc_users)
    out["Recall"] = mean(lambda u: hits(u, k) / len(rel[u]), acc_users)

    def f1(u):
        p, r = hits(u, k) / k, hits(u, k) / len(rel[u])
        return 2 * p * r / (p + r) if p + r else 0.0
    out["F1"] = mean(f1, acc_users)
    out["HR"] = mean(lambda u: float(hits(u, k) > 0), acc_users)
    out["MRR"] = mean(lambda u: next((1 / (r + 1) for r, i in enumerate(recs[u][:k]) if i in rel[u]), 0.0), acc_users)
    out["MAP"] = mean(lambda u: np.mean([hits(u, n) / n for n in range(1, k + 1)]), acc_users)

    def gain(r):
        return 2 ** (r - t + 1) - 1

    def ndcg(u):
        dcg = sum(gain(rel[u][i]) * disc(r) for r, i in enumerate(recs[u][:k]) if i in rel[u])
        gains = sorted((gain(r) for r in rel[u].values()), reverse=True)
        idcg = sum(g * disc(r) for r, g in enumerate(gains[:min(k, len(gains))]))
        return dcg / idcg if dcg > 0 else 0.0
    out["nDCG"] = mean(ndcg, acc_users)

    def auc_terms(u, lst):
        neg = n_items - len(train[u]) - len(rel[u]) + 1
        ranks = [r for r, i in enumerate(lst) if i in rel[u]]
        return [(neg - r + p) / neg for p, r in enumerate(ranks)]
    terms = [x for u in acc_users for x in auc_terms(u, full[u])]
    out["AUC"] = float(np.mean(terms)) if terms else float("nan")
    out["GAUC"] = mean(lambda u: sum(auc_terms(u, full[u])) / len(rel[u]), acc_users)
    out["LAUC"] = mean(lambda u: sum(auc_terms(u, recs[u][:k])) / min(k, len(rel[u])), acc_users)

    counts: dict = {}
    weights: dict = {}
    for u in users:
        for i in recs[u][:k]:
            counts[i] = counts.get(i, 0) + 1
            weights[i] = weights.get(i, 0) + 1 / len(recs[u][:k])
    total = sum(counts.values())
    out["ItemCoverage"] = len(counts)
    out["UserCoverage"] = sum(1 for u in users if recs[u])
    out["UserCoverageAtN"] = sum(1 for u in users if len(recs[u]) >= k)
    sorted_counts = sorted(counts.values())
    n_rec = len(sorted_counts)
    out["Gini"] = 1 - sum((2 * (j + n_items - n_rec + 1) - n_items - 1) * c / total
                          for j, c in enumerate(sorted_counts)) / (n_items - 1)
    out["SEntropy"] = sum(w * -math.log2(counts[i] / total) for i, w in weights.items()) / len(users)

    norm = sum(pop.values())
    efd_nov = {i: -math.log2(n / norm) for i, n in pop.items()}
    max_nov = -math.log2(min(pop.values()) / norm)
    epc_nov = {i: 1 - n / len(train) for i, n in pop.items()}

    def novelty(u, nov, default):
        num = sum((i in rel[u]) * disc(r) * nov.get(i, default) for r, i in enumerate(recs[u][:k]))
        den = sum(disc(r) for r in range(len(recs[u][:k])))
        return num / den if den > 0 else 0.0
    out["EFD"] = mean(lambda u: novelty(u, efd_nov, max_nov), acc_users)
    out["EPC"] = mean(lambda u: novelty(u, epc_nov, 1.0), acc_users)

    by_pop = sorted(pop.items(), key=lambda x: x[1], reverse=True)
    limit, head = norm * 0.8, set()
    for i, n in by_pop:
        head.add(i)
        limit -= n
        if limit <= 0:
            break
    out["ARP"] = mean(lambda u: sum(pop.get(i, 0) for i in recs[u][:k]) / len(recs[u][:k]), users)
    out["APLT"] = mean(lambda u: len([i for i in recs[u][:k] if i not in head]) / len(recs[u][:k]), users)
    out["ACLT"] = mean(lambda u: len([i for i in recs[u][:k] if i not in head]), users)
    return out


@pytest.mark.parametrize("threshold", [0, 3])
def test_vectorised_metrics_equal_elliot_loops_on_random_data(threshold):
    rng = np.random.default_rng(7 + threshold)
    n_users, n_items = 60, 25
    rows = [(f"u{u}", f"i{i}", float(rng.integers(1, 6)))
            for u in range(n_users) for i in rng.choice(n_items, size=rng.integers(3, 26), replace=False)]
    frame = pd.DataFrame(rows, columns=["user", "item", "rating"])
    in_test = rng.random(len(frame)) < 0.3
    test = pd.concat([frame[in_test], pd.DataFrame([("u1", "gone", 5.0), ("u2", "gone", 5.0)],
                                                   columns=["user", "item", "rating"])])
    data = Interactions.from_frames("random", frame[~in_test], test)
    scores = rng.integers(0, 5, size=(data.n_users, data.n_items)).astype(np.float32)  # ties everywhere
    table = torch.as_tensor(scores)
    top_k = 10
    evaluation = Evaluation(cutoffs=[3, 10], simple_metrics=METRIC_NAMES, relevance_threshold=threshold)
    result = evaluate(lambda users: table[users], data, "test", evaluation, top_k=top_k)

    train = {data.user_ids[u]: set(data.item_ids[data.user_positives(u)]) for u in range(data.n_users)}
    test_dict: dict = {}
    for u, item, r in zip(data.test.users, data.test.item_ids, data.test.ratings):
        test_dict.setdefault(data.user_ids[u], {})[item] = r
    full = {}
    for u in range(data.n_users):
        banned = set(data.user_positives(u).tolist())
        cand = sorted((i for i in range(data.n_items) if i not in banned), key=lambda i: (-scores[u, i], i))
        full[data.user_ids[u]] = list(data.item_ids[cand]) + list(data.item_ids[sorted(banned)])
    recs = {u: [i for i in lst if i not in train[u]][:top_k] for u, lst in full.items()}
    assert any(len(r) < top_k for r in recs.values()), "the data must contain short lists"

    for k in (3, 10):
        expected = elliot_values(recs, full, test_dict, train, list(data.item_ids), threshold, k)
        assert list(result.values[k]) == METRIC_NAMES
        for name in METRIC_NAMES:
            assert result.values[k][name] == pytest.approx(expected[name], rel=1e-9), (name, k)
