"""Neural aggregation: attention blocks that pool a variable-size set (Yang et al., CVPR 2017)."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over dim 1 of ``scores`` (B, L) restricted to ``mask`` (B, L) bool.

    Padded positions get weight exactly 0, so a padded set pools exactly like the same set
    unpadded; a row without members gets all-zero weights instead of NaN.
    """
    filled = scores.masked_fill(~mask, float("-inf"))
    peak = filled.amax(dim=1, keepdim=True).clamp_min(torch.finfo(scores.dtype).min)
    exp = (filled - peak).exp() * mask
    return exp / exp.sum(dim=1, keepdim=True).clamp_min(torch.finfo(scores.dtype).tiny)


class NeuralAggregation(nn.Module):
    """A cascade of ``blocks`` attention blocks over a set of vectors x_m (Yang et al., eqs. 1-3).

    Block k: e_m = q_kᵀ x_m, a = softmax_m(e) over the set's members, r_k = Σ_m a_m x_m.
    The first query q_0 is a learnt vector (zeros at start: the first block begins as average
    pooling); each next one is q_{k+1} = tanh(W_k r_k + b_k) (eq. 3). The output is the last r.
    The paper uses one or two blocks; more continue the same cascade.

    Shapes: ``x`` (B, L, F), ``mask`` (B, L) bool -> (B, F); :meth:`attention` gives the last
    block's weights (B, L), zero on padding.
    """

    def __init__(self, dim: int, blocks: int = 2) -> None:
        super().__init__()
        if blocks < 1:
            raise ValueError(f"NeuralAggregation needs at least one attention block, got {blocks}")
        self.query = nn.Parameter(torch.zeros(dim))
        self.transfers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(blocks - 1))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.pool(x, mask)[0]

    def attention(self, x: Tensor, mask: Tensor) -> Tensor:
        """(B, L) the last block's weights a_m: where the aggregate looks."""
        return self.pool(x, mask)[1]

    def pool(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(r, a) of the last block: (B, F) aggregate and (B, L) attention weights."""
        query = self.query.expand(x.shape[0], -1)
        weights, pooled = self._block(x, mask, query)
        for transfer in self.transfers:
            query = torch.tanh(transfer(pooled))         # eq. 3: q1 = tanh(W0 r0 + b0)
            weights, pooled = self._block(x, mask, query)
        return pooled, weights

    @staticmethod
    def _block(x: Tensor, mask: Tensor, query: Tensor) -> tuple[Tensor, Tensor]:
        # Elementwise products and sums rather than batched matmuls: each member's score and the
        # weighted sum do not depend on how far the set is padded, bit for bit.
        scores = (x * query.unsqueeze(1)).sum(dim=-1)              # eq. 1: e_m = qᵀ x_m
        weights = masked_softmax(scores, mask)                     # eq. 2, padding masked out
        return weights, (weights.unsqueeze(-1) * x).sum(dim=1)     # r = Σ a_m x_m
