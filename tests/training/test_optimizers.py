"""The optimizers of ``meta.optimizer``: Elliot's dense Adam by default, opt-in lazy Adam on touched rows."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from elliot_visual.data.interactions import Interactions
from elliot_visual.data.samplers import Triples
from elliot_visual.models.base import build_model
from elliot_visual.models.bprmf import BPRMF
from elliot_visual.models.vbpr import VBPR
from elliot_visual.training.loop import TrainingConfig, train
from elliot_visual.training.optimizers import LazyAdam, build_optimizer

BATCH = Triples(torch.tensor([0, 1, 1]), torch.tensor([2, 3, 3]), torch.tensor([4, 0, 0]),
                torch.full((3,), float("nan"), dtype=torch.float64))


def _vbpr(sparse_optimizer: str) -> tuple[VBPR, torch.optim.Optimizer]:
    features = torch.rand(6, 3, generator=torch.Generator().manual_seed(0))
    model = build_model(VBPR, VBPR.Params(factors=2, factors_d=2, lr=0.1, l_b=0.01), 3, 6,
                        {"visual_features": features})
    return model, build_optimizer(model, sparse_optimizer)


def test_default_adam_is_torchs_adam_and_gradients_stay_dense() -> None:
    model, optimizer = _vbpr("adam")
    assert type(optimizer) is torch.optim.Adam and not model.sparse_rows
    model.loss(BATCH).backward()
    assert not model.Gi.grad.is_sparse


def test_lazy_adam_moves_only_the_rows_of_the_batch_and_every_row_moves_under_dense_adam() -> None:
    lazy, lazy_opt = _vbpr("lazy_adam")
    dense, dense_opt = _vbpr("adam")
    for model, optimizer in ((lazy, lazy_opt), (dense, dense_opt)):
        for _ in range(2):  # the second step: dense Adam moves untouched rows with their old moments
            optimizer.zero_grad()
            model.loss(BATCH).backward()
            optimizer.step()
    start, _ = _vbpr("adam")
    moved_lazy = (lazy.Gi != start.Gi).any(1).tolist()
    assert moved_lazy == [True, False, True, True, True, False]  # items 0, 2, 3, 4 are in the batch
    assert (lazy.Gu != start.Gu).any(1).tolist() == [True, True, False]
    assert lazy.Gi.grad.is_sparse and not lazy.E.grad.is_sparse
    # Rows a batch touched get the same first step under both: Adam's first step is lr * sign(g).
    first_lazy, first_opt = _vbpr("lazy_adam")
    first_dense, first_dense_opt = _vbpr("adam")
    for model, optimizer in ((first_lazy, first_opt), (first_dense, first_dense_opt)):
        model.loss(BATCH).backward()
        optimizer.step()
    torch.testing.assert_close(first_lazy.Gi[[2, 3, 4]], first_dense.Gi[[2, 3, 4]])
    torch.testing.assert_close(first_lazy.E, first_dense.E)


def test_lazy_adam_row_update_is_adams_formula_by_hand() -> None:
    table = torch.nn.Parameter(torch.zeros(4, 1))
    optimizer = LazyAdam([table], lr=0.5)
    gradients = [(torch.tensor([1, 1]), torch.tensor([[1.0], [2.0]])), (torch.tensor([1, 3]), torch.tensor([[-1.0], [4.0]]))]
    for rows, values in gradients:
        table.grad = torch.sparse_coo_tensor(rows.unsqueeze(0), values, (4, 1), check_invariants=True)
        optimizer.step()
    # Row 1: g = 3 then -1 (steps 1, 2); row 3: g = 4 at step 2 only (its moments start at step 2).
    m1 = 0.1 * 3; v1 = 0.001 * 9
    after_1 = -0.5 * (m1 / 0.1) / (math.sqrt(v1 / 0.001) + 1e-8)
    m2 = 0.9 * m1 + 0.1 * -1; v2 = 0.999 * v1 + 0.001 * 1
    after_2 = after_1 - 0.5 * (m2 / (1 - 0.81)) / (math.sqrt(v2 / (1 - 0.999 ** 2)) + 1e-8)
    m3, v3 = 0.1 * 4, 0.001 * 16
    row_3 = -0.5 * (m3 / (1 - 0.81)) / (math.sqrt(v3 / (1 - 0.999 ** 2)) + 1e-8)
    torch.testing.assert_close(table.detach().squeeze(1), torch.tensor([0.0, after_2, 0.0, row_3]))


def test_unknown_optimizer_is_named_in_the_error() -> None:
    model, _ = _vbpr("adam")
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'.*adam, lazy_adam"):
        build_optimizer(model, "sgd")  # type: ignore[arg-type]


def test_bprmf_with_lazy_adam_learns_planted_groups_and_checkpoints_its_moments(tmp_path) -> None:
    rng = np.random.default_rng(0)
    rows, held = [], []
    for u in range(40):
        chosen = rng.choice(np.arange(u % 2, 40, 2), size=10, replace=False)
        rows += [(f"u{u}", f"i{i}", 1.0) for i in chosen[:8]]
        held += [(f"u{u}", f"i{i}", 1.0) for i in chosen[8:]]
    columns = ["user", "item", "rating"]
    data = Interactions.from_frames("blocks", pd.DataFrame(rows, columns=columns),
                                    pd.DataFrame(held, columns=columns))
    params = BPRMF.Params(epochs=30, batch_size=16, factors=4, lr=0.05, l_w=0.001)
    model = build_model(BPRMF, params, data.n_users, data.n_items)
    epochs = iter(range(100))  # a validation value that improves every epoch: the last weights are kept
    train(model, data, TrainingConfig(progress=False, optimizer="lazy_adam", checkpoint_dir=tmp_path),
          lambda m: float(next(epochs)))
    scores = model.score(torch.arange(data.n_users)).detach().numpy()
    scores[data.train.toarray() > 0] = -np.inf
    groups = np.array([int(u[1:]) % 2 for u in data.user_ids])
    item_groups = np.array([int(i[1:]) % 2 for i in data.item_ids])
    assert (item_groups[scores.argmax(1)] == groups).mean() >= 0.9
    state = torch.load(tmp_path / "last.pt", weights_only=False)["optimizer"]
    assert len(state["state"]) == 3 and all("exp_avg" in s for s in state["state"].values())
