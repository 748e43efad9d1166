"""Tasks: selection rules, the multilabel task and its metrics, time in scoring, and that selection
never sees test data while a validation split exists."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from elliot_visual.config.schema import Evaluation, Meta, ModelSpec, NegativeSampling
from elliot_visual.data.interactions import Interactions
from elliot_visual.data.samplers import Triples
from elliot_visual.data.time import TimeBins
from elliot_visual.evaluation.metrics.labels import label_metrics, label_metrics_per_user
from elliot_visual.evaluation.tasks import TaskSettings, build_task, default_task
from elliot_visual.models.base import HyperParams, PairwiseParams, Recommender, build_model, hp
from elliot_visual.models.bprmf import BPRMF
from elliot_visual.models.category_pop import CategoryPop
from elliot_visual.training.loop import TrainingConfig, train
from elliot_visual.tuning.tune import TuningSettings, tune_and_evaluate


def _task(name: str, **evaluation) -> object:
    return build_task(name, TaskSettings(Evaluation(**evaluation), top_k=10))


@pytest.mark.parametrize("text, expected", [
    (None, ("Recall", 10)),              # first simple metric at the first cutoff
    ("nDCG@50", ("nDCG", 50)),
    ("ndcg@50", ("nDCG", 50)),          # case-insensitive, canonical spelling back
    ("AUC", ("AUC", 10)),                # no @k: first cutoff
])
def test_validation_metric_follows_elliots_rules(text, expected):
    task = _task("ranking", cutoffs=[10, 50], simple_metrics=["Recall", "nDCG", "AUC"])
    selection = task.selection(text)
    assert (selection.metric, selection.cutoff) == expected
    assert selection.key == f"{expected[0]}@{expected[1]}"


@pytest.mark.parametrize("text, message", [
    ("HR@10", r"not in evaluation.simple_metrics \(Recall, nDCG\)"),
    ("nDCG@20", r"cutoff 20 is not in evaluation.cutoffs \(10, 50\)"),
    ("nDCG@ten", "write Metric or Metric@cutoff"),
])
def test_validation_metric_outside_the_configuration_is_an_error(text, message):
    task = _task("ranking", cutoffs=[10, 50], simple_metrics=["Recall", "nDCG"])
    with pytest.raises(ValueError, match=message):
        task.selection(text)


def test_the_multilabel_task_selects_only_on_label_metrics():
    task = _task("multilabel", cutoffs=[3], simple_metrics=["F1", "nDCG", "Precision"])
    assert task.metric_names() == ["F1", "Precision"]
    assert task.selection(None).key == "F1@3"
    with pytest.raises(ValueError, match="not in evaluation.simple_metrics"):
        task.selection("nDCG@3")


def test_default_task_is_sampled_when_the_config_has_negative_sampling_and_the_model_serves_it():
    plain, sampled = Evaluation(), Evaluation(negative_sampling=NegativeSampling())
    assert default_task(("ranking", "sampled"), plain) == "ranking"
    assert default_task(("ranking", "sampled"), sampled) == "sampled"
    assert default_task(("multilabel",), sampled) == "multilabel"


# --- label metrics, by hand ------------------------------------------------------------------------

def test_label_precision_recall_f1_at_k_match_hand_computed_values():
    scores = np.array([[0.9, 0.1, 0.8, 0.3],    # top-2 = {0, 2}; truth {0, 1}: 1 hit
                       [0.2, 0.2, 0.1, 0.0],    # tie 0/1 -> lower index first: top-2 = {0, 1}; truth {1}: 1 hit
                       [0.5, 0.4, 0.3, 0.2]])   # empty truth: not averaged
    targets = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=np.float32)
    rows = label_metrics_per_user(scores, targets, 2)
    assert rows["Precision"][:2].tolist() == [0.5, 0.5] and np.isnan(rows["Precision"][2])
    assert rows["Recall"][:2].tolist() == [0.5, 1.0]
    assert rows["F1"][:2] == pytest.approx([0.5, 2 * 0.5 * 1.0 / 1.5])
    values = label_metrics(scores, targets, [1, 2])
    # k=1: user 0 top {0} hit (P 1, R 1/2, F1 2/3); user 1 top {0} miss (0, 0, 0)
    assert values[1] == pytest.approx({"Precision": 0.5, "Recall": 0.25, "F1": 1 / 3})
    assert values[2] == pytest.approx({"Precision": 0.5, "Recall": 0.75, "F1": (0.5 + 2 / 3) / 2})


# --- the multilabel task ---------------------------------------------------------------------------

def _label_split() -> tuple[Interactions, torch.Tensor]:
    """Users u0..u3 in train; u4 and u5 held out whole (a user-level split).

    Labels: i0 {A}, i1 {A, B}, i2 {B}, i3 {C}, i4 {C}. Train: u0 i0 i1, u1 i1 i2, u2 i3, u3 i0 i4.
    """
    train = pd.DataFrame([("u0", "i0"), ("u0", "i1"), ("u1", "i1"), ("u1", "i2"), ("u2", "i3"), ("u3", "i0"),
                          ("u3", "i4")], columns=["user", "item"])
    test = pd.DataFrame([("u4", "i3"), ("u4", "i4"), ("u4", "i2"), ("u5", "i0")], columns=["user", "item"])
    data = Interactions.from_frames("labels", train, test, keep_held_out_users=True)
    assert list(data.item_ids) == ["i0", "i1", "i2", "i3", "i4"] and list(data.user_ids)[-2:] == ["u4", "u5"]
    labels = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=torch.float32)
    return data, labels


def test_category_popularity_predicts_the_labels_most_frequent_in_a_users_set():
    data, labels = _label_split()
    model = build_model(CategoryPop, CategoryPop.Params(), data.n_users, data.n_items, {"item_labels": labels})
    train(model, data, TrainingConfig(progress=False))
    # Label counts over the 7 train interactions: A = i0 x2 + i1 x2 = 4, B = i1 x2 + i2 = 3, C = i3 + i4 = 2.
    assert model.popularity.tolist() == [4.0, 3.0, 2.0]
    task = _task("multilabel", cutoffs=[1, 2], simple_metrics=["Precision", "Recall", "F1"])
    result = task.evaluate(model, data, "test", inputs={"item_labels": labels})
    # u4: set {i3, i4, i2} -> counts C 2, B 1, A 0; truth {B, C}. top-1 {C}: P 1, R 1/2; top-2 {C, B}: P 1, R 1.
    # u5: set {i0} -> counts A 1 (+ ties by popularity B > C); truth {A}. top-1 {A}: P 1, R 1; top-2 {A, B}: P 1/2.
    assert result.values[1] == pytest.approx({"Precision": 1.0, "Recall": 0.75, "F1": (2 / 3 + 1) / 2})
    assert result.values[2] == pytest.approx({"Precision": 0.75, "Recall": 1.0, "F1": (1 + 2 / 3) / 2})
    assert result.recommendations is None
    everyone = build_model(CategoryPop, CategoryPop.Params(scope="global"), data.n_users, data.n_items,
                           {"item_labels": labels})
    train(everyone, data, TrainingConfig(progress=False))
    flat = task.evaluate(everyone, data, "test", inputs={"item_labels": labels})
    # global: everyone gets A then B. u4: top-1 {A} miss, top-2 {A, B} 1 hit of 2; u5: top-1 {A} hit.
    assert flat.values[1]["Precision"] == pytest.approx(0.5) and flat.values[2]["Recall"] == pytest.approx(0.75)


def test_the_multilabel_task_names_what_it_needs():
    data, labels = _label_split()
    model = build_model(CategoryPop, CategoryPop.Params(), data.n_users, data.n_items, {"item_labels": labels})
    task = _task("multilabel", cutoffs=[1], simple_metrics=["Precision"])
    with pytest.raises(ValueError, match="needs the item_labels feature"):
        task.evaluate(model, data, "test")
    with pytest.raises(ValueError, match="computes Precision, Recall, F1 over labels, not AUC"):
        task.evaluate(model, data, "test", metrics=["AUC"], inputs={"item_labels": labels})


# --- time ------------------------------------------------------------------------------------------

class _Clock(Recommender):
    """A temporal toy: item j scores (at == j-th day) and records the times it was asked for."""

    class Params(PairwiseParams):
        epochs: int = hp(3, "e")
        lr: float = hp(0.0, "lr")

    uses_time = True
    family = "Clock"

    def __init__(self, params: HyperParams, n_users: int, n_items: int, features=None) -> None:
        super().__init__(params, n_users, n_items, features)
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.asked: list[list[float]] = []
        self.hook_calls: list[tuple[int, bool]] = []
        self.batch_times: list[float] = []

    def loss(self, batch: Triples) -> torch.Tensor:
        self.batch_times += batch.times.tolist()
        return (self.weight ** 2).sum() + 0 * batch.users.float().sum()

    def between_epochs(self, data: Interactions, epoch: int) -> None:
        self.hook_calls.append((epoch, torch.is_grad_enabled()))

    def score(self, users: torch.Tensor, at: torch.Tensor | None = None) -> torch.Tensor:
        assert at is not None, "a uses_time model is scored with the event time"
        self.asked.append(at.tolist())
        days = torch.arange(self.n_items, dtype=torch.float64)
        return (days.unsqueeze(0) == (at // 86_400).unsqueeze(1)).float()


def _timed_split() -> Interactions:
    train = pd.DataFrame([("u0", "i0", 1.0, 0), ("u0", "i1", 1.0, 86_400), ("u1", "i1", 1.0, 2 * 86_400),
                          ("u1", "i2", 1.0, 3 * 86_400)], columns=["user", "item", "rating", "timestamp"])
    test = pd.DataFrame([("u0", "i3", 1.0, 3 * 86_400), ("u1", "i0", 1.0, 0), ("u1", "i3", 1.0, 5 * 86_400)],
                        columns=["user", "item", "rating", "timestamp"])
    extra = ["i3"]
    return Interactions.from_frames("timed", train, test, extra_items=extra)


def test_a_temporal_model_is_scored_at_each_users_event_time_and_trained_on_timed_batches():
    data = _timed_split()
    model = build_model(_Clock, _Clock.Params(batch_size=2), data.n_users, data.n_items)
    train(model, data, TrainingConfig(progress=False))
    assert set(model.batch_times) <= {0.0, 86_400.0, 2 * 86_400.0, 3 * 86_400.0} and model.batch_times
    assert model.hook_calls == [(1, False), (2, False), (3, False)]   # once per epoch, without autograd
    task = _task("ranking", cutoffs=[1], simple_metrics=["Recall"])
    result = task.evaluate(model, data, "test")
    assert model.asked[-1] == [3 * 86_400.0, 0.0]     # u0: her test event; u1: her earliest test event
    # u0 at day 3 -> i3 (her test item): hit; u1 at day 0 -> i0 (a test item): 1 of 2 relevant.
    assert result.values[1]["Recall"] == pytest.approx((1.0 + 0.5) / 2)


def test_time_bins_cut_the_train_span_into_equal_widths_and_clip_outside_events():
    data = _timed_split()
    bins = TimeBins.over_train(data, 3)
    assert bins.edges.tolist() == [0.0, 86_400.0, 2 * 86_400.0, 3 * 86_400.0]
    assert bins.bin_of(np.array([-5.0, 0.0, 86_399.0, 86_400.0, 3 * 86_400.0, 9e9, np.nan])).tolist() == \
        [0, 0, 0, 1, 2, 2, 2]
    assert bins.labels(np.array([0, 0, 1])) == ["1970-01-01 – 1970-01-03", "1970-01-03 – 1970-01-04"]
    with pytest.raises(ValueError, match="no timestamps|has none"):
        TimeBins.over_train(Interactions.from_frames("x", data.train_frame[["user", "item", "rating"]],
                                                     data.train_frame[["user", "item", "rating"]]), 3)


# --- selection never sees test data ----------------------------------------------------------------

def _split(test_items: dict[str, str], with_validation: bool = True) -> Interactions:
    rng = np.random.default_rng(0)
    train_rows, validation_rows = [], []
    for u in range(30):
        items = rng.choice(20, size=6, replace=False)
        train_rows += [(f"u{u}", f"i{i}") for i in items[:5]]
        validation_rows.append((f"u{u}", f"i{items[5]}"))
    frame = lambda rows: pd.DataFrame(rows, columns=["user", "item"])  # noqa: E731
    test = frame([(u, i) for u, i in test_items.items()])
    return Interactions.from_frames("sel", frame(train_rows), test, frame(validation_rows) if with_validation else None)


def _tuned(data: Interactions):
    spec = ModelSpec(key="BPRMF", name="BPRMF", meta=Meta(validation_metric="nDCG@5"),
                     params={"epochs": 2, "batch_size": 16, "factors": 4}, search={"lr": [0.001, 0.05, 0.3]})
    settings = TuningSettings(Evaluation(cutoffs=[5], simple_metrics=["nDCG", "Recall"]), top_k=5)
    return tune_and_evaluate(spec, [[data]], settings)


def test_selection_is_blind_to_the_test_set_when_a_validation_split_exists():
    first = _tuned(_split({f"u{u}": f"i{(u * 7) % 20}" for u in range(30)}))
    other = _tuned(_split({f"u{u}": f"i{(u * 3 + 1) % 20}" for u in range(30)}))
    assert [t.validation for t in first.trials] == [t.validation for t in other.trials]
    assert [t.loss for t in first.trials] == [t.loss for t in other.trials]
    assert first.best.name == other.best.name
    assert [t.test.values for t in first.trials] != [t.test.values for t in other.trials]


def test_without_a_validation_split_selection_uses_the_test_set_with_a_warning(caplog):
    first = _tuned(_split({f"u{u}": f"i{(u * 7) % 20}" for u in range(30)}, with_validation=False))
    other = _tuned(_split({f"u{u}": f"i{(u * 3 + 1) % 20}" for u in range(30)}, with_validation=False))
    assert "no validation split; selecting on the test set" in caplog.text
    assert [t.loss for t in first.trials] != [t.loss for t in other.trials]
    assert all(-t.loss == pytest.approx(t.test.values[5]["nDCG"]) for t in first.trials)


def test_bprmf_declares_the_bpr_sampler_options_outside_its_report_name():
    params = BPRMF.Params(negatives_from="catalogue", exclude_validation=True)
    assert "negatives_from" not in BPRMF.report_name(params) and params.exclude_validation
