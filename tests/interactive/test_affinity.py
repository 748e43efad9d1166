"""The affinity vector (eq. 5), its normalisation N and guard, refinement (eqs. 6-7), the lists."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from elliot_visual.cli import main
from elliot_visual.interactive.affinity import (AffinityExplorer, FeatureScorer, Step, UnknownNameError, normalise,
                                               parse_step)
from elliot_visual.interactive.trained_run import RunError, load_trained_run
from elliot_visual.models.base import build_model
from elliot_visual.models.tvbpr import TVBPR
from elliot_visual.models.vbpr import VBPR

from attribute_project import ATTRIBUTES, item_attribute, user_attribute

NAMES = ["floral", "denim", "stripes"]


def test_normalise_divides_by_the_sum() -> None:
    np.testing.assert_allclose(normalise(np.array([1.0, 3.0])), [0.25, 0.75])
    np.testing.assert_allclose(normalise(np.array([0.0, 2.0, 2.0])), [0.0, 0.5, 0.5])


def test_normalise_guard_for_a_non_positive_sum_or_negative_entries_keeps_the_order() -> None:
    np.testing.assert_allclose(normalise(np.array([-1.0, -2.0, -3.0])), [2 / 3, 1 / 3, 0.0])
    np.testing.assert_allclose(normalise(np.array([1.0, -1.0])), [1.0, 0.0])
    np.testing.assert_allclose(normalise(np.array([2.0, -1.0, 1.0])), [0.6, 0.0, 0.4])  # (3, 0, 2) / 5
    np.testing.assert_allclose(normalise(np.zeros(4)), [0.25] * 4)


@pytest.fixture
def tiny_vbpr() -> tuple[VBPR, np.ndarray]:
    """VBPR with 3 users, 4 items, 3 named features, every parameter set by hand."""
    features = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], np.float32)
    params = VBPR.Params(factors=2, factors_d=2, epochs=1)
    model = build_model(VBPR, params, 3, 4, {"visual_features": torch.from_numpy(features)})
    with torch.no_grad():
        model.Bi.copy_(torch.tensor([0.1, -0.2, 0.0, 0.3]))
        model.Gu.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]))
        model.Gi.copy_(torch.tensor([[0.2, 0.1], [0.0, 0.4], [0.3, 0.3], [0.1, 0.0]]))
        model.Tu.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        model.E.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, -1.0]]))
        model.Bp.copy_(torch.tensor([[0.1], [0.0], [-0.1]]))
    return model, features


def _explorer(model: VBPR, features: np.ndarray, train: sp.csr_matrix | None = None) -> AffinityExplorer:
    return AffinityExplorer(model, features, NAMES, ["u0", "u1", "u2"], ["a", "b", "c", "d"], train, sample_size=4)


def test_affinity_vector_is_eq_5_over_the_item_sample(tiny_vbpr) -> None:  # noqa: ANN001
    model, features = tiny_vbpr
    explorer = _explorer(model, features)
    assert explorer.sample.tolist() == [0, 1, 2, 3]  # the whole catalogue when the sample is as large
    # user u0: b_i + γ_u·γ_i summed over the 4 items = (0.1+0.2) + (-0.2+0) + (0+0.3) + (0.3+0.1) = 0.8;
    # θ_u·E h(k) + β'_k = 2*E[k,0] + Bp[k] = 2.1, 0.0, 0.9 -> p = 0.8 + 4 * (2.1, 0, 0.9) = (9.2, 0.8, 4.4)
    np.testing.assert_allclose(explorer.affinity("u0"), np.array([9.2, 0.8, 4.4]) / 14.4, rtol=1e-6)
    # user u1: Σ b_i + γ_u·γ_i = 0.2 + 0.2 + 0.3 + 0.3 = 1.0; θ_u·E h(k) + β'_k = (0.1, 1.0, -1.1)
    # -> p = (1.4, 5.0, -3.4): a negative entry, so N's guard normalises p - min p = (4.8, 8.4, 0)
    np.testing.assert_allclose(explorer.affinity("u1"), np.array([4.8, 8.4, 0.0]) / 13.2, rtol=1e-6)


def test_refinement_toward_an_item_and_a_feature_are_eqs_6_and_7(tiny_vbpr) -> None:  # noqa: ANN001
    model, features = tiny_vbpr
    explorer = _explorer(model, features)
    p = np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(explorer.toward_item(p, "c", phi=1.0), np.array([1.0, 0.8, 0.2]) / 2.0)
    np.testing.assert_allclose(explorer.toward_feature(p, "stripes", phi=0.5), np.array([0.5, 0.3, 0.7]) / 1.5)
    steps = [Step("item", "c", 1.0), Step("feature", "stripes", 0.5)]
    expected = normalise(normalise(explorer.affinity("u2") + features[2]) + np.array([0, 0, 0.5]))
    np.testing.assert_allclose(explorer.refined("u2", steps), expected)


def test_lists_are_cosine_nearest_items_without_the_users_train_items(tiny_vbpr) -> None:  # noqa: ANN001
    model, features = tiny_vbpr
    train = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    explorer = _explorer(model, features, train)
    p = np.array([0.6, 0.4, 0.0])   # cosine to a = 0.832, b = 0.555, c = 0.981, d = 0
    assert [r.item_id for r in explorer.recommend(p, 4)] == ["c", "a", "b", "d"]
    assert [r.item_id for r in explorer.recommend(p, 2, user="u0")] == ["c", "b"]
    assert explorer.recommend(p, 1)[0].distance == pytest.approx(1 - 0.5 / np.sqrt(0.52 * 0.5))


def test_unknown_user_item_and_feature_are_named(tiny_vbpr) -> None:  # noqa: ANN001
    explorer = _explorer(*tiny_vbpr)
    with pytest.raises(UnknownNameError, match="unknown user 'nobody'"):
        explorer.affinity("nobody")
    with pytest.raises(UnknownNameError, match="unknown item 'zz'"):
        explorer.toward_item(np.ones(3) / 3, "zz")
    with pytest.raises(UnknownNameError, match="unknown feature 'velvet' .*floral"):
        explorer.toward_feature(np.ones(3) / 3, "velvet")
    with pytest.raises(ValueError, match="must read 'item:<item id>'"):
        parse_step("colour:red")
    assert parse_step("item:B0:7", 0.3) == Step("item", "B0:7", 0.3)


@pytest.mark.parametrize("model", ["VBPR", "ITVBPR"])
def test_planted_users_rank_their_attribute_first(attribute_run: Path, model: str) -> None:
    explorer = load_trained_run(attribute_run, model).explorer()
    firsts = [explorer.top_features(explorer.affinity(u), 1)[0][0] for u in explorer.user_ids]
    hits = sum(f == ATTRIBUTES[user_attribute(u)] for u, f in zip(explorer.user_ids, firsts))
    assert hits >= 0.9 * len(explorer.user_ids)


def test_refinement_toward_an_item_moves_the_list_toward_its_neighbours(attribute_run: Path) -> None:
    explorer = load_trained_run(attribute_run).explorer()
    rises = []
    for user in explorer.user_ids[:12]:
        target = next(i for i in explorer.item_ids if item_attribute(i) != user_attribute(user))
        neighbours = {r.item_id for r in explorer.recommend(explorer.features[explorer.item_index(target)], 10)}
        before = {r.item_id for r in explorer.recommend(explorer.affinity(user), 10, user=user)}
        refined = explorer.refined(user, [Step("item", target, 1.0)])
        after = {r.item_id for r in explorer.recommend(refined, 10, user=user)}
        rises.append(len(after & neighbours) > len(before & neighbours))
    assert all(rises)


def test_boosting_a_feature_fills_the_list_with_it(attribute_run: Path) -> None:
    explorer = load_trained_run(attribute_run).explorer()
    user = "u0"                                    # likes floral
    refined = explorer.refined(user, [Step("feature", "plaid", 1.0)])
    listed = [item_attribute(r.item_id) for r in explorer.recommend(refined, 5, user=user)]
    assert listed == [list(ATTRIBUTES).index("plaid")] * 5


def test_affinity_cli_prints_top_features_and_the_refined_list(attribute_run: Path, capsys) -> None:  # noqa: ANN001
    assert main(["affinity", "--run", str(attribute_run), "--user", "u1", "--toward-feature", "silk",
                 "--phi-feature", "1.0", "-k", "3"]) == 0
    out = capsys.readouterr().out
    explorer = load_trained_run(attribute_run).explorer()
    first = explorer.top_features(explorer.affinity("u1"), 1)[0][0]
    refined = explorer.recommend(explorer.refined("u1", [Step("feature", "silk", 1.0)]), 3, user="u1")
    lines = out.splitlines()
    assert lines[1] == "top features (affinity, eq. 5):" and lines[2].startswith(f"  {first}\t")
    assert [line.split("\t")[1] for line in lines[-3:]] == [r.item_id for r in refined]


@pytest.mark.parametrize("args,message", [
    (["--user", "ghost"], "unknown user 'ghost'"),
    (["--user", "u1", "--toward-item", "i999"], "unknown item 'i999'"),
    (["--user", "u1", "--toward-feature", "velvet"], "unknown feature 'velvet'"),
    (["--user", "u1", "--model", "MostPop"], "not a VBPR-family model"),
])
def test_affinity_cli_errors_name_what_is_unknown(attribute_run: Path, capsys, args, message) -> None:  # noqa: ANN001
    assert main(["affinity", "--run", str(attribute_run), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_folder_without_a_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no run.json"):
        load_trained_run(tmp_path)
    assert RunError.__mro__[1] is ValueError


def test_vbpr_scores_with_its_own_features_equal_its_scores(tiny_vbpr) -> None:  # noqa: ANN001
    model, features = tiny_vbpr
    users, items = torch.arange(3), torch.arange(4)
    with torch.no_grad():
        torch.testing.assert_close(model.score_with_features(users, items, torch.from_numpy(features)),
                                   model.score(users))


def test_tvbpr_scores_with_features_at_a_time_epoch_equal_its_scores() -> None:
    features = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    span = torch.tensor([0.0, 4 * 86_400.0], dtype=torch.float64)
    model = build_model(TVBPR, TVBPR.Params(factors=2, factors_d=2, time_epochs=2, time_bins=4), 2, 3,
                        {"visual_features": features, "train_time_span": span})
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.linspace(-1, 1, parameter.numel()).reshape(parameter.shape))
        users, items = torch.tensor([0, 1]), torch.arange(3)
        early = torch.full((2,), 0.5 * 86_400, dtype=torch.float64)
        torch.testing.assert_close(model.score_with_features(users, items, features, at=0.5 * 86_400),
                                   model.score(users, at=early))
        torch.testing.assert_close(model.score_with_features(users, items, features), model.score(users))  # "now"
    assert isinstance(model, FeatureScorer)
