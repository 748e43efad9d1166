"""The optimizers the training loop can run, chosen by the model entry's ``meta.optimizer`` key.

* ``adam`` (default): Elliot's optimiser, the dense Adam of Kingma & Ba (2015) at the model's
  ``lr``, with torch's fused kernel where the device has one (same update, fewer kernel calls).
  Every row of every embedding table is updated at every step, as in Elliot's TensorFlow models:
  rows absent from the batch still move with their decaying moments. This is the reference for
  fidelity, and its cost is proportional to the whole catalogue at every step.
* ``lazy_adam``: Adam whose moments and updates touch only the embedding rows a batch looked up
  (TensorFlow Addons' ``LazyAdam``, torch's ``SparseAdam``). The model's row lookups
  (:meth:`Recommender.rows`) then emit sparse gradients, so a step costs what its batch costs.
  Rows absent from a batch keep their moments unchanged instead of decaying, which is a
  different optimiser from Elliot's: results differ from ``adam`` (usually little), hence opt-in.
  Parameters without sparse gradients (projection matrices, MLP layers, 1-D biases) get the
  ordinary dense Adam update inside the same optimiser.

Written by hand (not ``torch.optim.SparseAdam``) because that class refuses dense gradients,
and a model mixes both kinds; ``lazy_adam`` keeps one state dict, so checkpoints resume.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

import torch
from torch import Tensor, nn

OptimizerName = Literal["adam", "lazy_adam"]
OPTIMIZER_NAMES: tuple[str, ...] = ("adam", "lazy_adam")


def build_optimizer(model: nn.Module, name: OptimizerName = "adam") -> torch.optim.Optimizer:
    """The optimizer ``name`` over ``model``'s trainable parameters at the model's ``params.lr``.

    Also tells the model whether its row lookups should emit sparse gradients (``lazy_adam``).
    A module with its own ``configure_optimizer()`` (a fine-tuned backbone: one Adam parameter group
    per learning rate) gets that one; it has no embedding rows, so only ``adam`` applies to it.
    """
    if name not in OPTIMIZER_NAMES:
        raise ValueError(f"unknown optimizer '{name}'; known: {', '.join(OPTIMIZER_NAMES)}")
    own = getattr(model, "configure_optimizer", None)
    if own is not None:
        if name != "adam":
            raise ValueError(f"{type(model).__name__} configures its own optimizer; optimizer '{name}' "
                             "applies to recommenders only")
        return own()
    lr = float(model.learning_rate()) if hasattr(model, "learning_rate") else \
        float(getattr(getattr(model, "params", None), "lr", 1e-3))
    params = [p for p in model.parameters() if p.requires_grad]
    model.sparse_rows = name == "lazy_adam"
    if name == "lazy_adam":
        return LazyAdam(params, lr=lr)
    devices = {p.device.type for p in params}
    fused = bool(params) and devices <= {"cpu", "cuda"} and all(p.is_floating_point() for p in params)
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


class LazyAdam(torch.optim.Optimizer):
    """Adam that updates only the rows present in a sparse gradient (dense gradients: plain Adam).

    For a sparse gradient with rows R (duplicates summed), on those rows only:
    m_R ← β1 m_R + (1−β1) g_R;  v_R ← β2 v_R + (1−β2) g_R²;
    p_R ← p_R − lr · (m_R / (1−β1^t)) / (sqrt(v_R / (1−β2^t)) + ε), with t the parameter's step count
    (Kingma & Ba 2015, Algorithm 1, restricted to R as in TensorFlow's LazyAdam).
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = float(state["step"])
                step_size = group["lr"] / (1 - beta1 ** t)
                root_correction = (1 - beta2 ** t) ** 0.5
                m, v = state["exp_avg"], state["exp_avg_sq"]
                if p.grad.is_sparse:
                    grad = p.grad.coalesce()
                    rows, values = grad.indices()[0], grad.values()
                    m_rows = m.index_select(0, rows).mul_(beta1).add_(values, alpha=1 - beta1)
                    v_rows = v.index_select(0, rows).mul_(beta2).addcmul_(values, values, value=1 - beta2)
                    m.index_copy_(0, rows, m_rows)
                    v.index_copy_(0, rows, v_rows)
                    denominator = v_rows.sqrt_().div_(root_correction).add_(group["eps"])
                    p.index_add_(0, rows, m_rows.div_(denominator), alpha=-step_size)
                else:
                    m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                    v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                    denominator = v.sqrt().div_(root_correction).add_(group["eps"])
                    p.addcdiv_(m, denominator, value=-step_size)
        return loss
