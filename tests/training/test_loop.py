"""The one training loop: validation cadence, best-epoch restore, early stopping, resume."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor, nn

from elliot_visual.config.schema import EarlyStopping
from elliot_visual.data.interactions import Interactions
from elliot_visual.models.base import Recommender, TrainParams, build_model, hp
from elliot_visual.models.bprmf import BPRMF
from elliot_visual.training.loop import NonFiniteLossError, TrainingConfig, should_stop, train


@pytest.fixture()
def block_data() -> Interactions:
    """Two user groups, each liking its own half of the items: a signal BPR-MF must learn."""
    rng = np.random.default_rng(0)
    train_rows, test_rows = [], []
    for u in range(40):
        own = np.arange(u % 2, 40, 2)
        chosen = rng.choice(own, size=10, replace=False)
        train_rows += [(f"u{u}", f"i{i}", 1.0, u * 100 + n) for n, i in enumerate(chosen[:8])]
        test_rows += [(f"u{u}", f"i{i}", 1.0) for i in chosen[8:]]
    train = pd.DataFrame(train_rows, columns=["user", "item", "rating", "timestamp"])
    test = pd.DataFrame(test_rows, columns=["user", "item", "rating"])
    return Interactions.from_frames("blocks", train, test, validation=test)


def _group_accuracy(model: Recommender, data: Interactions) -> float:
    """Share of users whose best-scored held-out item belongs to their own group."""
    scores = model.score(torch.arange(data.n_users)).detach().numpy()
    scores[data.train.toarray() > 0] = -np.inf
    best = scores.argmax(1)
    groups = np.array([int(u[1:]) % 2 for u in data.user_ids])
    item_groups = np.array([int(i[1:]) % 2 for i in data.item_ids])
    return float((item_groups[best] == groups).mean())


def test_bprmf_learns_planted_groups(block_data: Interactions) -> None:
    params = BPRMF.Params(epochs=40, batch_size=16, factors=4, lr=0.05, l_w=0.001)
    model = build_model(BPRMF, params, block_data.n_users, block_data.n_items)
    result = train(model, block_data, TrainingConfig(progress=False))
    assert len(result.history) == 40
    assert _group_accuracy(model, block_data) == 1.0


def test_validation_runs_every_rate_epochs_and_best_weights_are_restored(block_data: Interactions) -> None:
    params = BPRMF.Params(epochs=6, batch_size=16, factors=4, lr=0.05)
    model = build_model(BPRMF, params, block_data.n_users, block_data.n_items)
    values = iter([0.1, 0.5, 0.3])
    snapshots: list[Tensor] = []

    def validate(m: Recommender) -> float:
        snapshots.append(m.user_factors.detach().clone())
        return next(values)

    result = train(model, block_data, TrainingConfig(validation_rate=2, progress=False), validate)
    assert [r.epoch for r in result.validations] == [2, 4, 6]
    assert result.best_epoch == 4 and result.best_value == 0.5
    assert torch.equal(model.user_factors.detach(), snapshots[1])


def test_ties_keep_the_first_best_epoch(block_data: Interactions) -> None:
    model = build_model(BPRMF, BPRMF.Params(epochs=3, batch_size=16), block_data.n_users, block_data.n_items)
    result = train(model, block_data, TrainingConfig(progress=False), lambda m: 0.7)
    assert result.best_epoch == 1


@pytest.mark.parametrize(("observations", "patience", "expected"), [
    ([0.5, 0.4, 0.3], 2, True),       # two consecutive drops of a max-monitored metric
    ([0.5, 0.4, 0.45], 2, False),     # the last change improved
    ([0.5, 0.4], 2, False),           # not more than patience observations yet
    ([0.5, 0.4, 0.3], 0, False),      # patience 0 never stops (Elliot's default)
])
def test_early_stopping_follows_elliot_rule(observations: list[float], patience: int, expected: bool) -> None:
    rule = EarlyStopping(monitor="Recall@10", patience=patience)
    assert should_stop(rule, observations) is expected


@pytest.mark.parametrize(("observations", "expected"), [
    ([0.3, 0.5, 0.4, 0.45, 0.42, 0.49, 0.44], True),    # five events since 0.5, none above it
    ([0.3, 0.5, 0.4, 0.45, 0.42, 0.49], False),         # only four since the best
    ([0.3, 0.5, 0.4, 0.5, 0.42, 0.49, 0.44], True),     # equalling the best is no improvement
    ([0.3, 0.5, 0.4, 0.45, 0.42, 0.51, 0.44], False),   # a new best restarts the count
])
def test_since_best_rule_stops_after_patience_events_without_a_new_best(observations: list[float],
                                                                         expected: bool) -> None:
    """The VRS fork's hard-coded rule (patience 5). Elliot's rule would not stop on the first list:
    its last five changes are not all drops."""
    rule = EarlyStopping(monitor="AUC@100", patience=5, rule="since_best")
    assert should_stop(rule, observations) is expected
    assert not should_stop(EarlyStopping(monitor="AUC@100", patience=5), observations)


def test_early_stopping_on_loss_is_min_mode() -> None:
    rule = EarlyStopping(monitor="loss", patience=1)
    assert should_stop(rule, [1.0, 1.2]) and not should_stop(rule, [1.0, 0.9])


def test_early_stop_ends_training(block_data: Interactions) -> None:
    model = build_model(BPRMF, BPRMF.Params(epochs=20, batch_size=16), block_data.n_users, block_data.n_items)
    falling = iter(np.linspace(1.0, 0.0, 20))
    config = TrainingConfig(early_stopping=EarlyStopping(monitor="nDCG@10", patience=2), progress=False)
    result = train(model, block_data, config, lambda m: float(next(falling)))
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1


class _Exploding(Recommender):
    class Params(TrainParams):
        lr: float = hp(1.0)

    def __init__(self, params: TrainParams, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        self.w = nn.Parameter(torch.ones(1))

    def loss(self, batch) -> Tensor:  # noqa: ANN001
        return self.w * float("nan")

    def score(self, users: Tensor) -> Tensor:
        return torch.zeros(len(users), self.n_items)


def test_non_finite_loss_names_model_and_epoch(block_data: Interactions) -> None:
    _Exploding.family = "Exploding"
    model = build_model(_Exploding, _Exploding.Params(epochs=2, batch_size=8), block_data.n_users,
                        block_data.n_items)
    with pytest.raises(NonFiniteLossError, match="Exploding.*epoch 1"):
        train(model, block_data, TrainingConfig(progress=False))


def test_same_seed_gives_identical_weights(block_data: Interactions) -> None:
    def run() -> Tensor:
        model = build_model(BPRMF, BPRMF.Params(epochs=3, batch_size=16, seed=7), block_data.n_users,
                            block_data.n_items)
        train(model, block_data, TrainingConfig(progress=False))
        return model.item_factors.detach().clone()

    assert torch.equal(run(), run())


def test_interrupted_run_resumes_to_identical_weights(block_data: Interactions, tmp_path) -> None:  # noqa: ANN001
    params = BPRMF.Params(epochs=6, batch_size=16, seed=3, lr=0.05)
    full = build_model(BPRMF, params, block_data.n_users, block_data.n_items)
    train(full, block_data, TrainingConfig(progress=False, checkpoint_dir=tmp_path / "a"), lambda m: 0.0 + m.n_items)

    class Interrupt(Exception):
        pass

    calls = {"n": 0}

    def validate_then_crash(m: Recommender) -> float:
        calls["n"] += 1
        if calls["n"] == 4:
            raise Interrupt
        return 0.0 + m.n_items

    first = build_model(BPRMF, params, block_data.n_users, block_data.n_items)
    with pytest.raises(Interrupt):
        train(first, block_data, TrainingConfig(progress=False, checkpoint_dir=tmp_path / "b"), validate_then_crash)
    resumed = build_model(BPRMF, params, block_data.n_users, block_data.n_items)
    result = train(resumed, block_data, TrainingConfig(progress=False, checkpoint_dir=tmp_path / "b", restore=True),
                   lambda m: 0.0 + m.n_items)
    assert result.restored and [r.epoch for r in result.history] == [1, 2, 3, 4, 5, 6]
    # Best is epoch 1 in both runs (constant validation, first wins): compare the last states instead.
    last_full = torch.load(tmp_path / "a" / "last.pt", weights_only=False)["model"]
    last_resumed = torch.load(tmp_path / "b" / "last.pt", weights_only=False)["model"]
    for key in last_full:
        assert torch.equal(last_full[key], last_resumed[key]), key


class _TwoPartRegression(nn.Module):
    """A network that is not a recommender: y = head(body(x)), trained by the same loop.

    Only ``head`` is trainable (the hook); the optimizer's two parameter groups give the body a
    learning rate that would move it a lot if it were not frozen.
    """

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body, self.head = nn.Linear(2, 2), nn.Linear(2, 1)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())

    def configure_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.SGD([{"params": self.head.parameters(), "lr": 0.1},
                                {"params": self.body.parameters(), "lr": 10.0}])

    def loss(self, batch: Tensor) -> Tensor:
        x, y = batch[:, :2], batch[:, 2]
        return ((self.head(self.body(x)).squeeze(1) - y) ** 2).mean()


class _Rows:
    def __init__(self, rows: Tensor) -> None:
        self.rows = rows

    def epoch(self):  # noqa: ANN201
        yield from self.rows.split(8)


def test_any_network_trains_in_the_loop_with_frozen_parameters_and_its_parameter_groups() -> None:
    from elliot_visual.training.loop import run_epochs

    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    rows = _Rows(torch.cat([x, (x.sum(1, keepdim=True) * 2)], 1))
    network = _TwoPartRegression()
    body = {k: v.clone() for k, v in network.body.state_dict().items()}
    head = network.head.weight.detach().clone()
    losses = []
    result = run_epochs(network, rows, 5, TrainingConfig(progress=False),
                        lambda net: losses.append(float(sum(net.loss(b) for b in rows.epoch()))) or -losses[-1])
    assert all(torch.equal(v, network.body.state_dict()[k]) for k, v in body.items())   # frozen: untouched
    assert not torch.equal(head, network.head.weight)                                   # trained
    assert all(p.requires_grad for p in network.parameters())                           # flags restored
    assert losses[-1] < losses[0] and result.best_epoch == 1 + losses.index(min(losses))


def test_a_stop_rule_replaces_elliots_early_stopping() -> None:
    rows = _Rows(torch.cat([torch.ones(8, 2), torch.zeros(8, 1)], 1))
    from elliot_visual.training.loop import run_epochs

    result = run_epochs(_TwoPartRegression(), rows, 10,
                        TrainingConfig(progress=False, stop_rule=lambda observed: len(observed) == 3),
                        lambda net: 0.0)
    assert result.stopped_early and len(result.history) == 3


def test_history_tsv_has_one_row_per_epoch_validation_columns_and_the_kept_epoch(block_data: Interactions,
                                                                                  tmp_path) -> None:  # noqa: ANN001
    params = BPRMF.Params(epochs=4, batch_size=16, factors=4, lr=0.05)
    model = build_model(BPRMF, params, block_data.n_users, block_data.n_items)
    values = iter([{"Recall@10": 0.2, "nDCG@10": 0.4}, {"Recall@10": 0.5, "nDCG@10": 0.3}])
    path = tmp_path / "trial" / "history.tsv"
    result = train(model, block_data, TrainingConfig(progress=False, validation_rate=2, selection="Recall@10",
                                                     history_path=path), lambda m: next(values))
    table = pd.read_csv(path, sep="\t")
    assert list(table.columns) == ["epoch", "loss", "seconds", "Recall@10", "nDCG@10", "best"]
    assert table["epoch"].tolist() == [1, 2, 3, 4]
    assert table["loss"].tolist() == pytest.approx([r.loss for r in result.history])
    assert table["Recall@10"].isna().tolist() == [True, False, True, False]
    assert table.loc[[1, 3], "nDCG@10"].tolist() == [0.4, 0.3]
    assert table["best"].tolist() == [0, 0, 0, 1]
    assert (table["seconds"] > 0).all()
