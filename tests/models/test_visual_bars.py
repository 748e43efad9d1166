"""Every visual model beats BPR-MF on planted visual data, on Recall@20 and on cold-item AUC.

The data (``planted_data.make_planted``): 240 users who prefer visual styles, 300 items of which ~60
are cold (features, test interactions only); each user's last warm interaction and her cold
events are the test set. Two baselines, each trained for 40 epochs of batches of 128 (at least
every visual model's budget): BPR-MF at Elliot's defaults (factors 10, lr 0.001, l_w 0.1,
l_b 0.001) and the same with lr 0.01, the best BPR-MF found here ("tuned").

Measured over seeds 0, 1, 2 (Recall@20 per seed; mean cold-item AUC), CPU:

============  ==================  ================  ============
model         Recall@20           cold-item AUC     vs tuned R@20
============  ==================  ================  ============
BPRMF         .275 .269 .258      .51               (defaults)
BPRMF tuned   .358 .356 .338      .52
VBPR          .494 .502 .421      .87               +.12
DeepStyle     .552 .552 .465      .87               +.17
VNPR (1 tw.)  .483 .450 .396      .83               +.09
ACF           .402 .404 .396      .83               +.05
DVBPR         .412 .383 .344      .86               +.03
VisRank       .515 .544 .512      .87               +.17
============  ==================  ================  ============

The assertions below keep about two thirds of each measured mean margin, and require a positive
margin on every seed. Settings that are not Elliot's defaults, stated: VNPR runs with
``towers: 1`` (Elliot's two towers trail BPR-MF here: Recall@20 .369 .204 .156, cold AUC .76;
see VNPR's docstring) and DVBPR with narrow layers and ``dropout: 0`` (at 0.5 with 256-unit
layers it stalls at Recall@20 ~.20, cold AUC ~.75). DVBPR's margin over the tuned baseline is
within seed noise, so it is only held to the defaults' baseline.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from elliot_visual.models.bprmf import BPRMF
from elliot_visual.registry import MODELS

from planted_data import Planted, cold_auc, fit, make_planted, recall_at  # tests/models/planted_data.py

SEEDS = (0, 1, 2)
BASELINE = {"epochs": 40, "batch_size": 128}
TUNED_BASELINE = {"epochs": 40, "batch_size": 128, "lr": 0.01}
COLD_AUC_MARGIN = 0.25

# model -> (hyperparameters, min mean Recall@20 margin over BPRMF defaults, over tuned BPRMF or None)
BARS: dict[str, tuple[dict, float, float | None]] = {
    "VBPR": (dict(epochs=20, batch_size=128, lr=0.01, factors=10, factors_d=10, l_w=0.001), 0.12, 0.06),
    "DeepStyle": (dict(epochs=20, batch_size=128, lr=0.01, factors=10, l_w=0.001), 0.15, 0.08),
    "VNPR": (dict(epochs=30, batch_size=128, lr=0.01, mf_factors=10, l_w=0.001, mlp_hidden_size=(16, 1),
                  towers=1), 0.10, 0.04),
    "ACF": (dict(epochs=20, batch_size=128, lr=0.02, factors=10, l_w=0.001, layers_component=(8, 1),
                 layers_item=(8, 1)), 0.08, 0.025),
    "DVBPR": (dict(epochs=15, batch_size=128, lr=0.003, factors=32, fc_units=256, conv_channels=(8, 16),
                   lambda_1=0.0, lambda_2=0.00001, dropout=0.0), 0.06, None),
    "VisRank": ({}, 0.15, 0.08),
}


def _metrics(model, planted: Planted) -> tuple[float, float]:
    return recall_at(model, planted.data, 20), cold_auc(model, planted.data, planted.cold)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Planted, tuple, tuple]]:
    """Per seed: the planted data, BPR-MF at Elliot's defaults and tuned BPR-MF (Recall@20, cold AUC)."""
    out = {}
    for seed in SEEDS:
        planted = make_planted(Path(tmp_path_factory.mktemp(f"planted{seed}")), seed=seed)
        default = _metrics(fit(BPRMF, BPRMF.Params(**BASELINE), planted), planted)
        tuned = _metrics(fit(BPRMF, BPRMF.Params(**TUNED_BASELINE), planted), planted)
        out[seed] = (planted, default, tuned)
    return out


@pytest.mark.parametrize("name", list(BARS))
def test_visual_model_beats_bprmf_on_recall_and_cold_item_auc(name: str, runs: dict) -> None:
    params, margin_default, margin_tuned = BARS[name]
    cls = MODELS.get(name)
    recall_gain, recall_gain_tuned, auc_gain = [], [], []
    for seed, (planted, default, tuned) in runs.items():
        recall, auc = _metrics(fit(cls, cls.Params(**params), planted), planted)
        recall_gain.append(recall - default[0])
        recall_gain_tuned.append(recall - tuned[0])
        auc_gain.append(auc - max(default[1], tuned[1]))
    summary = (f"{name}: Recall@20 gain over BPRMF {np.round(recall_gain, 3)}, over tuned {np.round(recall_gain_tuned, 3)}, "
               f"cold AUC gain {np.round(auc_gain, 3)}")
    assert min(recall_gain) > 0 and np.mean(recall_gain) >= margin_default, summary
    assert min(auc_gain) > 0 and np.mean(auc_gain) >= COLD_AUC_MARGIN, summary
    if margin_tuned is not None:
        assert min(recall_gain_tuned) > 0 and np.mean(recall_gain_tuned) >= margin_tuned, summary
