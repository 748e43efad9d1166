"""TVBPR / ITVBPR / IVBPR: the DP segmentation against brute force, hand-computed scores, gradients,
He & McAuley's exact and cold-start AUC, and the planted fashion drift they must recover."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from elliot_visual.config.schema import Evaluation, ExactAUC
from elliot_visual.data.interactions import Interactions
from elliot_visual.data.samplers import Triples
from elliot_visual.data.splitting import random_subsampling
from elliot_visual.data.synthetic import make_trend_dataset
from elliot_visual.evaluation.tasks import TaskSettings, build_task
from elliot_visual.features.store import FeatureStore
from elliot_visual.models.base import Recommender, build_model
from elliot_visual.models.tvbpr import ITVBPR, TVBPR, segment
from elliot_visual.models.vbpr import IVBPR, VBPR
from elliot_visual.training.loop import TrainingConfig, train

DAY = 86_400.0


def test_segmentation_by_dynamic_programming_matches_brute_force():
    rng = np.random.default_rng(3)
    for n_bins, n_epochs in [(5, 2), (6, 3), (7, 4), (4, 4), (6, 1)]:
        costs = rng.normal(size=(n_bins, n_epochs))
        best, best_value = None, -np.inf
        # every ordered split into n_epochs contiguous non-empty runs = choice of n_epochs - 1 cut points
        for cuts in itertools.combinations(range(1, n_bins), n_epochs - 1):
            assignment = np.searchsorted(np.array(cuts), np.arange(n_bins), side="right")
            value = costs[np.arange(n_bins), assignment].sum()
            if value > best_value:
                best, best_value = assignment, value
        found = segment(costs)
        assert found.tolist() == best.tolist()
        assert costs[np.arange(n_bins), found].sum() == pytest.approx(best_value)
    with pytest.raises(ValueError, match="cannot hold"):
        segment(np.zeros((2, 3)))


def _tiny_tvbpr() -> TVBPR:
    features = {"visual_features": torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]),
                "train_time_span": torch.tensor([0.0, 4 * DAY], dtype=torch.float64)}
    model = build_model(TVBPR, TVBPR.Params(factors=1, factors_d=1, time_epochs=2, time_bins=4), 2, 3, features)
    with torch.no_grad():
        model.Bi.copy_(torch.tensor([0.1, 0.2, 0.3]))
        model.Gu.copy_(torch.tensor([[1.0], [2.0]]))
        model.Gi.copy_(torch.tensor([[0.5], [-1.0], [0.0]]))
        model.Tu.copy_(torch.tensor([[1.0], [-1.0]]))
        model.E.copy_(torch.tensor([[2.0], [1.0]]))
        model.Bp.copy_(torch.tensor([0.5, -0.5]))
        model.W.copy_(torch.tensor([[0.0], [1.0]]))          # w = 1 in epoch 0, 2 in epoch 1
        model.DE.copy_(torch.tensor([[[0.0], [0.0]], [[1.0], [0.0]]]))
        model.Bt.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))   # b(1) = [2, 1]
        model.DBp.copy_(torch.tensor([[0.0, 0.0], [0.0, 0.25]]))
    return model


def test_tvbpr_scores_by_hand_at_each_time_epoch():
    model = _tiny_tvbpr().eval()
    assert model.bin_epoch.tolist() == [0, 0, 1, 1]           # 4 bins, 2 epochs, equal division
    at = torch.tensor([0.5 * DAY, 3.5 * DAY], dtype=torch.float64)
    scores = model.score(torch.tensor([0, 1]), at=at)
    # user 0 at epoch 0: θ_i = E f_i * 1 -> [2, 2, 3]; β′ = [0.5, -0.5] -> β′·f = [0.5, -1, 0]
    # x = b + γuγi + θuθi + β′f = [0.1+0.5+2+0.5, 0.2-1+2-1, 0.3+0+3+0]
    assert scores[0].tolist() == pytest.approx([3.1, 0.2, 3.3])
    # user 1 at epoch 1: θ_i = E f_i * 2 + ΔE f_i -> [4+1, 4+0, 6+1] = [5, 4, 7]; β′ = [0.5*2, -0.5*1 + 0.25]
    # β′·f = [1, -0.5, 0.75]; x = b + 2γi - θ_i + β′f
    assert scores[1].tolist() == pytest.approx([0.1 + 1 - 5 + 1, 0.2 - 2 - 4 - 0.5, 0.3 + 0 - 7 + 0.75])
    late = model.score(torch.tensor([1]), at=torch.tensor([9 * DAY], dtype=torch.float64))   # after the span
    assert late[0].tolist() == pytest.approx(scores[1].tolist())


def test_tvbpr_gradients_match_finite_differences():
    model = _tiny_tvbpr().double()
    batch = Triples(torch.tensor([0, 1, 1]), torch.tensor([0, 2, 1]), torch.tensor([1, 0, 2]),
                    torch.tensor([0.5 * DAY, 3.5 * DAY, 1.0 * DAY], dtype=torch.float64))
    for name in ["Bi", "Gu", "Gi", "Tu", "E", "Bp", "W", "DE", "Bt", "DBp"]:
        value = getattr(model, name).detach().clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda v, name=name: _loss_at(model, name, v, batch), (value,),
                                        eps=1e-6, atol=1e-5), name


def _loss_at(model: TVBPR, name: str, value: torch.Tensor, batch: Triples) -> torch.Tensor:
    """The loss with parameter ``name`` replaced by ``value`` (differentiable in ``value``)."""
    original = getattr(model, name)
    try:
        delattr(model, name)
        setattr(model, name, value)
        return model.loss(batch)
    finally:
        delattr(model, name)
        model.register_parameter(name, original)


# --- He & McAuley's AUC and its cold-start column --------------------------------------------------

class _Fixed(Recommender):
    family = "Fixed"

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__(None, *table.shape)
        self.register_buffer("table", table)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.table[users]


def test_exact_auc_excludes_validation_and_test_items_and_selects_cold_test_items_by_hand():
    frame = lambda rows: pd.DataFrame(rows, columns=["user", "item"])  # noqa: E731
    # train popularity: i0 3, i1 1, i2 2, i3 0 (cold), i4 1
    train = frame([("a", "i0"), ("a", "i2"), ("b", "i0"), ("b", "i1"), ("c", "i0"), ("c", "i2"), ("c", "i4")])
    test = frame([("a", "i3"), ("b", "i2"), ("c", "i1")])
    validation = frame([("a", "i4"), ("b", "i3")])
    data = Interactions.from_frames("auc", train, test, validation, extra_items=["i3"])
    assert list(data.item_ids) == ["i0", "i2", "i1", "i4", "i3"]
    scores = torch.tensor([[9.0, 9.0, 1.0, 5.0, 2.0],     # a: test i3 (2); E = {i1}: 2 > 1 -> 1
                           [9.0, 3.0, 9.0, 3.0, 0.0],     # b: test i2 (3); E = {i4}: tie -> 0 strict, 1/2 half
                           [9.0, 9.0, 4.0, 9.0, 5.0]])    # c: test i1 (4); E = {i3}: 4 < 5 -> 0
    model = _Fixed(scores)
    strict = build_task("auc", TaskSettings(Evaluation(cutoffs=[10], simple_metrics=["AUC"]), 10))
    values = strict.evaluate(model, data, "test").values[10]
    assert values["AUC"] == pytest.approx(1 / 3)
    # cold (<= 4 train feedbacks by default... every item here) -> restrict the threshold to 1: i3 (0), i1 (1)
    tight = build_task("auc", TaskSettings(Evaluation(cutoffs=[10], simple_metrics=["AUC"],
                                                      exact_auc=ExactAUC(cold_max_feedback=1)), 10))
    assert tight.evaluate(model, data, "test").values[10] == pytest.approx({"AUC": 1 / 3, "AUC_cold": 0.5})
    half = build_task("auc", TaskSettings(Evaluation(cutoffs=[10], simple_metrics=["AUC"],
                                                     exact_auc=ExactAUC(ties="half", cold_max_feedback=0)), 10))
    assert half.evaluate(model, data, "test").values[10] == pytest.approx({"AUC": 0.5, "AUC_cold": 1.0})


# --- the planted drift -----------------------------------------------------------------------------

def _paper_split(frame: pd.DataFrame, seed: int) -> Interactions:
    """The paper's protocol: per user one random interaction to test, another to validation."""
    rng = np.random.default_rng(seed)
    ((rest, test),) = random_subsampling(frame, rng, leave_n_out=1)
    ((train_part, validation),) = random_subsampling(rest, rng, leave_n_out=1)
    return Interactions.from_frames("trend", train_part, test, validation)


def _fit(cls: type, data: Interactions, store: FeatureStore, task, **params) -> Recommender:
    model = build_model(cls, cls.Params(**params), data.n_users, data.n_items, store.tensors_for(cls))
    selection = task.selection("AUC@10")
    train(model, data, TrainingConfig(progress=False, selection=selection.key),
          lambda m: task.validate(m, data, [selection]))
    return model


COMMON = dict(epochs=30, batch_size=256, factors=8, factors_d=8, lr=0.01, l_w=0.0001)


def test_tvbpr_follows_a_planted_fashion_drift_that_vbpr_cannot():
    task = build_task("auc", TaskSettings(Evaluation(cutoffs=[10], simple_metrics=["AUC"]), 10))
    margins = []
    for seed in (0, 1, 2):
        planted = make_trend_dataset(seed=seed, changes=(0.2, 0.55))
        data = _paper_split(planted.interactions, seed)
        store = FeatureStore.from_arrays(data, {"VisualAttributes": {"visual_features": (planted.item_ids,
                                                                                         planted.features)}})
        late_users = np.unique(data.test.users[data.test.timestamps >= planted.change_points[-1]])
        late = {}
        for cls, extra in ((VBPR, {}), (TVBPR, {"time_epochs": 3, "time_bins": 20, "l_t": 0.0001})):
            model = _fit(cls, data, store, task, **COMMON, **extra)
            users, table = task.per_user(model, data, "test")
            late[cls.__name__] = table[np.isin(users, late_users), 0].mean()
        margins.append(late["TVBPR"] - late["VBPR"])
        # the learned time epochs split the 20 bins within one bin of the planted changes (bins 4 and 11)
        cuts = np.flatnonzero(np.diff(model.bin_epoch.numpy())) + 1
        assert len(cuts) == 2 and abs(cuts[0] - 4) <= 1 and abs(cuts[1] - 11) <= 1, (seed, cuts)
        # the style in fashion last rises in the trend data: higher in the last epoch than the first
        trend = model.describe()["preference"][planted.trend_styles[-1]]
        assert trend[-1] > trend[0] + 1.0, (seed, trend)
    assert min(margins) > 0.02 and np.mean(margins) > 0.05, margins


def test_ivbpr_on_named_attributes_matches_vbpr_within_noise_and_itvbpr_keeps_its_defaults():
    planted = make_trend_dataset(seed=4, periods=1, in_fashion=0.0)        # no drift: only users' styles
    data = _paper_split(planted.interactions, 4)
    store = FeatureStore.from_arrays(data, {"VisualAttributes": {"visual_features": (planted.item_ids,
                                                                                     planted.features)}})
    task = build_task("auc", TaskSettings(Evaluation(cutoffs=[10], simple_metrics=["AUC"]), 10))
    vbpr = task.evaluate(_fit(VBPR, data, store, task, **COMMON), data, "test").values[10]["AUC"]
    ivbpr = task.evaluate(_fit(IVBPR, data, store, task, epochs=30, batch_size=256, lr=0.01), data,
                          "test").values[10]["AUC"]
    assert vbpr > 0.7 and abs(ivbpr - vbpr) < 0.05, (vbpr, ivbpr)
    params = ITVBPR.Params()
    assert (params.factors, params.factors_d, params.l_e, params.l_w, params.l_t) == (10, 10, 5, 0, 0)
    assert IVBPR.Params().l_e == 5 and IVBPR.Params(l_e=0.5).l_e == 0.5


TREND_CONFIG = """\
experiment:
  dataset: trend
  data_config:
    strategy: dataset
    dataset_path: ../data/{0}/dataset.tsv
    side_information:
      - dataloader: FeatureVectors
        path: ../data/{0}/features.npy
        item_ids_file: ../data/{0}/item_ids.txt
        names_file: ../data/{0}/names.txt
  splitting:
    test_splitting: {strategy: random_subsampling, leave_n_out: 1}
    validation_splitting: {strategy: random_subsampling, leave_n_out: 1}
  threads: 1
  evaluation:
    cutoffs: [10]
    simple_metrics: [AUC]
    exact_auc: {ties: strict, cold_max_feedback: 4}
  models:
    MostPop:
      meta: {task: auc}
    TVBPR:
      meta: {task: auc, trend_features: [style0, style1]}
      epochs: 10
      batch_size: 256
      factors: 8
      factors_d: 8
      lr: 0.01
      time_epochs: 3
      time_bins: 20
"""


def test_a_tvbpr_study_reports_all_items_and_cold_start_auc_and_draws_its_trends(tmp_path, monkeypatch):
    from elliot_visual.cli import main
    from elliot_visual.storage import write_npy, write_text

    planted = make_trend_dataset(seed=0, changes=(0.2, 0.55))
    folder = tmp_path / "data" / "trend"
    write_text(folder / "dataset.tsv", planted.interactions.to_csv(sep="\t", header=False, index=False))
    write_npy(folder / "features.npy", planted.features)
    write_text(folder / "item_ids.txt", "".join(f"{i}\n" for i in planted.item_ids))
    write_text(folder / "names.txt", "".join(f"{n}\n" for n in planted.feature_names))
    (tmp_path / "config_files").mkdir()
    (tmp_path / "config_files" / "trend.yml").write_text(TREND_CONFIG)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "trend"]) == 0
    results = tmp_path / "results" / "trend"
    (table,) = (results / "performance").glob("rec_cutoff_10_relthreshold_0_*.tsv")
    rows = pd.read_csv(table, sep="\t").set_index("model")
    assert list(rows.columns) == ["AUC", "AUC_cold"]
    mostpop, tvbpr = rows.index
    assert tvbpr.startswith("TVBPR_") and "_tep=3_tbins=20_" in tvbpr
    assert rows.loc[tvbpr, "AUC"] > rows.loc[mostpop, "AUC"] + 0.1
    figures = results / "figures"
    assert (figures / f"trends_{tvbpr}.png").stat().st_size > 0
    assert (figures / f"trend_weights_{tvbpr}.png").stat().st_size > 0
    trends = pd.read_csv(figures / f"trends_{tvbpr}.tsv", sep="\t")
    assert trends["epoch"].max() == 2 and trends["dates"].str.contains(" – ").all()
    assert set(trends["feature"]) == set(planted.feature_names)
