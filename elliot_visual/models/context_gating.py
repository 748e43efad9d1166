"""Context gating (Miech, Laptev & Sivic, 2017, eq. 2): a learnt sigmoid gate on each feature."""
from __future__ import annotations

from torch import Tensor, nn


class ContextGating(nn.Module):
    """y = σ(W x + b) ⊙ x  (eq. 2 of Miech et al.); ``x`` (B, F) -> (B, F).

    The gate is a sigmoid, as in the paper and LOUPE's ``context_gating`` without batch norm; the
    aggregation paper's Keras notebook used tanh, which can flip a feature's sign and is not followed.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.gate(x).sigmoid() * x
