"""Pieces every pairwise (BPR) visual model shares, written once as Elliot's TF models compute them.

``bpr_loss``: Elliot's batch BPR, ``sum(softplus(-clip(x_uij, -80, 1e8)))`` (a sum, not a mean);
``l2``: TensorFlow's ``tf.nn.l2_loss``, half the squared norm; ``glorot_``: Keras' GlorotUniform,
which also initialises 1-D tensors (biases) with fan_in = fan_out = size, unlike torch's Xavier.
"""
from __future__ import annotations

import math
import torch
from torch import Tensor

# Elliot clips x_uij to [-80, 1e8] before the softplus; only the lower bound can ever bind.
CLIP_LOW = -80.0


def bpr_loss(x_uij: Tensor) -> Tensor:
    """Sum over the batch of -ln sigmoid(x_uij) (Rendle et al. 2009, eq. 4), Elliot's clipping applied."""
    return torch.nn.functional.softplus(-x_uij.clamp(min=CLIP_LOW)).sum()


def l2(*tensors: Tensor) -> Tensor:
    """Sum of ½‖t‖² over ``tensors`` (``tf.nn.l2_loss`` summed, as in Elliot's regularisers)."""
    return sum(t.pow(2).sum() for t in tensors) / 2


def glorot_(tensor: Tensor) -> Tensor:
    """In-place Glorot-uniform init as Keras does it (for 2-D: U(±sqrt(6 / (rows + cols))))."""
    if tensor.dim() == 1:
        fan_in = fan_out = tensor.shape[0]
    else:
        fan_in, fan_out = tensor.shape[0], tensor.shape[1]
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        return tensor.uniform_(-bound, bound)


def glorot(*shape: int) -> torch.nn.Parameter:
    """A new parameter of ``shape``, Glorot-uniform initialised (Elliot's default for visual models)."""
    return torch.nn.Parameter(glorot_(torch.empty(*shape)))


# A hyperparameter number kept as written, so a model name prints ``l_b=0`` (not ``0$0``) as Elliot does.
Real = int | float


class SeededDropout:
    """Dropout whose masks come from a generator seeded by the model's seed (one per device), so a
    run is reproducible without touching torch's global random state. Inverted scaling, as Keras."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}

    def __call__(self, x: Tensor, rate: float) -> Tensor:
        if rate <= 0:
            return x
        generator = self._generators.get(x.device)
        if generator is None:
            generator = self._generators[x.device] = torch.Generator(device=x.device).manual_seed(self.seed)
        keep = torch.rand(x.shape, generator=generator, device=x.device) >= rate
        return x * keep / (1.0 - rate)

    def generator_state(self) -> dict[str, Tensor]:
        """Each device's generator state (a checkpoint saves it for an exact resume)."""
        return {str(device): generator.get_state() for device, generator in self._generators.items()}

    def load_generator_state(self, states: dict[str, Tensor]) -> None:
        for device, state in states.items():
            generator = torch.Generator(device=torch.device(device))
            generator.set_state(state.cpu())
            self._generators[torch.device(device)] = generator
