"""Average pooling of a padded set of item vectors: the baseline aggregation of Demochkin & Savchenko (2019)."""
from __future__ import annotations

from torch import Tensor, nn


class AveragePooling(nn.Module):
    """r = (1 / |S|) Σ_{m ∈ S} x_m over the valid members S of each set (padding ignored).

    Shapes: ``x`` (B, L, F) padded sets, ``mask`` (B, L) bool, True for real members -> (B, F).
    A set without any member pools to zeros rather than NaN.
    """

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        weights = mask.to(x.dtype)
        total = (x * weights.unsqueeze(-1)).sum(dim=1)
        return total / weights.sum(dim=1, keepdim=True).clamp_min(1.0)
