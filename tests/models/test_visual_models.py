"""The visual models' maths on tiny inputs: hand-computed scores and losses, float64 gradient checks."""
from __future__ import annotations

import numpy as np
import pydantic
import pytest
import torch
from torch import nn
from torch.func import functional_call

from elliot_visual.data.samplers import Triples
from elliot_visual.evaluation.scoring import ModelScores
from elliot_visual.models.acf import ACF
from elliot_visual.models.base import build_model
from elliot_visual.models.deepstyle import DeepStyle
from elliot_visual.models.dvbpr import DVBPR, same_padding
from elliot_visual.models.pairwise import glorot_
from elliot_visual.models.visrank import VisRank
from elliot_visual.models import vnpr as vnpr_module
from elliot_visual.models.vnpr import VNPR
from elliot_visual.models.vbpr import VBPR

N_USERS, N_ITEMS = 3, 4
BATCH = Triples(torch.tensor([0, 2, 1]), torch.tensor([1, 0, 3]), torch.tensor([2, 3, 0]),
                torch.full((3,), float("nan"), dtype=torch.float64))


def _features(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.abs(np.random.default_rng(seed).normal(size=shape)).astype(np.float32))


def _positives() -> torch.Tensor:
    """u0: items 0, 1; u1: item 3; u2: items 0, 2, 3."""
    return torch.tensor([[0, 1, -1], [3, -1, -1], [0, 2, 3]])


def _gradcheck(model: nn.Module, names: list[str], batch: Triples = BATCH, training: bool = True) -> None:
    """torch.autograd.gradcheck of model.loss(batch) with respect to the named parameters, in float64."""
    model = model.double()
    model.train(training)

    class Loss(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, b: Triples) -> torch.Tensor:
            return self.model.loss(b)

    wrapper = Loss()
    params = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters() if n in names}
    assert set(params) == set(names)

    def loss(*values: torch.Tensor) -> torch.Tensor:
        return functional_call(wrapper, {f"model.{n}": v for n, v in zip(params, values)}, (batch,))

    assert torch.autograd.gradcheck(loss, tuple(params.values()), eps=1e-6, atol=1e-5)


# --- VBPR -----------------------------------------------------------------------------------

def test_vbpr_score_is_bias_plus_latent_plus_visual_terms_as_in_eq_2() -> None:
    feats = _features(N_ITEMS, 5)
    model = build_model(VBPR, VBPR.Params(factors=2, factors_d=3, batch_eval=3), N_USERS, N_ITEMS,
                        {"visual_features": feats})
    with torch.no_grad():
        model.Bi.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    p = {k: v.detach().numpy().astype(np.float64) for k, v in model.named_parameters()}
    f = feats.numpy().astype(np.float64)
    expected = p["Bi"][None] + p["Gu"] @ p["Gi"].T + p["Tu"] @ (f @ p["E"]).T + (f @ p["Bp"]).T
    np.testing.assert_allclose(model.score(torch.arange(N_USERS)).detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_vbpr_loss_is_elliots_bpr_with_its_regularisers_and_l_e_defaulting_to_l_w() -> None:
    params = VBPR.Params(factors=2, factors_d=2, l_w=0.1, l_b=0.5)
    assert params.l_e == 0.1
    feats = _features(N_ITEMS, 3)
    model = build_model(VBPR, params, N_USERS, N_ITEMS, {"visual_features": feats})
    with torch.no_grad():
        model.Bi.copy_(torch.tensor([0.4, -0.1, 0.2, 0.3]))
    x = model.score(torch.arange(N_USERS)).detach()
    u, i, j = BATCH.users, BATCH.pos, BATCH.neg
    x_uij = x[u, i] - x[u, j]
    sq = lambda t: float(t.detach().pow(2).sum())  # noqa: E731
    reg = 0.1 / 2 * (sq(model.Gu[u]) + sq(model.Gi[i]) + sq(model.Gi[j]) + sq(model.Tu[u])) \
        + 0.5 / 2 * sq(model.Bi[i]) + 0.5 / 20 * sq(model.Bi[j]) + 0.1 / 2 * (sq(model.E) + sq(model.Bp))
    expected = float(torch.nn.functional.softplus(-x_uij).sum()) + reg
    assert float(model.loss(BATCH).detach()) == pytest.approx(expected, rel=1e-5)


def test_vbpr_gradients_match_finite_differences() -> None:
    model = build_model(VBPR, VBPR.Params(factors=2, factors_d=2, l_b=0.01), N_USERS, N_ITEMS,
                        {"visual_features": _features(N_ITEMS, 3)})
    _gradcheck(model, ["Bi", "Gu", "Gi", "Tu", "E", "Bp"])


# --- DeepStyle -------------------------------------------------------------------------------

def test_deepstyle_score_subtracts_the_item_latent_from_its_visual_style() -> None:
    feats = _features(N_ITEMS, 5)
    model = build_model(DeepStyle, DeepStyle.Params(factors=3), N_USERS, N_ITEMS, {"visual_features": feats})
    p = {k: v.detach().numpy() for k, v in model.named_parameters()}
    expected = p["Gu"] @ (feats.numpy() @ p["E"] - p["Li"] + p["Gi"]).T
    np.testing.assert_allclose(model.score(torch.arange(N_USERS)).detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_deepstyle_with_item_categories_shares_one_latent_per_category() -> None:
    categories = torch.tensor([1, 0, 1, 1])
    model = build_model(DeepStyle, DeepStyle.Params(factors=3), N_USERS, N_ITEMS,
                        {"visual_features": _features(N_ITEMS, 5), "item_categories": categories})
    assert model.Li.shape == (2, 3) and model.uses_categories
    p = {k: v.detach().numpy() for k, v in model.named_parameters()}
    expected = p["Gu"] @ (_features(N_ITEMS, 5).numpy() @ p["E"] - p["Li"][categories.numpy()] + p["Gi"]).T
    np.testing.assert_allclose(model.score(torch.arange(N_USERS)).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    _gradcheck(model, ["Gu", "Gi", "Li", "E"])


# --- ACF -------------------------------------------------------------------------------------

def _acf(cold_neighbours: int = 10) -> ACF:
    maps = _features(N_ITEMS, 3, 2)                 # 3 regions, 2 channels
    params = ACF.Params(factors=2, layers_component=(3, 1), layers_item=(2, 1), cold_neighbours=cold_neighbours)
    return build_model(ACF, params, N_USERS, N_ITEMS, {"visual_feat_map_features": maps, "train_positives": _positives()})


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def test_acf_user_vector_is_component_then_item_attention_as_in_chen_et_al() -> None:
    model = _acf()
    p = {k: v.detach().numpy().astype(np.float64) for k, v in model.named_parameters()}
    maps = model.feature_maps.numpy().astype(np.float64)
    user, items = 2, [0, 2, 3]
    g_u = p["Gu"][user]
    pooled = []
    for item in items:   # eq. 5-6: attention over the regions of each item
        hidden = np.maximum(g_u @ p["component_in.W_u"] + maps[item] @ p["component_in.W_x"] + p["component_in.b"], 0)
        beta = _softmax((hidden @ p["component_out.0"] + p["component_out.1"]).ravel())
        pooled.append(beta @ maps[item])
    logits = []
    for item, x_bar in zip(items, pooled):   # eq. 3-4: attention over the user's items
        hidden = np.maximum(g_u @ p["item_in.W_u"] + p["Gi"][item] @ p["item_in.W_v"] + p["Pi"][item] @ p["item_in.W_p"]
                            + x_bar @ p["item_in.W_x"] + p["item_in.b"], 0)
        logits.append((hidden @ p["item_out.0"] + p["item_out.1"]).item())
    alpha = _softmax(np.array(logits))
    expected = g_u + alpha @ p["Pi"][items]
    got = model.user_representation(torch.tensor([0, user]))[1].detach().numpy()   # padded with u0's shorter list
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_acf_gradients_match_finite_differences() -> None:
    model = _acf()
    _gradcheck(model, ["Gu", "Gi", "Pi", "component_in.W_u", "component_in.W_x", "component_in.b",
                       "item_in.W_v", "item_in.W_x", "item_out.0"])


def test_acf_cold_item_factor_is_the_similarity_weighted_mean_of_its_visual_neighbours() -> None:
    positives = torch.tensor([[0, 1], [1, 2], [0, -1]])   # item 3 is never a train item: cold
    maps = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0]], [[2.0, 0.1]]])   # one region each
    model = build_model(ACF, ACF.Params(factors=2, cold_neighbours=2), N_USERS, N_ITEMS,
                        {"visual_feat_map_features": maps, "train_positives": positives})
    unit = torch.nn.functional.normalize(maps[:, 0], dim=1)
    sims = unit[3] @ unit[:3].T                        # nearest: item 0, then item 2
    w = sims[[0, 2]] / sims[[0, 2]].sum()
    expected = w[0] * model.Gi[0] + w[1] * model.Gi[2]
    torch.testing.assert_close(model.item_factors()[3], expected.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.item_factors()[:3], model.Gi[:3].detach())


def test_acf_attention_layers_must_end_in_one_unit() -> None:
    with pytest.raises(pydantic.ValidationError, match="ending in 1"):
        ACF.Params(layers_item="(64, 2)")


# --- VNPR ------------------------------------------------------------------------------------

def _vnpr(**params: object) -> VNPR:
    return build_model(VNPR, VNPR.Params(mf_factors=2, mlp_hidden_size=(3, 1), **params), N_USERS, N_ITEMS,
                       {"visual_pca_features": _features(N_ITEMS, 4) - 0.5})


def _tower(layers: nn.ModuleList, x: np.ndarray) -> np.ndarray:
    for layer in layers:
        x = np.maximum(x @ layer.weight.detach().numpy().T + layer.bias.detach().numpy(), 0)
    return x[..., 0]


def test_vnpr_prediction_averages_elliots_two_towers() -> None:
    model = _vnpr()
    for layer in [*model.tower_1, *model.tower_2]:
        nn.init.uniform_(layer.bias, 0.1, 0.3)   # keep the relus alive, so the check is not vacuous
    u, f = model.U_MF.detach().numpy(), model.features.numpy()
    v = model.U_V.detach().numpy()
    inputs = lambda items: np.concatenate([u[:, None] * items[None], v[:, None] * f[None]], -1)  # noqa: E731
    expected = (_tower(model.tower_1, inputs(model.I_MF_1.detach().numpy()))
                + _tower(model.tower_2, inputs(model.I_MF_2.detach().numpy()))) / 2
    np.testing.assert_allclose(model.score(torch.arange(N_USERS)).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    assert np.count_nonzero(expected) > 0


def test_vnpr_scores_are_the_same_when_computed_in_many_user_groups_and_item_blocks(monkeypatch) -> None:
    model = _vnpr()
    for layer in [*model.tower_1, *model.tower_2]:
        nn.init.uniform_(layer.bias, 0.1, 0.3)
    whole = model.score(torch.arange(N_USERS)).detach()
    monkeypatch.setattr(vnpr_module, "KERNEL_COLUMNS", 3)   # one user per group (3 hidden units)
    monkeypatch.setattr(vnpr_module, "SCORE_BUDGET", 6)     # two items per block
    torch.testing.assert_close(model.score(torch.arange(N_USERS)).detach(), whole)
    assert whole.abs().sum() > 0


def test_vnpr_gradients_match_finite_differences_with_one_and_two_towers() -> None:
    for towers in (1, 2):
        model = _vnpr(dropout=0, towers=towers)
        for layer in model.tower_1:
            nn.init.uniform_(layer.bias, 0.1, 0.3)
        names = ["U_MF", "I_MF_1", "U_V", "tower_1.0.weight", "tower_1.1.bias"]
        _gradcheck(model, names + (["I_MF_2", "tower_2.0.weight"] if towers == 2 else []))


def test_vnpr_reads_prob_keep_dropout_as_one_minus_the_dropout_rate() -> None:
    assert VNPR.Params(prob_keep_dropout=0.6).dropout == 0.4
    assert VNPR.Params(prob_keep_dropout="0.4").dropout == 0.6
    assert VNPR.Params(l_w=0.01).l_v == 0.01
    with pytest.raises(pydantic.ValidationError, match="contradicts dropout"):
        VNPR.Params(prob_keep_dropout=0.6, dropout=0.2)


def test_vnpr_dropout_is_active_in_training_only_and_seeded() -> None:
    first, second = _vnpr(dropout=0.5), _vnpr(dropout=0.5)
    first.train(), second.train()
    assert float(first.loss(BATCH).detach()) == float(second.loss(BATCH).detach())   # same seed, same masks
    first.eval()
    assert float(first.loss(BATCH).detach()) != float(second.loss(BATCH).detach())   # eval: no dropout


# --- DVBPR -----------------------------------------------------------------------------------

def _dvbpr() -> DVBPR:
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (N_ITEMS, 3, 24, 24), dtype=np.uint8))
    params = DVBPR.Params(factors=2, fc_units=4, conv_channels=(2, 3), lambda_2=0.01)
    return build_model(DVBPR, params, N_USERS, N_ITEMS, {"images": images})


def test_dvbpr_score_is_the_user_vector_times_the_cnn_embedding_of_the_scaled_image() -> None:
    model = _dvbpr()
    x = (model.images.float() - 127.5) / 127.5
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    hidden = model.conv(x)
    for index, layer in enumerate(model.fc):
        hidden = layer(hidden) if index == len(model.fc) - 1 else torch.relu(layer(hidden))
    torch.testing.assert_close(model.score(torch.arange(N_USERS)), model.Tu @ hidden.T)


@pytest.mark.parametrize("size, pads, out", [(224, (3, 4), 56), (24, (3, 4), 6), (23, (4, 4), 6)])
def test_dvbpr_first_convolution_pads_same_as_tensorflow(size: int, pads: tuple[int, int], out: int) -> None:
    """TF 'same' at stride 4, kernel 11: output ceil(size / 4); total padding (out-1)*4 + 11 - size,
    the odd pixel after (224 -> 7 = 3 + 4; 23 -> 8 = 4 + 4)."""
    pad = same_padding((size, size), kernel=11, stride=4)
    assert pad.padding == (*pads, *pads)
    conv = torch.nn.Conv2d(1, 1, 11, stride=4)
    assert conv(pad(torch.zeros(1, 1, size, size))).shape[-2:] == (out, out)


def test_dvbpr_layers_start_as_keras_does_glorot_kernels_and_zero_biases() -> None:
    model = _dvbpr()
    first = model.conv[1]
    bound = (6 / (3 * 121 + 2 * 121)) ** 0.5  # Keras: fan_in = 3 * 11 * 11, fan_out = 2 * 11 * 11
    assert float(first.weight.detach().abs().max()) <= bound and float(first.weight.detach().abs().max()) > 0.8 * bound
    layers = [m for m in [*model.conv, *model.fc] if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 8 and all(float(m.bias.detach().abs().max()) == 0 for m in layers)


def test_dvbpr_item_embeddings_are_recomputed_after_the_weights_change() -> None:
    model = _dvbpr()
    model.eval()
    with torch.no_grad():
        before = ModelScores(model)(torch.arange(N_USERS)).clone()
        model.fc[-1].bias.add_(1.0)
        after = ModelScores(model)(torch.arange(N_USERS))   # the next evaluation's scores
    torch.testing.assert_close(after - before, model.Tu.detach().sum(1, keepdim=True).expand_as(after))


def test_dvbpr_gradients_match_finite_differences() -> None:
    # Dropout off (eval mode): the loss must be a deterministic function of the weights.
    _gradcheck(_dvbpr(), ["Tu", "conv.1.bias", "conv.4.bias", "fc.0.weight", "fc.2.weight"], training=False)


# --- VisRank ---------------------------------------------------------------------------------

def test_visrank_scores_are_max_or_mean_cosine_to_the_users_items() -> None:
    feats = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [3.0, 0.3]])
    features = {"visual_features": feats, "train_positives": _positives()}
    unit = torch.nn.functional.normalize(feats, dim=1)
    cos = unit @ unit.T
    best = build_model(VisRank, VisRank.Params(), N_USERS, N_ITEMS, features).score(torch.arange(N_USERS))
    torch.testing.assert_close(best[0], torch.maximum(cos[0], cos[1]))
    torch.testing.assert_close(best[1], cos[3])
    mean = build_model(VisRank, VisRank.Params(aggregation="mean"), N_USERS, N_ITEMS, features)
    torch.testing.assert_close(mean.score(torch.tensor([2]))[0], (cos[0] + cos[2] + cos[3]) / 3)
    assert VisRank.report_name(VisRank.Params(aggregation="mean")) == "VisRank_agg=mean_load=VisualAttributes"


def test_glorot_init_matches_keras_bounds() -> None:
    weights = glorot_(torch.empty(300, 100))
    assert float(weights.abs().max()) <= (6 / 400) ** 0.5 and float(weights.abs().max()) > 0.9 * (6 / 400) ** 0.5
