"""The conformance suite every registered model passes, reusable by third-party models.

``RecommenderContract(MyModel).run_all()`` checks, on a tiny dataset with cold items and
generated features for every kind the model reads:

* ``score_shape``: ``score(users)`` is (len(users), n_items), floating, never NaN (cold items too);
  for a multilabel model ``predict`` of the users' sets is (len(users), D);
* ``deterministic_under_seed``: two models built and trained with the same seed score identically;
* ``finite_loss``: a gradient model's loss on one batch is a finite scalar with finite gradients;
* ``state_dict_round_trip``: a freshly built (untrained) model loading a trained model's saved
  ``state_dict`` gives identical scores, so saved weights restore a run exactly;
* ``user_order``: scoring a shuffled subset of users gives the rows of scoring everyone (batched
  scoring never mixes users);
* ``padding_invariance``: a multilabel model's output for a set does not change when the batch is
  padded wider (padding is masked out);
* ``evaluation_scores``: evaluation's scoring (:class:`~elliot_visual.evaluation.scoring.ModelScores`:
  the item side cached and computed in blocks, users chunked within a tiny budget) gives the
  model's own ``score``.

Temporal models (``uses_time``) are scored at a fixed time inside the training span.

In pytest, parametrise over the registry (see ``tests/models/test_contract.py``)::

    @pytest.mark.parametrize("check", RecommenderContract.CHECKS)
    def test_my_model(check):
        RecommenderContract(MyModel).run(check)
"""
from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from elliot_visual.data.interactions import Interactions
from elliot_visual.data.samplers import UserSets, user_sets
from elliot_visual.evaluation.scoring import ModelScores
from elliot_visual.features.store import train_positives, train_time_span
from elliot_visual.models.base import Recommender, build_model
from elliot_visual.training.loop import TrainingConfig, build_sampler, train

# Small values for hyperparameters a model may declare, so the suite runs in well under a second.
SMALL_PARAMS: dict[str, Any] = {
    "epochs": 2, "batch_size": 8, "batch_eval": 5, "factors": 4, "factors_d": 3, "mf_factors": 4,
    "mlp_hidden_size": (4, 1), "layers_component": (4, 1), "layers_item": (4, 1), "fc_units": 8,
    "conv_channels": (4, 8), "lr": 0.01,
}
FEATURE_DIM, PCA_DIM, REGIONS, CHANNELS, IMAGE_SIZE, N_CATEGORIES, N_LABELS = 6, 3, 4, 5, 24, 3, 4


def tiny_interactions(seed: int = 0) -> Interactions:
    """12 users, 12 train items and 3 cold items (features, test rows, no train rows); ids ``u0``/``i0``."""
    rng = np.random.default_rng(seed)
    train_rows, test_rows = [], []
    for user in range(12):
        items = rng.choice(12, size=int(rng.integers(3, 6)), replace=False)
        train_rows += [(f"u{user}", f"i{item}", 1.0, 1_600_000_000 + 86_400 * (user + r))
                       for r, item in enumerate(items[:-1])]
        test_rows.append((f"u{user}", f"i{items[-1]}", 1.0, 1_700_000_000))
        test_rows.append((f"u{user}", f"i{12 + user % 3}", 1.0, 1_700_000_000))
    columns = ["user", "item", "rating", "timestamp"]
    return Interactions.from_frames("tiny", pd.DataFrame(train_rows, columns=columns),
                                    pd.DataFrame(test_rows, columns=columns), extra_items=["i12", "i13", "i14"])


def tiny_features(kinds: tuple[str, ...], data: Interactions, seed: int = 0) -> dict[str, Tensor]:
    """Random features of each kind in ``kinds``, aligned to ``data.item_ids`` (``train_positives`` from data)."""
    rng = np.random.default_rng(seed)
    n = data.n_items
    make = {
        "visual_features": lambda: torch.from_numpy(np.abs(rng.normal(size=(n, FEATURE_DIM))).astype(np.float32)),
        "visual_pca_features": lambda: torch.from_numpy(rng.normal(size=(n, PCA_DIM)).astype(np.float32)),
        "visual_feat_map_features": lambda: torch.from_numpy(
            np.abs(rng.normal(size=(n, REGIONS, CHANNELS))).astype(np.float32)),
        "images": lambda: torch.from_numpy(rng.integers(0, 256, size=(n, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)),
        "item_categories": lambda: torch.from_numpy(rng.integers(0, N_CATEGORIES, size=n).astype(np.int64)),
        "item_labels": lambda: torch.from_numpy(np.maximum(rng.random((n, N_LABELS)) < 0.3,
                                                           np.eye(N_LABELS)[np.arange(n) % N_LABELS]).astype(np.float32)),
        "train_positives": lambda: train_positives(data),
        "train_time_span": lambda: train_time_span(data),
    }
    unknown = [k for k in kinds if k not in make]
    if unknown:
        raise ValueError(f"the contract cannot generate feature kinds {unknown}; pass features= explicitly")
    return {kind: make[kind]() for kind in kinds}


class RecommenderContract:
    """The checks of the module docstring for one model class (``params`` override the small defaults)."""

    CHECKS = ("score_shape", "deterministic_under_seed", "finite_loss", "state_dict_round_trip", "user_order",
              "padding_invariance", "evaluation_scores")

    def __init__(self, model_cls: type[Recommender], params: Mapping[str, Any] | None = None,
                 data: Interactions | None = None, features: Mapping[str, Tensor] | None = None) -> None:
        self.model_cls = model_cls
        self.data = data if data is not None else tiny_interactions()
        kinds = tuple(model_cls.needs) + tuple(getattr(model_cls, "optional_needs", ()))
        self.features = dict(features) if features is not None else tiny_features(kinds, self.data)
        fields = model_cls.Params.model_fields
        values = {k: v for k, v in SMALL_PARAMS.items() if k in fields}
        self.params = model_cls.Params(**{**values, **(params or {})})

    # --- helpers ---------------------------------------------------------------------------
    def build(self) -> Recommender:
        return build_model(self.model_cls, self.params, self.data.n_users, self.data.n_items, self.features)

    @property
    def multilabel(self) -> bool:
        return "multilabel" in self.model_cls.tasks

    def trained(self) -> Recommender:
        """A model built and trained (or fitted) on the tiny data, on the CPU."""
        model = self.build()
        train(model, self.data, TrainingConfig(progress=False), features=self.features)
        return model

    def sets(self, users: Tensor, pad_to: int = 0) -> UserSets:
        """The users' train item sets as one batch (padded to at least ``pad_to`` columns)."""
        batch = user_sets(self.data.train_binary, users.numpy(), self.features["item_labels"].numpy(), 10 ** 6,
                          np.random.default_rng(0))
        extra = max(0, pad_to - batch.items.shape[1])
        if extra:
            batch = UserSets(batch.users, torch.nn.functional.pad(batch.items, (0, extra)),
                             torch.nn.functional.pad(batch.mask, (0, extra)), batch.targets)
        return batch

    def scores(self, model: Recommender, users: Tensor | None = None) -> Tensor:
        """The model's outputs for ``users``: ``score`` rows, ``predict`` of their sets (multilabel),
        at a time inside the training span for temporal models."""
        users = torch.arange(self.data.n_users) if users is None else users
        model.eval()
        with torch.no_grad():
            if self.multilabel:
                return model.predict(self.sets(users)).detach().float()
            if self.model_cls.uses_time:
                at = torch.full((len(users),), float(np.median(self.data.train_timestamps.data)), dtype=torch.float64)
                return model.score(users, at=at).detach().float()
            return model.score(users).detach().float()

    def applies(self, check: str) -> bool:
        """Whether ``check`` concerns this model (``finite_loss`` only gradient models,
        ``padding_invariance`` only multilabel ones, ``evaluation_scores`` only ranking ones)."""
        if check == "finite_loss":
            return self.model_cls.is_gradient_model()
        if check == "padding_invariance":
            return self.multilabel
        if check == "evaluation_scores":
            return not self.multilabel
        return True

    # --- the checks --------------------------------------------------------------------------
    def check_score_shape(self) -> None:
        model = self.trained()
        users = torch.tensor([3, 0, 7])
        scores = self.scores(model, users)
        width = self.features["item_labels"].shape[1] if self.multilabel else self.data.n_items
        assert tuple(scores.shape) == (3, width), \
            f"{self.model_cls.__name__} returned {tuple(scores.shape)}, expected (3, {width})"
        assert scores.is_floating_point(), "scores must be floating point"
        assert not torch.isnan(scores).any(), "scores contain NaN (cold items are the last three columns)"

    def check_deterministic_under_seed(self) -> None:
        first, second = self.scores(self.trained()), self.scores(self.trained())
        assert torch.equal(first, second), f"{self.model_cls.__name__}: same seed, different scores"

    def check_finite_loss(self) -> None:
        model = self.build()
        batch = next(iter(build_sampler(model, self.data, self.features).epoch()))
        loss = model.loss(batch)
        assert loss.dim() == 0, f"loss must be a scalar, got shape {tuple(loss.shape)}"
        assert torch.isfinite(loss), f"loss is {loss.item()}"
        loss.backward()
        for name, parameter in model.named_parameters():
            if parameter.grad is not None:
                assert torch.isfinite(parameter.grad).all(), f"gradient of {name} is not finite"

    def check_state_dict_round_trip(self) -> None:
        model = self.trained()
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        buffer.seek(0)
        restored = self.build()
        restored.load_state_dict(torch.load(buffer, weights_only=True))
        assert torch.equal(self.scores(model), self.scores(restored)), \
            f"{self.model_cls.__name__}: scores differ after restoring the saved state_dict"

    def check_user_order(self) -> None:
        model = self.trained()
        everyone = self.scores(model)
        subset = torch.tensor([9, 2, 11, 5, 0])
        assert torch.allclose(self.scores(model, subset), everyone[subset], rtol=1e-5, atol=1e-6), \
            f"{self.model_cls.__name__}: scoring a subset of users differs from scoring everyone"

    def check_padding_invariance(self) -> None:
        model = self.trained()
        model.eval()
        users = torch.tensor([1, 4, 6])
        with torch.no_grad():
            plain = model.predict(self.sets(users)).float()
            padded = model.predict(self.sets(users, pad_to=self.sets(users).items.shape[1] + 5)).float()
        assert torch.allclose(plain, padded, rtol=1e-5, atol=1e-6), \
            f"{self.model_cls.__name__}: padding a set changes its output (is the padding masked?)"

    def check_evaluation_scores(self) -> None:
        model = self.trained().eval()
        users = torch.arange(self.data.n_users)
        evaluation = ModelScores(model, budget=64)
        at = None
        if self.model_cls.uses_time:
            at = torch.full((len(users),), float(np.median(self.data.train_timestamps.data)), dtype=torch.float64)
        with torch.no_grad():
            parts = [(users[:5], None if at is None else at[:5]), (users[5:], None if at is None else at[5:])]
            blocked = torch.cat([evaluation(part, at=when) for part, when in parts]).float()
        assert torch.allclose(blocked, self.scores(model), rtol=1e-5, atol=1e-6), \
            f"{self.model_cls.__name__}: evaluation's blocked, cached scoring differs from score(users)"

    def run(self, check: str) -> None:
        """Run one check by name (one of :attr:`CHECKS`)."""
        if check not in self.CHECKS:
            raise ValueError(f"unknown check {check!r}; known: {', '.join(self.CHECKS)}")
        getattr(self, f"check_{check}")()

    def run_all(self) -> None:
        for check in self.CHECKS:
            if self.applies(check):
                self.run(check)
