"""Finite-difference gradient checks of a model's loss, in double precision (a test helper)."""
from __future__ import annotations

from collections.abc import Callable

import torch

from elliot_visual.models.base import Recommender


def check_gradients(model: Recommender, loss: Callable[[], torch.Tensor], entries: int = 4,
                    eps: float = 1e-6, rtol: float = 1e-4, atol: float = 1e-7) -> int:
    """Compare autograd's gradient with the central difference (L(w + eps) - L(w - eps)) / 2 eps at
    ``entries`` entries of every trainable parameter with a non-zero gradient; returns how many
    entries were checked. ``loss()`` must be deterministic (reseed any sampler inside it)."""
    model.double()
    model.zero_grad(set_to_none=True)
    loss().backward()
    checked = 0
    generator = torch.Generator().manual_seed(0)
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad or parameter.grad is None:
            continue
        grad = parameter.grad.detach().clone().reshape(-1)
        candidates = torch.nonzero(grad != 0).flatten()
        if candidates.numel() == 0:
            continue
        picks = candidates[torch.randperm(candidates.numel(), generator=generator)[:entries]]
        flat = parameter.data.view(-1)
        for index in picks.tolist():
            original = flat[index].item()
            with torch.no_grad():
                flat[index] = original + eps
            up = loss().item()
            with torch.no_grad():
                flat[index] = original - eps
            down = loss().item()
            with torch.no_grad():
                flat[index] = original
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - grad[index].item()) <= atol + rtol * abs(numeric), \
                f"{name}[{index}]: autograd {grad[index].item():.8g} vs finite difference {numeric:.8g}"
            checked += 1
    return checked
