"""Feature loaders: every accepted on-disk layout gives the same values, keyed by public item id."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.decomposition import PCA

from elliot_visual.data.amazon import write_amazon_binary_features
from elliot_visual.features.loaders.base import DEFAULT_NAMESPACE
from elliot_visual.features.loaders.pca import PCASource
from elliot_visual.features.sources import FeatureError, MissingFeaturesError
from elliot_visual.features.store import open_side_information
from elliot_visual.registry import FEATURE_LOADERS
from elliot_visual.storage import write_npy, write_text

ITEMS = np.array(["i7", "i3", "i9"], dtype=object)
ALL = np.ones(3, dtype=bool)


def _source(entry: dict, kind: str):
    return open_side_information([entry])[entry.get("name") or FEATURE_LOADERS.get(entry["dataloader"]).namespace][kind]


def test_every_registered_loader_is_importable_by_its_yaml_name() -> None:
    assert {"VisualAttribute", "VisualLoader", "FeatureVectors", "FeatureMaps", "PCAFeatures", "Images",
            "ItemCategories", "AmazonImageFeatures"} <= set(FEATURE_LOADERS.names())


def test_per_item_npy_folder_named_by_item_id_main_elliot_layout(tmp_path: Path) -> None:
    for value, item in enumerate(["i3", "i7", "i9"]):
        write_npy(tmp_path / "feats" / f"{item}.npy", np.full(4, value, np.float32))
    source = _source({"dataloader": "VisualAttribute", "visual_features": tmp_path / "feats"}, "visual_features")
    assert source.load(ITEMS, ALL)[:, 0].tolist() == [1.0, 0.0, 2.0]


def test_feature_index_files_with_an_item_mapping_fork_layout(tmp_path: Path) -> None:
    for index in range(3):
        write_npy(tmp_path / "feats" / f"{index}.npy", np.full(2, 10 + index, np.float32))
    write_text(tmp_path / "visual_feats.tsv", "i9\t0\ni7\t1\ni3\t2\n")
    entry = {"dataloader": "VisualLoader", "visual_features": tmp_path / "feats",
             "item_mapping": tmp_path / "visual_feats.tsv"}
    assert _source(entry, "visual_features").load(ITEMS, ALL)[:, 0].tolist() == [11.0, 12.0, 10.0]


def test_float16_matrix_with_an_id_list_is_memory_mapped_and_widened(tmp_path: Path) -> None:
    write_npy(tmp_path / "resnet" / "features.npy", np.array([[1, 2], [3, 4], [5, 6]], np.float16))
    write_text(tmp_path / "resnet" / "item_ids.txt", "i3\ni9\ni7\n")
    source = _source({"dataloader": "FeatureVectors", "path": tmp_path / "resnet"}, "visual_features")
    assert source._values.__class__ is np.memmap
    values = source.load(ITEMS, ALL)
    assert values.dtype == np.float32 and values.tolist() == [[5, 6], [1, 2], [3, 4]]


def test_missing_item_is_named_with_the_file_and_what_to_do(tmp_path: Path) -> None:
    write_npy(tmp_path / "m.npy", np.zeros((2, 2), np.float32))
    write_text(tmp_path / "ids.txt", "i3\ni7\n")
    source = _source({"dataloader": "FeatureVectors", "path": tmp_path / "m.npy",
                      "item_ids_file": tmp_path / "ids.txt"}, "visual_features")
    with pytest.raises(MissingFeaturesError, match=r"1 items missing in .*m\.npy \(first: i9\)"):
        source.load(ITEMS, ALL)


def test_unknown_option_names_the_key_and_the_closest_valid_one(tmp_path: Path) -> None:
    with pytest.raises(FeatureError, match=r"visual_feature: unknown key; did you mean 'visual_features'"):
        open_side_information([{"dataloader": "VisualAttribute", "visual_feature": tmp_path}])


@pytest.mark.parametrize("layout, stored", [
    ("chw", lambda m: m.transpose(0, 3, 1, 2)),   # PyTorch (C, H, W)
    ("hwc", lambda m: m),                          # Keras (H, W, C)
])
def test_feature_maps_become_regions_by_channels(tmp_path: Path, layout: str, stored) -> None:
    hwc = np.arange(3 * 2 * 2 * 5, dtype=np.float32).reshape(3, 2, 2, 5)   # 3 items, 2x2 regions, 5 channels
    write_npy(tmp_path / "maps" / "features.npy", stored(hwc))
    write_text(tmp_path / "maps" / "item_ids.txt", "i7\ni3\ni9\n")
    source = _source({"dataloader": "FeatureMaps", "path": tmp_path / "maps"}, "visual_feat_map_features")
    regions = source.load(ITEMS, ALL)
    assert regions.shape == (3, 4, 5)
    np.testing.assert_array_equal(regions[0, 3], hwc[0, 1, 1])   # region (1, 1) of item i7, all channels


def test_pca_is_fitted_on_train_items_only_and_cached_beside_the_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, 5)).astype(np.float32)
    ids = np.array([f"i{k}" for k in range(6)], dtype=object)
    write_npy(tmp_path / "v" / "features.npy", vectors)
    write_text(tmp_path / "v" / "item_ids.txt", "".join(f"{i}\n" for i in ids))
    source = _source({"dataloader": "VisualAttribute", "visual_features": tmp_path / "v", "n_components": 2},
                     "visual_pca_features")
    assert isinstance(source, PCASource)
    train = np.array([True, True, True, True, False, False])
    reduced = source.load(ids, train)
    expected = PCA(n_components=2, random_state=42).fit(vectors[train].astype(np.float64))
    np.testing.assert_allclose(reduced, expected.transform(vectors), rtol=1e-4, atol=1e-4)
    cached = source.cache_path(ids[train])
    assert cached.is_file() and cached.parent == tmp_path / "v"
    np.testing.assert_array_equal(source.load(ids, train), reduced)  # read back from the cache
    assert source.cache_path(ids[:3]) != cached  # other train items, other projection


def test_images_are_decoded_resized_and_kept_as_uint8(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    Image.new("RGB", (40, 30), (255, 0, 0)).save(tmp_path / "img" / "i3.png")
    Image.new("L", (10, 10), 128).save(tmp_path / "img" / "i7.jpg")
    source = _source({"dataloader": "Images", "images_src_folder": tmp_path / "img",
                      "output_image_size": "(8, 6)"}, "images")
    images = source.load(np.array(["i7", "i3"], dtype=object), np.ones(2, bool))
    assert images.shape == (2, 3, 8, 6) and images.dtype == np.uint8
    assert images[1, :, 4, 3].tolist() == [255, 0, 0] and abs(int(images[0, 0, 4, 3]) - 128) <= 1


def test_dvbpr_images_go_through_the_robust_decoder_exif_alpha_and_16_bit(tmp_path: Path) -> None:
    """The same pictures extraction sees: EXIF rotation applied, transparency over white, 16-bit scaled."""
    (tmp_path / "img").mkdir()
    tall = Image.new("RGB", (20, 40), (0, 0, 255))            # 20 wide, 40 high: top half red
    tall.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6                                            # "rotate 90° clockwise to view"
    tall.save(tmp_path / "img" / "rot.jpg", exif=exif, quality=95)
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "img" / "clear.png")
    Image.fromarray(np.full((8, 8), 65535 // 2, dtype=np.uint16)).save(tmp_path / "img" / "deep.png")
    source = _source({"dataloader": "Images", "images_src_folder": tmp_path / "img",
                      "output_image_size": "(20, 40)"}, "images")
    rotated, clear, deep = source.load(np.array(["rot", "clear", "deep"], dtype=object), np.ones(3, bool))
    # Upright, the picture is 40 wide and 20 high, red on the right (the top turned clockwise).
    assert rotated[0, 10, 35] > 200 and rotated[2, 10, 35] < 60
    assert rotated[2, 10, 5] > 200 and rotated[0, 10, 5] < 60
    assert clear.min() == 255                                    # transparent: white, not black
    assert abs(int(deep[0, 5, 5]) - 127) <= 1                    # 32767 / 257, not clipped to 255


def test_a_broken_image_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "i3.jpg").write_bytes(b"not a jpeg")
    source = _source({"dataloader": "Images", "images_src_folder": tmp_path / "img"}, "images")
    with pytest.raises(FeatureError, match=r"i3\.jpg: cannot decode the image of item i3"):
        source.load(np.array(["i3"], dtype=object), np.ones(1, bool))


def test_item_categories_are_coded_in_sorted_category_order(tmp_path: Path) -> None:
    write_text(tmp_path / "cat.tsv", "i7\tshoes\ni3\tbags\ni9\tshoes\n")
    source = _source({"dataloader": "ItemCategories", "path": tmp_path / "cat.tsv"}, "item_categories")
    assert source.load(ITEMS, ALL).tolist() == [1, 0, 1]


def test_amazon_binary_features_are_read_for_the_requested_asins(tmp_path: Path) -> None:
    records = [("B000000001", np.array([1, 2, 3], np.float32)), ("B000000002", np.array([4, 5, 6], np.float32)),
               ("B000000003", np.array([7, 8, 9], np.float32))]
    write_amazon_binary_features(tmp_path / "image_features_Baby.b", records)
    source = _source({"dataloader": "AmazonImageFeatures", "path": tmp_path / "image_features_Baby.b", "dim": 3},
                     "visual_features")
    assert set(source.item_ids()) == {"B000000001", "B000000002", "B000000003"}
    wanted = np.array(["B000000003", "B000000001"], dtype=object)
    assert source.load(wanted, np.ones(2, bool)).tolist() == [[7, 8, 9], [1, 2, 3]]


def test_visual_loaders_share_elliots_namespace_name() -> None:
    assert FEATURE_LOADERS.get("VisualAttribute").namespace == DEFAULT_NAMESPACE == "VisualAttributes"
    assert FEATURE_LOADERS.get("VisualLoader").namespace == DEFAULT_NAMESPACE


ATTRIBUTE_NAMES = ["floral", "denim", "stripes"]
ATTRIBUTE_ROWS = {"i3": [0.9, 0.0, 0.1], "i7": [0.2, 0.8, 0.5], "i9": [0.0, 0.3, 1.0]}


def _attribute_table(sep: str) -> str:
    header = sep.join(["item", *ATTRIBUTE_NAMES])
    return "\n".join([header, *(sep.join([item, *map(str, row)]) for item, row in ATTRIBUTE_ROWS.items())]) + "\n"


@pytest.mark.parametrize("suffix,sep", [(".tsv", "\t"), (".csv", ",")])
def test_attribute_table_gives_probabilities_aligned_to_items_with_names(tmp_path: Path, suffix: str, sep: str) -> None:
    write_text(tmp_path / f"attributes{suffix}", _attribute_table(sep))
    source = _source({"dataloader": "AttributeFeatures", "path": tmp_path / f"attributes{suffix}"}, "visual_features")
    assert source.names == tuple(ATTRIBUTE_NAMES)
    np.testing.assert_allclose(source.load(ITEMS, ALL), [ATTRIBUTE_ROWS[i] for i in ITEMS], rtol=1e-6)


def test_attribute_matrix_with_id_list_and_names_file(tmp_path: Path) -> None:
    write_npy(tmp_path / "attr" / "features.npy", np.array([ATTRIBUTE_ROWS[i] for i in ATTRIBUTE_ROWS], np.float32))
    write_text(tmp_path / "attr" / "item_ids.txt", "\n".join(ATTRIBUTE_ROWS) + "\n")
    write_text(tmp_path / "attr" / "attribute_names.txt", "\n".join(ATTRIBUTE_NAMES) + "\n")
    source = _source({"dataloader": "AttributeFeatures", "path": tmp_path / "attr"}, "visual_features")
    assert source.names == tuple(ATTRIBUTE_NAMES)
    assert source.load(np.array(["i9"], dtype=object), np.ones(1, bool)).tolist() == [[0.0, 0.30000001192092896, 1.0]]


def test_attribute_value_outside_unit_interval_names_item_and_attribute(tmp_path: Path) -> None:
    write_text(tmp_path / "a.tsv", "item\tfloral\tdenim\ni3\t0.5\t1.7\n")
    with pytest.raises(FeatureError, match=r"item i3 for attribute 'denim' is outside \[0, 1\]"):
        _source({"dataloader": "AttributeFeatures", "path": tmp_path / "a.tsv"}, "visual_features")
    source = _source({"dataloader": "AttributeFeatures", "path": tmp_path / "a.tsv", "probabilities": False},
                     "visual_features")
    assert source.load(np.array(["i3"], dtype=object), np.ones(1, bool))[0, 1] == pytest.approx(1.7)


def test_attribute_names_must_match_the_columns(tmp_path: Path) -> None:
    write_npy(tmp_path / "m.npy", np.zeros((2, 3), np.float32))
    write_text(tmp_path / "item_ids.txt", "i3\ni7\n")
    write_text(tmp_path / "names.txt", "floral\ndenim\n")
    with pytest.raises(FeatureError, match="2 attribute names for 3 feature columns"):
        _source({"dataloader": "AttributeFeatures", "path": tmp_path / "m.npy", "names_file": tmp_path / "names.txt"},
                "visual_features")
    write_text(tmp_path / "names.txt", "floral\ndenim\nfloral\n")
    with pytest.raises(FeatureError, match="repeats a name"):
        _source({"dataloader": "AttributeFeatures", "path": tmp_path / "m.npy", "names_file": tmp_path / "names.txt"},
                "visual_features")
