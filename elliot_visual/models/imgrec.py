"""ImgRec (Elsayed, Brinkmeyer & Schmidt-Thieme): an attribute-aware, GraphRec-style recommender whose
item input concatenates the item's one-hot vector with its image features, in three variants.

* ``ImgRecDir``: φ(x_i) = the frozen pooled CNN features (``visual_features``, e.g. 2048-d ResNet50);
* ``ImgRecFT``: φ(x_i) = ReLU(x_i W_ft + b_ft), a trained layer over them (width ``ft_units``);
* ``ImgRecEtE``: φ(x_i) = ReLU(CNN(image_i) W_ft + b_ft), the CNN's last layers fine-tuned
  end to end from raw ``images`` in two stages (see :class:`ImgRecEtE`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elliot_visual.data.samplers import PointwiseBatch
from elliot_visual.models.base import PointwiseParams, Recommender, TrainingStage, hp, register_model
from elliot_visual.models.pairwise import Real, glorot


class ImgRecParams(PointwiseParams):
    """Defaults of the official code for Amazon Fashion (``ImgRecV1``/``V2``; Men: factors 20); the
    pointwise sampler's ``negatives`` per observed pair default to 1, as in the official code."""

    factors: int = hp(30, "factors", ge=1)
    lr: Real = hp(0.0001, "lr", gt=0)
    l_w: Real = hp(0.1, "l_w", ge=0, description="Keras l2 on the user and item kernels W_u, W_i")
    batch_eval: int = hp(1024, in_name=False, ge=1)


class ImgRec(Recommender):
    """ŷ_ui = σ(z_u · z_i) with z_u = onehot_u W_u + b_u and z_i = [onehot_i ‖ φ(x_i)] W_i + b_i
    (eqs. 1-3 of the paper), i.e. z_i = E_i[i] + φ(x_i) W_img + b_i; trained pointwise with binary
    cross-entropy (eq. 4, whose typo in the (1 − y) term is not repeated) over every observed pair
    and ``negatives`` sampled non-train items per pair (label 0).

    Loss, as the official Keras code computes it: the batch mean of the cross-entropy plus
    ``l_w`` Σ W² (Keras' ``l2``: no ½) over the whole kernels W_u and W_i (id rows and image rows),
    plus the variant's own terms. ``score`` returns the logit z_u · z_i (σ is monotone: the same
    ranking, and no float32 saturation into ties). W and b are Glorot-uniform / zero (Keras' Dense).

    Deviations from the official code, stated: every observed pair is visited once per epoch with
    its ``negatives`` (the project's ``pointwise`` sampler) instead of drawing users uniformly;
    negatives are never the user's train items (the code's check tested a pandas index and so
    never excluded them).
    """

    Params: ClassVar[type[PointwiseParams]] = ImgRecParams
    sampler = "pointwise"
    tasks = ("sampled", "ranking")  # the paper's protocol first
    loader_in_name = True

    def __init__(self, params: ImgRecParams, n_users: int, n_items: int, visual_dim: int) -> None:
        super().__init__(params, n_users, n_items)
        k = params.factors
        self.W_u = glorot(n_users, k)
        self.b_u = nn.Parameter(torch.zeros(k))
        self.W_i = glorot(n_items, k)
        self.W_img = glorot(visual_dim, k)
        self.b_i = nn.Parameter(torch.zeros(k))

    # --- what a variant defines -------------------------------------------------------------
    def visual(self, items: Tensor | slice) -> Tensor:
        """φ(x_i) for ``items``: (len(items), visual_dim)."""
        raise NotImplementedError

    def variant_penalty(self) -> Tensor:
        """The variant's own regularisation (Keras l2 on its layers)."""
        return torch.zeros((), device=self.W_u.device)

    # --- the shared maths -------------------------------------------------------------------
    def user_vectors(self, users: Tensor) -> Tensor:
        """z_u = onehot_u W_u + b_u: (len(users), factors)."""
        return self.W_u[users] + self.b_u

    def item_vectors(self, items: Tensor | slice) -> Tensor:
        """z_i = [onehot_i ‖ φ(x_i)] W_i + b_i: (len(items), factors)."""
        return self.W_i[items] + self.visual(items) @ self.W_img + self.b_i

    def logits(self, users: Tensor, items: Tensor) -> Tensor:
        return (self.user_vectors(users) * self.item_vectors(items)).sum(1)

    def loss(self, batch: PointwiseBatch) -> Tensor:
        logits = self.logits(batch.users, batch.items)
        bce = F.binary_cross_entropy_with_logits(logits, batch.labels.to(logits.dtype))
        reg = self.params.l_w * (self.W_u.pow(2).sum() + self.W_i.pow(2).sum() + self.W_img.pow(2).sum())
        return bce + reg + self.variant_penalty()

    def item_representation(self, items: slice) -> Tensor:
        """(len(items), factors): z_i, the item side evaluation computes once and reuses."""
        return self.item_vectors(items)

    def score_items(self, users: Tensor, items: Tensor) -> Tensor:
        return self.user_vectors(users) @ items.to(self.W_u.dtype).T


@register_model("ImgRecDir")
class ImgRecDir(ImgRec):
    """ImgRec-Dir: φ(x_i) = x_i, the frozen pooled CNN features of the item's image (``visual_features``).

    YAML::

        ImgRecDir:
          epochs: 150
          batch_size: 1024
          factors: 30
          lr: 0.0001
          l_w: 0.1
    """

    needs = ("visual_features",)

    def __init__(self, params: ImgRecParams, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        feats = features["visual_features"].float().reshape(n_items, -1)
        super().__init__(params, n_users, n_items, feats.shape[1])
        self.register_buffer("features", feats, persistent=False)

    def visual(self, items: Tensor | slice) -> Tensor:
        return self.features[items]


class ImgRecFTParams(ImgRecParams):
    ft_units: int = hp(150, "ft", ge=1, description="width of the trained ReLU layer φ")
    l_ft: Real = hp(0.00001, "l_ft", ge=0, description="Keras l2 on the φ layer's kernel")


@register_model("ImgRecFT")
class ImgRecFT(ImgRecDir):
    """ImgRec-FT: φ(x_i) = ReLU(x_i W_ft + b_ft) over the frozen CNN features, W_ft trained with the
    rest (width ``ft_units``: 150 Fashion, 120 Men in the official code; ``l_ft`` Σ W_ft², 1e-5).

    YAML::

        ImgRecFT:
          epochs: 150
          batch_size: 1024
          factors: 30
          ft_units: 150
    """

    Params = ImgRecFTParams

    def __init__(self, params: ImgRecFTParams, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        feats = features["visual_features"].float().reshape(n_items, -1)
        ImgRec.__init__(self, params, n_users, n_items, params.ft_units)
        self.register_buffer("features", feats, persistent=False)
        self.ft = nn.Linear(feats.shape[1], params.ft_units)
        nn.init.xavier_uniform_(self.ft.weight)
        nn.init.zeros_(self.ft.bias)

    def visual(self, items: Tensor | slice) -> Tensor:
        return torch.relu(self.ft(self.features[items]))

    def variant_penalty(self) -> Tensor:
        return self.params.l_ft * self.ft.weight.pow(2).sum()


class ImgRecEtEParams(ImgRecFTParams):
    """Defaults of the official end-to-end script (Adam 5e-5, l2 1e-4 in fine-tuning, batch 256)."""

    backbone: str = hp("resnet50", "cnn", description="a registered backbone (extraction/backbones.py)")
    weights: str = hp("pretrained", in_name=False, description="pretrained (local cache, never downloaded), "
                                                                "random, or a weights file")
    layer: str | None = hp(None, in_name=False, description="the pooled layer read; None: the backbone's default")
    unfreeze_from: str = hp("layer3.4.conv2", "unfreeze", description="first module trained in stage 2: it and "
                            "every later one (the paper's last 50 of ResNet50's 176 Keras layers)")
    patience: int = hp(3, in_name=False, ge=1, description="stage 1 ends when validation got worse this often in a row")
    finetune_epochs: int = hp(130, "ft_e", ge=1)
    finetune_lr: Real = hp(0.00005, "ft_lr", gt=0)
    finetune_l_w: Real = hp(0.0001, "ft_l_w", ge=0, description="stage 2's l2, on W_u, W_i, φ and the unfrozen CNN")


@register_model("ImgRecEtE")
class ImgRecEtE(ImgRec):
    """ImgRec-EtE: φ(x_i) = ReLU(CNN(image_i) W_ft + b_ft), the CNN's pooled output (ResNet50's
    2048-d ``avgpool`` by default) fine-tuned end to end, trained in the paper's two stages:

    1. **frozen** (``epochs``, ``lr``, ``l_w``): the CNN is frozen, its pooled features of every
       item are computed once and cached, and the rest trains until the validation value got
       worse ``patience`` times in a row (the loop's early-stopping rule);
    2. **fine-tune** (``finetune_epochs``, ``finetune_lr``, ``finetune_l_w``): from stage 1's best
       weights, the modules from ``unfreeze_from`` on (ResNet50: ``layer3[4].conv2`` to ``layer4``,
       the official code's ``fine_tune_at = 126``) train jointly with the rest, on the raw images of
       every batch; ``finetune_l_w`` Σ W² covers W_u, W_i, W_img, W_ft and the unfrozen CNN weights.

    Batch-norm layers of the frozen part always run in eval mode (as Keras runs frozen BN); the
    unfrozen ones update their statistics. Images are the ``images`` feature (uint8, the loader's
    ``output_image_size``: set it to the backbone's input size, 224 for ResNet50), normalised with
    the backbone's own mean and std; weights come from the local cache only. GPU and bf16 autocast
    come from the training loop. Deviations from the official code: torchvision's ResNet50 and its
    RGB preprocessing instead of Keras' caffe-style BGR mean at 244x244; the run keeps the best
    validation event over both stages (the code tests its last epoch).

    YAML::

        ImgRecEtE:
          epochs: 30              # stage 1 (ends early on validation)
          finetune_epochs: 20     # stage 2
          batch_size: 256
          factors: 30
          backbone: resnet50
    """

    Params = ImgRecEtEParams
    needs = ("images",)

    def __init__(self, params: ImgRecEtEParams, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        from elliot_visual.extraction.catalogue import get_backbone
        from elliot_visual.extraction.taps import build_taps

        images = features["images"]
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"ImgRecEtE needs images shaped (n_items, 3, H, W), got {tuple(images.shape)}")
        ImgRec.__init__(self, params, n_users, n_items, params.ft_units)
        self.register_buffer("images", images.to(torch.uint8), persistent=False)
        backbone = get_backbone(params.backbone)
        network, _ = backbone.build(params.weights)
        self.pooled_layer = params.layer or backbone.default_layer
        self.cnn, _ = build_taps(backbone, network, [self.pooled_layer], backbone.preprocessing())
        with torch.no_grad():
            pooled_dim = int(self.cnn(self.images[:1])[self.pooled_layer].reshape(1, -1).shape[1])
        self.ft = nn.Linear(pooled_dim, params.ft_units)
        nn.init.xavier_uniform_(self.ft.weight)
        nn.init.zeros_(self.ft.bias)
        self.tuned = self._tuned_parameters(params.unfreeze_from)
        self.stage = "frozen"
        self._pooled: Tensor | None = None  # every item's pooled features, for the CNN weights of _pooled_key
        self._pooled_key: tuple = ()

    def _tuned_parameters(self, first: str) -> list[str]:
        """Names (in ``self.cnn``) of the parameters from module ``first`` on, in execution order."""
        names = [name for name, _ in self.cnn.graph.named_parameters()]
        starts = [k for k, name in enumerate(names) if name == first or name.startswith(f"{first}.")]
        if not starts:
            import difflib

            modules = sorted({name.rsplit(".", 1)[0] for name in names})
            close = difflib.get_close_matches(first, modules, n=5, cutoff=0.4)
            raise ValueError(f"unfreeze_from: backbone '{self.params.backbone}' has no module '{first}' "
                             f"(closest: {', '.join(close) or 'none'})")
        return names[starts[0]:]

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the loop trains in the current stage: everything but the CNN, plus, while
        fine-tuning, the CNN's parameters from ``unfreeze_from`` on (the loop freezes the rest)."""
        tuned = set(self.tuned) if self.stage == "finetune" else set()
        cnn = {id(p) for p in self.cnn.parameters()}
        return [p for p in self.parameters() if id(p) not in cnn] + \
            [p for name, p in self.cnn.graph.named_parameters() if name in tuned]

    def train(self, mode: bool = True) -> "ImgRecEtE":
        """Frozen batch-norm layers stay in eval mode whatever the model's mode. While fine-tuning,
        the pooled-feature cache is dropped: the CNN's weights are about to change, or just did."""
        super().train(mode)
        if getattr(self, "stage", "frozen") == "finetune":
            self._pooled = None
        trained = {id(p) for p in self.trainable_parameters()}
        for module in self.cnn.graph.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                if not any(id(p) in trained for p in module.parameters()):
                    module.eval()
        return self

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        self._pooled = None  # the CNN's weights may change
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def training_stages(self) -> list[TrainingStage]:
        return [TrainingStage("frozen", int(self.params.epochs), lambda: self._enter("frozen"), int(self.params.patience)),
                TrainingStage("finetune", int(self.params.finetune_epochs), lambda: self._enter("finetune"), 0)]

    def _enter(self, stage: str) -> None:
        self.stage = stage
        self._pooled = None

    def learning_rate(self) -> float:
        return float(self.params.finetune_lr if self.stage == "finetune" else self.params.lr)

    def pooled(self, images: Tensor) -> Tensor:
        """(n, pooled_dim) CNN pooled features of uint8 images."""
        return self.cnn(images)[self.pooled_layer].reshape(len(images), -1).to(self.W_u.dtype)

    def _cached_pooled(self) -> Tensor:
        """(n_items, pooled_dim) pooled features of the current CNN weights (and batch-norm statistics),
        batch norm in eval mode; recomputed only when those tensors change (never in stage 1)."""
        key = tuple((t.data_ptr(), t._version) for t in [*self.cnn.parameters(), *self.cnn.buffers()])
        if self._pooled is None or self._pooled.device != self.images.device or key != self._pooled_key:
            self._pooled_key = key
            block = int(self.params.batch_eval)
            modes = [(module, module.training) for module in self.cnn.modules()]
            self.cnn.eval()
            with torch.no_grad():
                self._pooled = torch.cat([self.pooled(self.images[s:s + block]).float()
                                          for s in range(0, self.n_items, block)])
            for module, mode in modes:
                module.training = mode
        return self._pooled

    def visual(self, items: Tensor | slice) -> Tensor:
        if self.stage == "finetune" and torch.is_grad_enabled():
            features = self.pooled(self.images[items])
        else:  # frozen CNN, or scoring: the pooled features of the current weights, computed once
            features = self._cached_pooled()[items].to(self.W_u.dtype)
        return torch.relu(self.ft(features))

    def loss(self, batch: PointwiseBatch) -> Tensor:
        if self.stage != "finetune":
            return super().loss(batch)
        logits = self.logits(batch.users, batch.items)
        bce = F.binary_cross_entropy_with_logits(logits, batch.labels.to(logits.dtype))
        tuned = dict(self.cnn.graph.named_parameters())
        kernels = [self.W_u, self.W_i, self.W_img, self.ft.weight] + [tuned[n] for n in self.tuned if n.endswith("weight")]
        return bce + self.params.finetune_l_w * sum(k.pow(2).sum() for k in kernels)

    def variant_penalty(self) -> Tensor:
        return self.params.l_ft * self.ft.weight.pow(2).sum()
