"""The set poolings of the aggregation networks against hand-computed outputs on a tiny set, and the
padding contract: a padded set gives exactly the output of the same set unpadded."""
from __future__ import annotations

import math
import pytest
import torch

from elliot_visual.data.samplers import UserSets
from elliot_visual.models.aggregation import (AveragePoolingModel, NeuralAggregationModel,
                                              NeuralAggregationParams, SetCategoryParams)
from elliot_visual.models.average_pooling import AveragePooling
from elliot_visual.models.base import build_model
from elliot_visual.models.context_gating import ContextGating
from elliot_visual.models.neural_aggregation import NeuralAggregation, masked_softmax

# One set of two members x1 = (1, 2), x2 = (3, 4), padded with a third row that must be ignored.
X = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, -50.0]]])
MASK = torch.tensor([[True, True, False]])


def sets(items: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor | None = None) -> UserSets:
    return UserSets(torch.arange(len(items)), items, mask,
                    targets if targets is not None else torch.zeros(len(items), 4))


def test_average_pooling_is_the_mean_of_the_members_only():
    assert torch.allclose(AveragePooling()(X, MASK), torch.tensor([[2.0, 3.0]]))


def test_average_pooling_of_an_empty_set_is_zero_not_nan():
    out = AveragePooling()(X, torch.zeros(1, 3, dtype=torch.bool))
    assert torch.equal(out, torch.zeros(1, 2))


def test_masked_softmax_gives_padding_zero_weight_and_sums_to_one():
    weights = masked_softmax(torch.tensor([[1.0, 3.0, 50.0]]), MASK)
    # softmax(1, 3) = (1, e^2) / (1 + e^2)
    e2 = math.exp(2.0)
    assert weights[0, 2].item() == 0.0
    assert weights[0, :2].tolist() == pytest.approx([1 / (1 + e2), e2 / (1 + e2)], abs=1e-6)
    assert torch.equal(masked_softmax(torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.bool)), torch.zeros(1, 3))


def one_block() -> NeuralAggregation:
    block = NeuralAggregation(2, blocks=1)
    with torch.no_grad():
        block.query.copy_(torch.tensor([1.0, 0.0]))
    return block


def test_one_attention_block_by_hand():
    # q = (1, 0): e = (1, 3); a = (1, e^2) / (1 + e^2); r = a1 x1 + a2 x2 = x1 + 2 a2 (1, 1)
    a2 = math.exp(2) / (1 + math.exp(2))
    pooled, weights = one_block().pool(X, MASK)
    assert weights[0].tolist() == pytest.approx([1 - a2, a2, 0.0], abs=1e-6)
    assert pooled[0].tolist() == pytest.approx([1 + 2 * a2, 2 + 2 * a2], abs=1e-5)


def test_two_attention_blocks_by_hand():
    block = NeuralAggregation(2, blocks=2)
    with torch.no_grad():
        block.query.copy_(torch.tensor([1.0, 0.0]))
        block.transfers[0].weight.copy_(torch.tensor([[0.0, 0.0], [0.1, 0.0]]))
        block.transfers[0].bias.copy_(torch.tensor([0.0, 0.0]))
    a2 = math.exp(2) / (1 + math.exp(2))
    r0 = (1 + 2 * a2, 2 + 2 * a2)
    q1 = (0.0, math.tanh(0.1 * r0[0]))                  # q1 = tanh(W0 r0 + b0)
    e = (2 * q1[1], 4 * q1[1])                           # e_m = q1ᵀ x_m
    b2 = math.exp(e[1]) / (math.exp(e[0]) + math.exp(e[1]))
    pooled, weights = block.pool(X, MASK)
    assert weights[0].tolist() == pytest.approx([1 - b2, b2, 0.0], abs=1e-6)
    assert pooled[0].tolist() == pytest.approx([1 + 2 * b2, 2 + 2 * b2], abs=1e-5)


def test_context_gating_by_hand():
    gate = ContextGating(2)
    with torch.no_grad():
        gate.gate.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
        gate.gate.bias.copy_(torch.tensor([0.0, math.log(3.0)]))
    x = torch.tensor([[math.log(3.0), 4.0]])
    # gate = σ((ln 3, ln 3)) = (0.75, 0.75), a sigmoid (the notebook's tanh would give 0.8)
    assert gate(x)[0].tolist() == pytest.approx([0.75 * math.log(3.0), 3.0], abs=1e-6)


def test_neural_aggregation_rejects_zero_blocks():
    with pytest.raises(ValueError, match="at least one attention block"):
        NeuralAggregation(2, blocks=0)


def model(cls: type, params: SetCategoryParams, n_items: int = 20, dim: int = 6, labels: int = 4):
    torch.manual_seed(0)
    features = {"visual_features": torch.randn(n_items, dim), "item_labels": torch.zeros(n_items, labels)}
    return build_model(cls, params, 3, n_items, features).eval()


def test_weighted_bce_by_hand():
    net = model(AveragePoolingModel, SetCategoryParams(pos_weight=36.0), labels=2)
    with torch.no_grad():
        last = net.head.output
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, math.log(3.0)]))   # logits (0, ln 3): σ = (0.5, 0.75)
    batch = sets(torch.tensor([[1, 2]]), torch.ones(1, 2, dtype=torch.bool), torch.tensor([[1.0, 0.0]]))
    # positive: −36 log 0.5; negative: −log(1 − 0.75); mean over the 2 labels
    assert net.loss(batch).item() == pytest.approx((36 * math.log(2) + math.log(4)) / 2, rel=1e-6)
    assert net.predict(batch)[0].tolist() == pytest.approx([0.5, 0.75], abs=1e-6)


@pytest.mark.parametrize("cls, params", [
    (AveragePoolingModel, SetCategoryParams()),
    (NeuralAggregationModel, NeuralAggregationParams(blocks=1)),
    (NeuralAggregationModel, NeuralAggregationParams(blocks=2, context_gating=True)),
])
def test_padded_set_gives_exactly_the_unpadded_output(cls, params):
    net = model(cls, params)
    alone = sets(torch.tensor([[3, 7, 1, 12, 5]]), torch.ones(1, 5, dtype=torch.bool))
    # the same set padded to width 9 with other (real) items that the mask hides
    padded = sets(torch.tensor([[3, 7, 1, 12, 5, 19, 18, 0, 9]]),
                             mask=torch.tensor([[True] * 5 + [False] * 4]))
    with torch.no_grad():
        assert torch.equal(net.predict(padded), net.predict(alone))
        # within a batch next to another user's full set, what the padding holds changes nothing
        other = torch.tensor([[2, 4, 6, 8, 10, 11, 13, 14, 15]])
        mask = torch.cat([padded.mask, torch.ones(1, 9, dtype=torch.bool)])
        batch = sets(torch.cat([padded.items, other]), mask)
        garbage = sets(torch.cat([torch.tensor([[3, 7, 1, 12, 5, 2, 2, 2, 2]]), other]), mask)
        assert torch.equal(net.predict(batch), net.predict(garbage))
        if isinstance(net, NeuralAggregationModel):
            weights = net.attention(batch)
            assert torch.equal(weights[0, 5:], torch.zeros(4))
            assert torch.equal(net.attention(padded)[0, :5], net.attention(alone)[0])
