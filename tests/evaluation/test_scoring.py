"""Evaluation's scoring seam: a model's item side computed once per evaluation, in blocks; users chunked."""
from __future__ import annotations

import numpy as np
import torch

from elliot_visual.data.samplers import Triples
from elliot_visual.evaluation.scoring import ModelScores, scores_of
from elliot_visual.models.acf import ACF
from elliot_visual.models.base import build_model
from elliot_visual.models.deepstyle import DeepStyle
from elliot_visual.models.vbpr import VBPR
from elliot_visual.training.optimizers import build_optimizer

N_USERS, N_ITEMS = 3, 7
BATCH = Triples(torch.tensor([0, 2, 1]), torch.tensor([1, 0, 3]), torch.tensor([2, 3, 0]),
                torch.full((3,), float("nan"), dtype=torch.float64))


def _features(*shape: int) -> torch.Tensor:
    return torch.from_numpy(np.abs(np.random.default_rng(0).normal(size=shape)).astype(np.float32))


def _vbpr(**params: object) -> VBPR:
    return build_model(VBPR, VBPR.Params(factors=2, factors_d=2, **params), N_USERS, N_ITEMS,
                       {"visual_features": _features(N_ITEMS, 3)})


def test_item_side_is_computed_once_per_evaluation_in_blocks_of_batch_eval() -> None:
    model = _vbpr(batch_eval=3)
    model.eval()
    calls: list[slice] = []
    original = model.item_representation
    model.item_representation = lambda items: calls.append(items) or original(items)  # type: ignore[method-assign]
    scores = ModelScores(model)
    with torch.no_grad():
        first, second = scores(torch.tensor([0, 1])), scores(torch.tensor([2]))
        reference = model.score(torch.arange(N_USERS))
    # 7 items in blocks of 3: [0, 3), [3, 6), [6, 7), once for both batches of users.
    assert [(c.start, c.stop) for c in calls[:3]] == [(0, 3), (3, 6), (6, 7)] and scores.item_passes == 1
    torch.testing.assert_close(torch.cat([first, second]), reference)


def test_each_evaluation_sees_the_weights_of_its_time_after_fused_steps_and_loaded_weights() -> None:
    """Fused Adam updates weights without bumping tensor versions; a new evaluation must see them."""
    model = build_model(VBPR, VBPR.Params(factors=2, factors_d=2, lr=0.1), N_USERS, N_ITEMS,
                        {"visual_features": _features(N_ITEMS, 3)})
    optimizer = build_optimizer(model, "adam")
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    with torch.no_grad():
        before = ModelScores(model)(torch.arange(N_USERS)).clone()
    model.train()
    optimizer.zero_grad()
    model.loss(BATCH).backward()
    optimizer.step()
    model.eval()
    manual = lambda: (torch.cat([model.Gu, model.Tu, torch.ones(N_USERS, 1)], 1)  # noqa: E731
                      @ model.item_representation(slice(0, N_ITEMS)).T).detach()
    with torch.no_grad():
        stepped = ModelScores(model)(torch.arange(N_USERS)).clone()
        torch.testing.assert_close(stepped, manual())
        model.load_state_dict(saved)
        restored = ModelScores(model)(torch.arange(N_USERS))
    assert not torch.equal(before, stepped)
    torch.testing.assert_close(restored, before)


def test_blocked_item_side_gives_the_same_scores_as_one_block() -> None:
    model = build_model(DeepStyle, DeepStyle.Params(factors=3, batch_eval=2), N_USERS, N_ITEMS,
                        {"visual_features": _features(N_ITEMS, 4)})
    with torch.no_grad():
        blocked = ModelScores(model)(torch.arange(N_USERS))
        f, e = model.features.double(), model.E.double()
        expected = model.Gu.double() @ (f @ e - model.Li.double()[model.category] + model.Gi.double()).T
    np.testing.assert_allclose(blocked.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_users_are_chunked_within_the_budget_by_the_models_score_cost() -> None:
    positives = torch.tensor([[0, 1, 2], [3, -1, -1], [0, 2, -1], [5, 6, 4]])
    maps = _features(N_ITEMS, 2, 3)
    model = build_model(ACF, ACF.Params(factors=2, layers_component=(2, 1), layers_item=(2, 1)), 4, N_ITEMS,
                        {"visual_feat_map_features": maps, "train_positives": positives})
    users = torch.arange(4)
    cost = model.score_cost(users)                      # pairs x regions x width: [12, 4, 8, 12]
    assert cost.tolist() == [12, 4, 8, 12]
    scores = ModelScores(model, budget=16)
    # Chunks start where the cost before a user crosses a multiple of 16: 0 | 12 | 16, 24 ... -> [0, 1], [2, 3].
    assert [c.tolist() for c in scores.user_chunks(users)] == [[0, 1], [2, 3]]
    with torch.no_grad():
        torch.testing.assert_close(scores(users), model.score(users))


def test_a_plain_score_function_is_used_as_given() -> None:
    def constant(users: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(users), N_ITEMS)

    assert scores_of(constant) is constant
    assert isinstance(scores_of(_vbpr()), ModelScores)


def test_event_times_reach_a_temporal_models_score_items_chunk_by_chunk_with_one_item_pass() -> None:
    class Timed(VBPR):
        uses_time = True

        def score_items(self, users: torch.Tensor, items: torch.Tensor,
                        at: torch.Tensor | None = None) -> torch.Tensor:
            base = super().score_items(users, items)
            return base if at is None else base + at.unsqueeze(1)

        def score_cost(self, users: torch.Tensor) -> torch.Tensor:
            return torch.full((len(users),), 10)

    model = build_model(Timed, VBPR.Params(factors=2, factors_d=2), N_USERS, N_ITEMS,
                        {"visual_features": _features(N_ITEMS, 3)})
    users, at = torch.arange(N_USERS), torch.tensor([100.0, 200.0, 300.0])
    scores = ModelScores(model, budget=10)                 # one user per chunk
    with torch.no_grad():
        timed = scores(users, at=at)
        torch.testing.assert_close(timed - model.score(users), at.unsqueeze(1).expand(-1, N_ITEMS))
        torch.testing.assert_close(model.score(users, at=at), timed)
    assert len(scores.user_chunks(users)) == 3 and scores.item_passes == 1


def test_registration_requires_a_score_or_both_sides_of_the_scoring_seam() -> None:
    import pytest

    from elliot_visual.models.base import HyperParams, Recommender, register_model

    class ItemSideOnly(Recommender):
        Params = HyperParams

        def item_representation(self, items: slice) -> torch.Tensor:
            return torch.zeros(0)

        def fit(self, data: object) -> None:
            return None

    with pytest.raises(TypeError, match="must implement score_items"):
        register_model("ItemSideOnly")(ItemSideOnly)

    class Neither(Recommender):
        Params = HyperParams

        def fit(self, data: object) -> None:
            return None

    with pytest.raises(TypeError, match=r"must implement score\(users\), or item_representation"):
        register_model("Neither")(Neither)
