"""The optional Keras backend (``backend: tensorflow``): ``tf.keras.applications`` networks.

TensorFlow is imported only when a Keras backbone is built; without it the error says how to
install the extra. Pooled features come from ``pooling='avg'`` and feature maps from
``include_top=False`` (no reliance on auto-generated layer names); VGG19's ``fc1``/``fc2`` are
Keras' own named layers. Weights are read from Keras' cache (``~/.keras/models``) or a file in the
config, never downloaded. Preprocessing is Keras' own: ``load_img(target_size=...)``-style resize
(``squash``) and the application's ``preprocess_input``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from elliot_visual.config.weights import weights_choice
from elliot_visual.extraction.backbones import (Backbone, BackendNotInstalledError, Layer,
                                                Preprocessing, UnknownLayerError, WeightsInfo,
                                                WeightsNotFoundError, file_sha256, regions, vector)
from elliot_visual.registry import KERAS_BACKBONES

KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications"
INSTALL_HINT = ("backend: tensorflow needs TensorFlow, which is not installed: "
                "pip install 'elliot_visual[tensorflow]' (or pip install tensorflow), "
                "or use the default backend: torch")


def import_tensorflow() -> Any:
    """``tensorflow``, imported on demand, or :class:`BackendNotInstalledError` with the hint."""
    try:
        import tensorflow as tf
    except ImportError as error:
        raise BackendNotInstalledError(INSTALL_HINT) from error
    return tf


def keras_cache() -> Path:
    """Where Keras keeps downloaded application weights."""
    return Path("~/.keras/models").expanduser()


@dataclass(frozen=True)
class KerasBackbone(Backbone):
    """A ``tf.keras.applications`` network: class, module (for ``preprocess_input``), weights files."""

    app_class: str = ""
    module: str = ""
    input_size: int = 224
    notop_file: str = ""
    top_file: str = ""
    url_folder: str = ""
    library: str = field(default="keras", init=False)

    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.input_size, self.input_size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0),
                             "bilinear", resize_mode="squash",
                             source=f"keras.applications.{self.module}.preprocess_input")

    def weights_file(self, include_top: bool) -> tuple[Path, str]:
        name = self.top_file if include_top else self.notop_file
        base = self.url_folder if "://" in self.url_folder else f"{KERAS_URL}/{self.url_folder}"
        return keras_cache() / name, f"{base}/{name}"

    def layer(self, name: str, model: Any = None) -> Layer:
        for alias, spec in self.layers.items():
            if alias.lower() == name.lower():
                return spec
        raise UnknownLayerError(f"Keras backbone '{self.name}' has no layer '{name}' "
                                f"(available: {', '.join(self.layers)})")


def _keras(name: str, app_class: str, module: str, size: int, side: int, channels: int,
           notop: str, url_folder: str, top: str = "", extra: dict[str, Layer] | None = None,
           default: str = "avg_pool") -> KerasBackbone:
    pooled = vector("avg_pool", channels, "pooling='avg' on the last conv block")
    fmap = regions("feature_map", side, channels, None, "include_top=False output, region-major")
    return KerasBackbone(name, app_class, layers={"avg_pool": pooled, "pooled": pooled,
                                                  "feature_map": fmap, **(extra or {})},
                         default_layer=default, app_class=app_class, module=module,
                         input_size=size, notop_file=notop, top_file=top, url_folder=url_folder)


# The Keras catalogue, registered under the names the torch backbones use (``backend: tensorflow``).
for _backbone in [
    _keras("resnet50", "ResNet50", "resnet50", 224, 7, 2048,
           "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "resnet",
           extra={"conv5_block3_out": regions("feature_map", 7, 2048, None, "last block")}),
    _keras("resnet152", "ResNet152", "resnet", 224, 7, 2048,
           "resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5", "resnet"),
    _keras("vgg19", "VGG19", "vgg19", 224, 7, 512,
           "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "vgg19",
           top="vgg19_weights_tf_dim_ordering_tf_kernels.h5", default="fc2",
           extra={"fc1": vector("fc1", 4096, "Keras layer fc1"),
                  "fc2": vector("fc2", 4096, "Keras layer fc2"),
                  "block5_pool": regions("feature_map", 7, 512, None, "last max-pool")}),
    _keras("inception_v3", "InceptionV3", "inception_v3", 299, 8, 2048,
           "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", "inception_v3"),
    _keras("inception_resnet_v2", "InceptionResNetV2", "inception_resnet_v2", 299, 8, 1536,
           "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
           "inception_resnet_v2"),
    _keras("mobilenet_v1", "MobileNet", "mobilenet", 224, 7, 1024,
           "mobilenet_1_0_224_tf_no_top.h5", "mobilenet"),
    _keras("mobilenet_v2", "MobileNetV2", "mobilenet_v2", 224, 7, 1280,
           "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5", "mobilenet_v2"),
    _keras("nasnetalarge", "NASNetLarge", "nasnet", 331, 11, 4032, "NASNet-large-no-top.h5",
           "nasnet"),
    _keras("efficientnet_b0", "EfficientNetB0", "efficientnet", 224, 7, 1280,
           "efficientnetb0_notop.h5", "https://storage.googleapis.com/keras-applications"),
]:
    KERAS_BACKBONES.register(_backbone.name, _backbone)


class KerasExtractor:
    """``uint8 (N, 3, H, W)`` torch batch -> ``{layer: float32 (N, *shape)}`` through Keras."""

    def __init__(self, model: Any, preprocess: Any, outputs: list[str],
                 layers: dict[str, Layer]) -> None:
        self.model, self.preprocess, self.outputs, self.layers = model, preprocess, outputs, layers

    def __call__(self, images: Any) -> dict[str, np.ndarray]:
        batch = images.permute(0, 2, 3, 1).numpy().astype(np.float32)  # Keras is channels-last
        produced = self.model(self.preprocess(batch), training=False)
        if not isinstance(produced, (list, tuple)):
            produced = [produced]
        arrays = {name: np.asarray(value, dtype=np.float32)
                  for name, value in zip(self.outputs, produced)}
        result: dict[str, np.ndarray] = {}
        for name, layer in self.layers.items():
            if layer.node == "feature_map":
                fmap = arrays["feature_map"]
                result[name] = fmap.reshape(fmap.shape[0], -1, fmap.shape[-1])
            else:
                result[name] = arrays[layer.node]
        return result


def build_keras_extractor(backbone: Backbone, layer_names: list[str],
                          weights: str | None) -> tuple[KerasExtractor, dict[str, Layer], WeightsInfo]:
    """Build the Keras model once with the outputs the requested layers need."""
    if not isinstance(backbone, KerasBackbone):
        raise TypeError(f"'{backbone.name}' is not a Keras backbone")
    layers = {name: backbone.layer(name) for name in dict.fromkeys(layer_names)}
    nodes = {layer.node for layer in layers.values()}
    include_top = bool(nodes & {"fc1", "fc2"})
    tf = import_tensorflow()
    kind, value = weights_choice(weights)
    if kind == "random":
        source: Any = None
        info = WeightsInfo("random")
    else:
        path = Path(value) if kind == "file" else backbone.weights_file(include_top)[0]
        if not path.is_file():
            expected, url = backbone.weights_file(include_top)
            raise WeightsNotFoundError(
                f"Keras weights for backbone '{backbone.name}' are not on this machine and are "
                f"never downloaded at run time: put {expected.name} (from {url}) at {expected}, "
                f"or set 'weights: /path/to/{expected.name}'.")
        source = str(path)
        info = WeightsInfo("file" if kind == "file" else "pretrained", "imagenet", str(path),
                           file_sha256(path))
    applications = tf.keras.applications
    app = getattr(applications, backbone.app_class)
    module = getattr(applications, backbone.module)
    size = backbone.input_size
    if include_top:
        full = app(include_top=True, weights=source, input_shape=(size, size, 3))
        outputs = sorted(nodes)
        tensors = [full.get_layer("block5_pool").output if n == "feature_map"
                   else full.get_layer(n).output for n in outputs]
        if "avg_pool" in nodes:
            tensors[outputs.index("avg_pool")] = tf.keras.layers.GlobalAveragePooling2D()(
                full.get_layer("block5_pool").output)
        model = tf.keras.Model(full.input, tensors)
    elif nodes == {"avg_pool"}:
        model = app(include_top=False, weights=source, pooling="avg", input_shape=(size, size, 3))
        outputs = ["avg_pool"]
    else:
        base = app(include_top=False, weights=source, pooling=None, input_shape=(size, size, 3))
        outputs = ["feature_map"]
        tensors = [base.output]
        if "avg_pool" in nodes:
            outputs.append("avg_pool")
            tensors.append(tf.keras.layers.GlobalAveragePooling2D()(base.output))
        model = tf.keras.Model(base.input, tensors)
    return KerasExtractor(model, module.preprocess_input, outputs, layers), layers, info
