"""PopRank, WARP, FM and MMMF: hand-computed scores and losses, gradients, planted signals recovered."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from elliot_visual.data.samplers import PointwiseBatch, Triples
from elliot_visual.features.store import train_positives
from elliot_visual.models.base import build_model
from elliot_visual.models.bprmf import BPRMF
from elliot_visual.models.fm import FM
from elliot_visual.models.mmmf import MMMF, margin_ranking_loss
from elliot_visual.models.most_pop import MostPop
from elliot_visual.models.poprank import PopRank
from elliot_visual.models.warp import WARP, warp_loss
from elliot_visual.testing import tiny_interactions

from gradients import check_gradients  # tests/models/gradients.py
from planted_data import cold_auc, fit, make_planted, recall_at  # tests/models/planted_data.py


def untimed(*columns: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The columns plus ``times`` of NaN (these hand-made batches have no timestamps)."""
    return (*columns, torch.full((len(columns[0]),), float("nan"), dtype=torch.float64))


def triples(users, pos, neg) -> Triples:
    return Triples(*untimed(users, pos, neg))


def pointwise(users, items, labels) -> PointwiseBatch:
    return PointwiseBatch(*untimed(users, items, labels))


def set_(parameter: torch.nn.Parameter, values) -> None:
    with torch.no_grad():
        parameter.copy_(torch.as_tensor(values, dtype=parameter.dtype))


# --- PopRank ---------------------------------------------------------------------------------
def test_poprank_ranks_by_train_users_under_the_papers_name():
    data = tiny_interactions()
    model = build_model(PopRank, PopRank.Params(), data.n_users, data.n_items)
    model.fit(data)
    counts = np.asarray((data.train > 0).sum(0)).ravel()
    np.testing.assert_array_equal(model.score(torch.tensor([0, 5]))[1].numpy(), counts)
    assert PopRank.family == "PopRank" and issubclass(PopRank, MostPop)


# --- WARP ------------------------------------------------------------------------------------
def test_warp_loss_weights_the_first_violator_by_its_estimated_rank():
    # 11 items. Row 0: x_ui = 2; draws 0.5 (no violation: 0.5 < 2 - 1), 1.5 (violates) -> n = 2,
    # rank floor(10 / 2) = 5, weight ln 5, hinge 1 - 2 + 1.5 = .5.
    # Row 1: x_ui = 0; first draw 3.0 violates but is a positive (skipped, still counted), second
    # 0.2 violates -> n = 2, weight ln 5, hinge 1 - 0 + .2 = 1.2.
    # Row 2: x_ui = 5, no draw above 4: nothing.
    pos = torch.tensor([2.0, 0.0, 5.0])
    neg = torch.tensor([[0.5, 1.5, 9.0], [3.0, 0.2, 0.1], [1.0, 2.0, 3.9]])
    allowed = torch.tensor([[True, True, True], [False, True, True], [True, True, True]])
    expected = math.log(5) * 0.5 + math.log(5) * 1.2
    assert warp_loss(pos, neg, allowed, n_items=11).item() == pytest.approx(expected, rel=1e-6)
    # A violator at the first draw among 1,000 items: floor(999 / 1) -> ln 999 ~ 6.9; 60,000 items
    # would give ln 59,999 ~ 11.0, clipped at LightFM's 10.
    one = warp_loss(torch.tensor([0.0]), torch.tensor([[0.5]]), torch.tensor([[True]]), n_items=1000)
    assert one.item() == pytest.approx(math.log(999) * 1.5, rel=1e-6)
    clipped = warp_loss(torch.tensor([0.0]), torch.tensor([[0.5]]), torch.tensor([[True]]), n_items=60_000)
    assert clipped.item() == pytest.approx(10 * 1.5, rel=1e-6)


def test_warp_model_scores_and_never_takes_a_positive_as_violator():
    data = tiny_interactions()
    features = {"train_positives": train_positives(data)}
    model = build_model(WARP, WARP.Params(factors=2, max_sampled=50), data.n_users, data.n_items, features)
    set_(model.user_factors, torch.zeros(data.n_users, 2))
    set_(model.item_bias, torch.arange(data.n_items, dtype=torch.float32))
    assert model.score(torch.tensor([3]))[0].tolist() == list(range(data.n_items))
    # Every catalogue item violates the margin (all scores tie at 0 with zero factors and biases),
    # so the first allowed draw is j*; positives are never allowed.
    set_(model.item_bias, torch.zeros(data.n_items))
    users = torch.arange(data.n_users)
    draws = model.draw(len(users), torch.device("cpu"))
    allowed = ~model.is_positive(users, draws)
    for user in range(data.n_users):
        mine = set(data.user_positives(user).tolist())
        assert all((int(j) in mine) != bool(ok) for j, ok in zip(draws[user], allowed[user]))


def warp_batch_loss(model: WARP, batch: PointwiseBatch):
    def loss() -> torch.Tensor:
        model._generators.clear()  # the same draws at every call
        return model.loss(batch)
    return loss


def test_warp_fm_mmmf_gradients_match_finite_differences():
    data = tiny_interactions()
    users, pos, neg = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 3]), torch.tensor([5, 6, 7, 8])
    warp = build_model(WARP, WARP.Params(factors=3, l_w=0.1, l_b=0.1), data.n_users, data.n_items,
                       {"train_positives": train_positives(data)})
    batch = pointwise(users, torch.tensor([int(data.user_positives(u)[0]) for u in range(4)]), torch.ones(4))
    assert check_gradients(warp, warp_batch_loss(warp, batch)) > 0
    feats = torch.from_numpy(np.random.default_rng(0).normal(size=(data.n_items, 4)))
    fm = build_model(FM, FM.Params(factors=3), data.n_users, data.n_items, {"visual_features": feats})
    with torch.no_grad():
        fm.item_bias.normal_(generator=torch.Generator().manual_seed(1))
        fm.feature_bias.normal_(generator=torch.Generator().manual_seed(2))
    assert check_gradients(fm, lambda: fm.loss(triples(users, pos, neg))) >= 5 * 4
    mmmf = build_model(MMMF, MMMF.Params(factors=3, margin=1.0, l_b=0.1), data.n_users, data.n_items)
    with torch.no_grad():
        mmmf.item_bias.normal_(generator=torch.Generator().manual_seed(3))
    assert check_gradients(mmmf, lambda: mmmf.loss(triples(users, pos, neg))) > 0


# --- FM --------------------------------------------------------------------------------------
def test_fm_scores_are_the_factorisation_machine_of_the_one_hots_and_features():
    """Brute force: x = [onehot(u) ‖ onehot(i) ‖ f_i], ŷ = Σ w_k x_k + Σ_{k<l} <v_k, v_l> x_k x_l."""
    rng = np.random.default_rng(4)
    n_users, n_items, d, k = 3, 4, 2, 3
    feats = rng.normal(size=(n_items, d))
    model = build_model(FM, FM.Params(factors=k), n_users, n_items, {"visual_features": torch.from_numpy(feats)})
    model.double()
    for parameter in (model.item_bias, model.feature_bias):
        set_(parameter, rng.normal(size=parameter.shape))
    V = np.concatenate([model.user_factors.detach().numpy(), model.item_factors.detach().numpy(),
                        model.feature_factors.detach().numpy()])
    w = np.concatenate([np.zeros(n_users), model.item_bias.detach().numpy(), model.feature_bias.detach().numpy()])
    expected = np.zeros((n_users, n_items))
    for u in range(n_users):
        for i in range(n_items):
            x = np.zeros(n_users + n_items + d)
            x[u], x[n_users + i], x[n_users + n_items:] = 1.0, 1.0, feats[i]
            pairs = sum(V[a] @ V[b] * x[a] * x[b] for a in range(len(x)) for b in range(a + 1, len(x)))
            expected[u, i] = w @ x + pairs
    with torch.no_grad():
        np.testing.assert_allclose(model.score(torch.arange(n_users)).numpy(), expected, rtol=1e-6)
        loss = model.loss(triples(torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([0, 0]))).item()
    x_uij = np.array([expected[0, 1] - expected[0, 0], expected[2, 3] - expected[2, 0]])
    reg = 0.01 / 2 * (np.sum(V[[0, 2]] ** 2) + np.sum(V[n_users + np.array([1, 3])] ** 2)
                      + np.sum(V[n_users + np.array([0, 0])] ** 2) + np.sum(V[n_users + n_items:] ** 2)) \
        + 0.001 / 2 * (np.sum(w[n_users + np.array([1, 3])] ** 2) + 2 * w[n_users] ** 2 + np.sum(w[-d:] ** 2))
    assert loss == pytest.approx(np.log1p(np.exp(-x_uij)).sum() + reg, rel=1e-6)


def test_fm_without_features_is_bprmf_with_an_item_bias():
    data = tiny_interactions()
    model = build_model(FM, FM.Params(factors=2), data.n_users, data.n_items, {})
    with torch.no_grad():
        expected = model.item_bias + model.user_factors[[1, 4]] @ model.item_factors.T
        assert torch.allclose(model.score(torch.tensor([1, 4])), expected)


# --- MMMF ------------------------------------------------------------------------------------
def test_mmmf_hinge_and_scores_by_hand():
    assert margin_ranking_loss(torch.tensor([0.3, -0.2, 2.0]), 1.0).item() == pytest.approx(0.7 + 1.2)
    assert margin_ranking_loss(torch.tensor([0.3, -0.2, 2.0]), 0.0).item() == pytest.approx(0.2)
    model = build_model(MMMF, MMMF.Params(factors=2, l_w=0.5, l_b=0.0, margin=1.0), 1, 3)
    set_(model.user_factors, [[1.0, 2.0]])
    set_(model.item_factors, [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    set_(model.item_bias, [0.0, 0.5, -1.0])
    assert model.score(torch.tensor([0]))[0].tolist() == pytest.approx([1.0, 2.5, 0.5])
    # x_u02 = 1.0 - 0.5 = 0.5 -> hinge .5; reg .5/2 (1 + 4 + 1 + .5)
    loss = model.loss(triples(torch.tensor([0]), torch.tensor([0]), torch.tensor([2])))
    assert loss.item() == pytest.approx(0.5 + 0.25 * 6.5)


# --- planted signals -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    return make_planted(Path(tmp_path_factory.mktemp("planted_baselines")), seed=0)


def test_warp_and_mmmf_recover_the_planted_tastes_better_than_popularity(planted):
    """Measured (seed 0, CPU): Recall@20 PopRank .119, WARP .354, MMMF (margin 1) .302."""
    pop = fit(PopRank, PopRank.Params(), planted)
    warp = fit(WARP, WARP.Params(epochs=20, batch_size=128, lr=0.01, factors=10), planted)
    mmmf = fit(MMMF, MMMF.Params(epochs=20, batch_size=128, lr=0.01, factors=10, margin=1.0), planted)
    base = recall_at(pop, planted.data)
    assert recall_at(warp, planted.data) > base + 0.15
    assert recall_at(mmmf, planted.data) > base + 0.12


def test_fm_with_image_features_ranks_cold_items_by_look(planted):
    """Cold items have features and no train rows: only the feature part of FM can rank them.
    Measured (seed 0, CPU): cold-item AUC BPR-MF .49, FM with features .86; Recall@20 .369 vs .458."""
    fm = fit(FM, FM.Params(epochs=20, batch_size=128, lr=0.01, factors=10), planted)
    bpr = fit(BPRMF, BPRMF.Params(epochs=20, batch_size=128, lr=0.01), planted)
    assert cold_auc(fm, planted.data, planted.cold) > cold_auc(bpr, planted.data, planted.cold) + 0.2
    assert recall_at(fm, planted.data) > recall_at(bpr, planted.data) + 0.05


def test_warp_agrees_with_lightfm_when_installed(planted):
    """Optional cross-check: LightFM's own WARP on the same split reaches a similar Recall@20."""
    lightfm = pytest.importorskip("lightfm", reason="LightFM is not installed (optional cross-check)")
    model = lightfm.LightFM(no_components=10, loss="warp", learning_rate=0.05, random_state=0, max_sampled=10)
    model.fit(planted.data.train_binary.tocoo(), epochs=20, num_threads=1)
    n_users, n_items = planted.data.n_users, planted.data.n_items

    class Wrapped:
        def score(self, users):
            u = np.repeat(users.numpy(), n_items)
            i = np.tile(np.arange(n_items), len(users))
            return torch.from_numpy(model.predict(u, i).reshape(len(users), n_items))

    ours = fit(WARP, WARP.Params(epochs=20, batch_size=128, lr=0.01, factors=10), planted)
    assert abs(recall_at(ours, planted.data) - recall_at(Wrapped(), planted.data)) < 0.1
