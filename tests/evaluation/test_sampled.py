"""The sampled-negatives protocol: which items are negatives, determinism, and known values."""
from __future__ import annotations

import numpy as np
import pytest

from elliot_visual.config.schema import Evaluation, NegativeSampling
from elliot_visual.evaluation.evaluator import build_metrics, evaluate
from elliot_visual.evaluation.sampled import evaluate_sampled, sample_negatives


def test_negatives_avoid_train_and_held_out_items(tiny, rng):
    negatives = sample_negatives(tiny, tiny.test, 2, rng)
    names = {tiny.user_ids[u]: sorted(tiny.item_ids[negatives.indices[negatives.indptr[u]:negatives.indptr[u + 1]]])
             for u in range(tiny.n_users)}
    assert set(names["u0"]) == {"i3", "i5"}          # not train (i0, i1) nor held out (i2, i4)
    assert len(names["u1"]) == 2 and not set(names["u1"]) & {"i2", "i3", "i0"}
    assert names["u2"] == ["i2", "i3"]               # only two allowed items exist
    assert names["u3"] == []                         # no held-out rows: not evaluated


def test_same_seed_same_values_other_seed_other_negatives(tiny, tiny_scores):
    def run(seed: int) -> dict:
        sampling = NegativeSampling(num_items=1, trials=4, seed=seed)
        evaluation = Evaluation(cutoffs=[1], simple_metrics=["Recall", "AUC"], relevance_threshold=3,
                                negative_sampling=sampling)
        return evaluate(tiny_scores, tiny, "test", evaluation, top_k=3).values

    assert run(5) == run(5)
    draws = {seed: sample_negatives(tiny, tiny.test, 1, np.random.default_rng(seed)).indices.tolist()
             for seed in range(6)}
    assert len({tuple(v) for v in draws.values()}) > 1


def test_known_values_follow_the_drawn_negatives(tiny, tiny_scores):
    """u0's candidates: i2 (relevant, score 3), i4 (2, not relevant at t=3), one of i3 (2) / i5 (4).
    If i5 is drawn u0's top-1 is i5 (Recall@1 = 0), else i2 (Recall@1 = 1/2). u1's i0 (score 4)
    beats every negative: Recall@1 = 1, and AUC term (N_neg - 0 + 0)/N_neg = 1."""
    sampling = NegativeSampling(num_items=1, trials=5, seed=11)
    rng = np.random.default_rng(11)
    draws = [sample_negatives(tiny, tiny.test, 1, rng) for _ in range(5)]
    u0 = tiny.user_index["u0"]
    got_i5 = np.array([tiny.item_ids[d.indices[d.indptr[u0]]] == "i5" for d in draws])
    recall = np.where(got_i5, (0 + 1) / 2, (1 / 2 + 1) / 2)
    # AUC for u0: candidates 3, |Rel| = 2 (iX outside) -> N_neg = 3 - 2 + 1 = 2; i2 at R = 1 or 0
    auc_u0 = np.where(got_i5, (2 - 1 + 0) / 2, (2 - 0 + 0) / 2)
    auc = (auc_u0 + 1) / 2
    evaluation = Evaluation(cutoffs=[1], simple_metrics=["Recall", "AUC"], relevance_threshold=3)
    result = evaluate_sampled(tiny_scores, tiny, tiny.test, sampling, build_metrics(evaluation), [1], 3, 3)
    assert result.values[1] == pytest.approx({"Recall": recall.mean(), "Recall_std": recall.std(),
                                              "AUC": auc.mean(), "AUC_std": auc.std()})
    assert result.trials == 5


def test_enough_negatives_reproduce_the_full_ranking(tiny, tiny_scores):
    metrics = ["Precision", "Recall", "nDCG", "MAP", "AUC", "GAUC", "LAUC", "EFD", "ItemCoverage"]
    full = Evaluation(cutoffs=[1, 3], simple_metrics=metrics, relevance_threshold=0)
    sampled = full.model_copy(update={"negative_sampling": NegativeSampling(num_items=50, trials=2, seed=3)})
    expected = evaluate(tiny_scores, tiny, "test", full, top_k=3).values
    got = evaluate(tiny_scores, tiny, "test", sampled, top_k=3).values
    for k in (1, 3):
        for name in metrics:
            assert got[k][name] == pytest.approx(expected[k][name])
            assert got[k][f"{name}_std"] == 0.0


def test_fixed_negatives_are_read_from_elliots_file(tiny, tiny_scores, tmp_path):
    path = tmp_path / "test_negatives.tsv"
    path.write_text("('u0',)\ti3\nu1\ti5\tunknown\n('nobody',)\ti1\n", encoding="utf-8")
    sampling = NegativeSampling(strategy="fixed", files=[path])
    evaluation = Evaluation(cutoffs=[1], simple_metrics=["Recall"], relevance_threshold=3)
    result = evaluate_sampled(tiny_scores, tiny, tiny.test, sampling, build_metrics(evaluation), [1], 3, 3)
    # u0: candidates i2 (score 3), i3 (2), i4 (1) -> top-1 i2: Recall 1/2; u1: i0 (4) beats i5: 1
    assert result.values[1] == pytest.approx({"Recall": (1 / 2 + 1) / 2, "Recall_std": 0.0})
    with pytest.raises(ValueError, match=r"files\[1\]"):
        evaluate_sampled(tiny_scores, tiny, tiny.test, sampling, build_metrics(evaluation), [1], 3, 3,
                         part="validation")
