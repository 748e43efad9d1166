"""ImgRec Dir / FT / EtE: scores and losses by hand, gradients, freezing, and the paper's bars on
planted data under the paper's protocol (leave-one-out, 1 + 100 sampled negatives outside every
held-out part, eq. 6 AUC with strict ties).

Planted data (``loo``): 240 users, 600 items in 6 styles, ~12 interactions per user (~5 per item,
so co-occurrence is thin), users choosing within their styles by distance to a taste point in
attribute space (``taste: 4``); each user's last interaction is test, the one before validation.

Measured (seeds 0, 1, 2; CPU, one thread), sampled AUC on test:

==========  ==================  ========
model       AUC per seed        mean
==========  ==================  ========
BPR-MF      .735 .775 .816      .775
ImgRec-Dir  .870 .872 .894      .879
ImgRec-FT   .871 .873 .914      .886
==========  ==================  ========

ImgRec-EtE on the same data's pictures (``draw_item_images``, 32 px) with the tiny test CNN from
random weights (stage 1 up to 8 epochs, patience 2; stage 2 4 epochs, all layers tuned): best
validation AUC in stage 1 .768 / .755 / .767, in stage 2 .781 / .773 / .795.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from elliot_visual.config.schema import Evaluation, NegativeSampling
from elliot_visual.data.interactions import Interactions
from elliot_visual.data.samplers import PointwiseBatch
from elliot_visual.data.synthetic import draw_item_images, make_planted_dataset
from elliot_visual.evaluation.evaluator import build_metrics
from elliot_visual.evaluation.sampled import evaluate_sampled
from elliot_visual.models.base import build_model
from elliot_visual.models.bprmf import BPRMF
from elliot_visual.models.imgrec import ImgRecDir, ImgRecEtE, ImgRecFT
from elliot_visual.testing import tiny_interactions
from elliot_visual.testing.backbones import register_tiny_backbone
from elliot_visual.training.loop import TrainingConfig, train

from gradients import check_gradients  # tests/models/gradients.py

FEATURES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])


def untimed(*columns: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The columns plus ``times`` of NaN (these hand-made batches have no timestamps)."""
    return (*columns, torch.full((len(columns[0]),), float("nan"), dtype=torch.float64))


def pointwise(users, items, labels) -> PointwiseBatch:
    return PointwiseBatch(*untimed(users, items, labels))


def set_(parameter: torch.nn.Parameter, values) -> None:
    with torch.no_grad():
        parameter.copy_(torch.as_tensor(values, dtype=parameter.dtype))


def hand_model(cls, **params):
    model = build_model(cls, cls.Params(factors=2, **params), 2, 3, {"visual_features": FEATURES})
    set_(model.W_u, [[1, 0], [0, 1]])
    set_(model.b_u, [0.5, 0])
    set_(model.W_i, [[1, 1], [0, 2], [-1, 0]])
    set_(model.W_img, [[1, 0], [0, -1]])
    set_(model.b_i, [0, 0.5])
    return model


def test_dir_scores_and_loss_by_hand():
    """z_u0 = [1.5, 0], z_u1 = [.5, 1]; z_i = W_i[i] + x_i W_img + b_i: [2, 1.5], [0, 1.5], [1, -1.5]."""
    model = hand_model(ImgRecDir, l_w=0.01)
    assert model.score(torch.tensor([0, 1])).tolist() == [[3.0, 0.0, 1.5], [2.5, 1.5, -1.0]]
    batch = pointwise(torch.tensor([0, 1]), torch.tensor([0, 2]), torch.tensor([1.0, 0.0]))
    # mean(-ln σ(3), -ln(1 - σ(-1))) + .01 (ΣW_u² 2 + ΣW_i² 7 + ΣW_img² 2)
    expected = (np.log1p(np.exp(-3.0)) + np.log1p(np.exp(-1.0))) / 2 + 0.01 * 11
    assert model.loss(batch).item() == pytest.approx(expected, rel=1e-6)


def test_ft_passes_the_features_through_a_trained_relu_layer():
    """φ(x) = ReLU(x W_ft), W_ft = [[1, 0], [-1, 1]]: φ = [1, 0], [0, 1], [0, 2] -> z_i2 = [-1, -1.5]."""
    model = hand_model(ImgRecFT, ft_units=2, l_w=0.0, l_ft=0.5)
    set_(model.ft.weight, [[1, -1], [0, 1]])  # torch stores (out, in)
    set_(model.ft.bias, [0, 0])
    assert model.score(torch.tensor([0])).tolist() == [[3.0, 0.0, -1.5]]
    batch = pointwise(torch.tensor([0]), torch.tensor([1]), torch.tensor([0.0]))
    assert model.loss(batch).item() == pytest.approx(np.log1p(np.exp(0.0)) + 0.5 * 3, rel=1e-6)


def tiny_ete(data: Interactions, images: torch.Tensor, **params) -> ImgRecEtE:
    defaults = dict(backbone=register_tiny_backbone(), weights="random", unfreeze_from="conv2", factors=3,
                    ft_units=4, epochs=1, finetune_epochs=1, batch_size=16)
    return build_model(ImgRecEtE, ImgRecEtE.Params(**{**defaults, **params}), data.n_users, data.n_items,
                       {"images": images})


def reference_pooled(model: ImgRecEtE, images: torch.Tensor) -> torch.Tensor:
    """The tiny CNN written out with torch's functional ops (eval-mode batch norm), from its weights."""
    cnn = dict(model.cnn.graph.named_modules())
    x = (images.float() / 255 - 0.5) / 0.25
    for conv, bn in (("conv1", "bn1"), ("conv2", "bn2")):
        c, b = cnn[conv], cnn[bn]
        x = F.conv2d(x, c.weight, stride=2, padding=1)
        x = torch.relu(F.batch_norm(x, b.running_mean, b.running_var, b.weight, b.bias, False, 0.0, b.eps))
    return x.mean((2, 3))


def test_ete_scores_are_imgrec_over_the_cnns_pooled_pixels():
    data = tiny_interactions()
    images = torch.randint(0, 256, (data.n_items, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    model = tiny_ete(data, images).eval()
    phi = torch.relu(reference_pooled(model, images) @ model.ft.weight.T + model.ft.bias)
    z_i = model.W_i + phi @ model.W_img + model.b_i
    z_u = model.W_u + model.b_u
    with torch.no_grad():
        assert torch.allclose(model.score(torch.arange(data.n_users)), z_u @ z_i.T, atol=1e-5)


def test_ete_stages_freeze_then_tune_from_the_named_module_on():
    data = tiny_interactions()
    images = torch.randint(0, 256, (data.n_items, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    model = tiny_ete(data, images, epochs=2, finetune_epochs=2, lr=0.05, finetune_lr=0.05)
    before = {k: v.clone() for k, v in model.cnn.graph.state_dict().items()}
    stages = model.training_stages()
    assert [(s.name, s.epochs) for s in stages] == [("frozen", 2), ("finetune", 2)]
    cnn = {id(p): name for name, p in model.cnn.graph.named_parameters()}
    stages[0].enter()
    assert not [cnn[id(p)] for p in model.trainable_parameters() if id(p) in cnn]
    stages[1].enter()
    assert sorted(cnn[id(p)] for p in model.trainable_parameters() if id(p) in cnn) == \
        ["bn2.bias", "bn2.weight", "conv2.weight"]
    model.train()
    assert not model.cnn.graph.bn1.training and model.cnn.graph.bn2.training  # frozen BN stays in eval
    result = train(model, data, TrainingConfig(progress=False),
                   validate=lambda m: float(-m.score(torch.arange(4)).abs().mean()))
    assert [r.stage for r in result.history] == ["frozen", "frozen", "finetune", "finetune"]
    assert [r.epoch for r in result.history] == [1, 2, 3, 4]
    after = model.cnn.graph.state_dict()
    for name in ("conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"):
        assert torch.equal(before[name], after[name]), f"{name} changed although frozen"
    if result.best_epoch > 2:  # the kept weights are stage 2's: the tuned part moved
        assert not torch.equal(before["conv2.weight"], after["conv2.weight"])
        assert not torch.equal(before["bn2.running_mean"], after["bn2.running_mean"])
    with pytest.raises(ValueError, match="unfreeze_from: backbone 'tiny_cnn' has no module 'layer3.4.conv2'"):
        tiny_ete(data, images, unfreeze_from="layer3.4.conv2")


def test_imgrec_gradients_match_finite_differences():
    data = tiny_interactions()
    feats = torch.from_numpy(np.random.default_rng(0).normal(size=(data.n_items, 5)).astype(np.float32))
    batch = pointwise(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 3, 5, 7]), torch.tensor([1.0, 0.0, 1.0, 0.0]))
    for cls in (ImgRecDir, ImgRecFT):
        model = build_model(cls, cls.Params(factors=3, l_w=0.01), data.n_users, data.n_items,
                            {"visual_features": feats})
        assert check_gradients(model, lambda: model.loss(batch)) >= 16
    images = torch.randint(0, 256, (data.n_items, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    ete = tiny_ete(data, images)
    ete.training_stages()[1].enter()
    ete.eval()  # batch norm on running statistics: the loss is then a plain function of the weights
    with torch.enable_grad():
        assert check_gradients(ete, lambda: ete.loss(batch), rtol=1e-3) > 6 * 4


# --- the paper's bars on planted data --------------------------------------------------------
SEEDS = (0, 1, 2)
SAMPLING = NegativeSampling(num_items=100, trials=2, seed=1, exclude_all_held_out=True, auc="pairwise")
METRICS = build_metrics(Evaluation(cutoffs=[10], simple_metrics=["AUC", "HR", "nDCG"]))


def loo(seed: int):
    planted = make_planted_dataset(n_users=240, n_items=600, n_styles=6, feature_dim=32, interactions_per_user=12,
                                   seed=seed, taste=4.0)
    frame = planted.interactions
    from_last = frame.groupby("user", sort=False).cumcount(ascending=False)
    data = Interactions.from_frames("planted", frame[from_last >= 2], frame[from_last == 0], frame[from_last == 1])
    order = [int(i) for i in data.item_ids]
    return planted, data, torch.from_numpy(planted.features[order]), order


def sampled_auc(model, data: Interactions, part: str = "test") -> float:
    held = data.test if part == "test" else data.validation
    model.eval()
    with torch.no_grad():
        return evaluate_sampled(model.score, data, held, SAMPLING, METRICS, [10], 10, 0, part=part).values[10]["AUC"]


@pytest.fixture(scope="module")
def bars() -> dict[int, dict[str, float]]:
    out = {}
    common = dict(epochs=20, batch_size=128, lr=0.01, factors=10)
    for seed in SEEDS:
        _, data, feats, _ = loo(seed)
        runs = {"BPRMF": (BPRMF, dict(epochs=40, batch_size=128, lr=0.01)),
                "Dir": (ImgRecDir, dict(common, l_w=0.0001)),
                "FT": (ImgRecFT, dict(common, l_w=0.0001, ft_units=64))}
        out[seed] = {}
        for name, (cls, params) in runs.items():
            model = build_model(cls, cls.Params(**params), data.n_users, data.n_items, {"visual_features": feats})
            train(model, data, TrainingConfig(progress=False))
            out[seed][name] = sampled_auc(model, data)
    return out


def test_imgrec_dir_and_ft_beat_bprmf_in_sampled_auc_on_every_seed(bars):
    for seed, auc in bars.items():
        assert auc["Dir"] > auc["BPRMF"] + 0.05, (seed, auc)
        assert auc["FT"] > auc["BPRMF"] + 0.05, (seed, auc)


def test_imgrec_ft_is_at_least_as_good_as_dir(bars):
    assert np.mean([a["FT"] for a in bars.values()]) >= np.mean([a["Dir"] for a in bars.values()])
    assert all(a["FT"] >= a["Dir"] - 0.01 for a in bars.values())


def test_the_sampled_protocol_gives_identical_numbers_on_a_rerun():
    _, data, feats, _ = loo(0)
    model = build_model(ImgRecDir, ImgRecDir.Params(epochs=2, batch_size=128, lr=0.01, factors=4), data.n_users,
                        data.n_items, {"visual_features": feats})
    train(model, data, TrainingConfig(progress=False))
    held = data.test
    first = evaluate_sampled(model.score, data, held, SAMPLING, METRICS, [10], 10, 0).values
    second = evaluate_sampled(model.score, data, held, SAMPLING, METRICS, [10], 10, 0).values
    assert first == second and set(first[10]) == {"AUC", "AUC_std", "HR", "HR_std", "nDCG", "nDCG_std"}


@pytest.mark.parametrize("seed", SEEDS)
def test_ete_stage_two_does_not_lose_to_stage_one_on_validation(seed):
    planted, data, _, order = loo(seed)
    images = torch.from_numpy(draw_item_images(planted, 32)[order])
    model = tiny_ete(data, images, unfreeze_from="conv1", epochs=8, finetune_epochs=4, batch_size=128, lr=0.01,
                     l_w=0.0001, factors=10, ft_units=32, patience=2, finetune_lr=0.003, finetune_l_w=0.0001)
    result = train(model, data, TrainingConfig(progress=False), validate=lambda m: sampled_auc(m, data, "validation"))
    best = {stage: max(r.validation for r in result.history if r.stage == stage) for stage in ("frozen", "finetune")}
    assert best["finetune"] >= best["frozen"], best
    assert best["frozen"] > 0.7  # the pictures carry the taste even through a random frozen CNN
