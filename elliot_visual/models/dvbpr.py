"""DVBPR: Deep-style VBPR, a CNN trained jointly from raw images (Kang et al., ICDM 2017)."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from pydantic import field_validator
from torch import Tensor, nn

from elliot_visual.data.samplers import Triples
from elliot_visual.models.base import IntTuple, PairwiseParams, Recommender, hp, register_model
from elliot_visual.models.pairwise import Real, SeededDropout, bpr_loss, glorot, l2


@register_model("DVBPR")
class DVBPR(Recommender):
    """x_ui = <θ_u, Φ(X_i)>  (eq. 3 of the paper): Φ a CNN-F-like network on the item's image,
    learned jointly with the user embeddings θ_u through BPR.

    CNN as in the paper and Elliot: conv 64@11x11 stride 4 → max-pool → conv 256@5x5 → max-pool →
    3 x conv 256@3x3 → max-pool → FC ``fc_units`` → dropout 0.5 → FC ``fc_units`` → dropout 0.5 →
    FC ``factors`` (relu after every conv and hidden FC). ``fc_units`` (4096), ``conv_channels``
    ((64, 256)) and ``dropout`` (0.5) are the paper's; they are not part of the model name (Elliot
    has no such keys) and exist to run the model on small machines and in tests (with narrow FC
    layers, 0.5 dropout stalls learning: on the planted test data Recall@20 drops from ~0.40 to
    ~0.24). Images are uint8 (3, H, W) scaled to [-1, 1] per batch ((x − 127.5) / 127.5,
    as Elliot); any size works (the conv stack's output is sized from the input). Loss (Elliot):
    Σ softplus(−x_uij) + lambda_1/2 ‖θ_u‖² + lambda_2/2 Σ ‖W‖² over the CNN's non-bias weights.

    GPU-aware: images stay on the model's device as uint8 (a quarter of float32), only the batch is
    widened; the item side of a score is Φ(X_i) with dropout off, which evaluation embeds once
    per evaluation in blocks of ``batch_eval`` images. As in Elliot (Keras layers): kernels
    Glorot-uniform, biases zero, and the first convolution pads ``'same'`` (TensorFlow's rule:
    output ceil(H / 4), the odd pixel of padding at the bottom/right); the later convolutions pad
    to keep their size, as ``'same'`` does at stride 1. Deviation from the paper: Adam, as in Elliot.

    YAML::

        DVBPR:
          epochs: 20
          batch_size: 64
          factors: 100
          lr: 0.0001
    """

    class Params(PairwiseParams):
        batch_eval: int = hp(512, "be", ge=1)
        factors: int = hp(100, "factors", ge=1)
        lr: Real = hp(0.0001, "lr", gt=0)
        lambda_1: Real = hp(0.0001, "lambda_1", ge=0)
        lambda_2: Real = hp(1.0, "lambda_2", ge=0)
        fc_units: int = hp(4096, in_name=False, ge=1)
        conv_channels: IntTuple = hp((64, 256), in_name=False)
        dropout: Real = hp(0.5, in_name=False, ge=0, lt=1)

        @field_validator("conv_channels")
        @classmethod
        def _two_widths(cls, value: tuple[int, ...]) -> tuple[int, ...]:
            if len(value) != 2 or min(value) < 1:
                raise ValueError(f"conv_channels must be two positive widths (first conv, later convs), got {value}")
            return value

    needs = ("images",)
    loader_in_name = True
    sampler = "bpr"

    def __init__(self, params: Params, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        images = features["images"]
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"DVBPR needs images shaped (n_items, 3, H, W), got {tuple(images.shape)}")
        self.register_buffer("images", images.to(torch.uint8), persistent=False)
        self.Tu = glorot(n_users, params.factors)
        c1, c2 = params.conv_channels
        self.conv = nn.Sequential(
            same_padding(images.shape[2:], kernel=11, stride=4),
            nn.Conv2d(3, c1, 11, stride=4), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(c2, c2, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c2, c2, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c2, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Flatten())
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, *images.shape[1:], device="meta")).shape[1]
        self.fc = nn.ModuleList([nn.Linear(flat, params.fc_units), nn.Linear(params.fc_units, params.fc_units),
                                 nn.Linear(params.fc_units, params.factors)])
        for layer in [*self.conv, *self.fc]:  # Keras defaults, as Elliot's layers: Glorot kernels, zero biases
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        self._dropout = SeededDropout(params.seed)

    def embed(self, images: Tensor, dropout: bool) -> Tensor:
        """Φ(X): (n, 3, H, W) uint8 images -> (n, factors) item embeddings."""
        x = self.conv((images.to(self.Tu.dtype) - 127.5) / 127.5)
        for index, layer in enumerate(self.fc):
            x = layer(x)
            if index < len(self.fc) - 1:
                x = torch.relu(x)
                if dropout:
                    x = self._dropout(x, float(self.params.dropout))
        return x

    def cnn_weights(self) -> list[Tensor]:
        return [p for name, p in [*self.conv.named_parameters(), *self.fc.named_parameters()] if name.endswith("weight")]

    def loss(self, batch: Triples) -> Tensor:
        u, i, j = batch.users, batch.pos, batch.neg
        theta = self.rows(self.Tu, u)
        embedded = self.embed(self.images[torch.cat([i, j])], dropout=self.training)
        x_uij = (theta * (embedded[:len(i)] - embedded[len(i):])).sum(1)
        return bpr_loss(x_uij) + self.params.lambda_1 * l2(theta) + self.params.lambda_2 * l2(*self.cnn_weights())

    def item_representation(self, items: slice) -> Tensor:
        """(len(items), factors) Φ(X_i) of the items, dropout off."""
        return self.embed(self.images[items], dropout=False)

    def score_items(self, users: Tensor, items: Tensor) -> Tensor:
        return self.Tu[users] @ items.to(self.Tu.dtype).T


def same_padding(size: tuple[int, ...] | torch.Size, kernel: int, stride: int) -> nn.ZeroPad2d:
    """Zero padding reproducing TensorFlow's ``padding='same'`` for a strided convolution on (H, W)
    inputs: output ceil(H / stride), the total padding split with the extra pixel after."""
    pads = []
    for length in (int(size[1]), int(size[0])):  # ZeroPad2d takes (left, right, top, bottom)
        total = max((-(-length // stride) - 1) * stride + kernel - length, 0)
        pads += [total // 2, total - total // 2]
    return nn.ZeroPad2d(tuple(pads))
