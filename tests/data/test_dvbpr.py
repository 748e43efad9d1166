"""DVBPR's pickled .npy: a miniature file in the authors' layout, written here, read back exactly."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from elliot_visual.config.schema import DataConfig, Experiment
from elliot_visual.data.dvbpr import read_dvbpr, write_dvbpr_dataset
from elliot_visual.data.loading import prepare_data
from elliot_visual.data.prepare_command import main_prepare
from elliot_visual.data.readers import DataError
from elliot_visual.features.loaders.images import ImageFolderSource


def jpeg(colour: tuple[int, int, int], size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


COLOURS = [(250, 10, 10), (10, 250, 10), (10, 10, 250), (240, 240, 10)]


def write_miniature(path: Path, key=lambda name: name.encode()) -> Path:
    """3 users, 4 items, as DVBPR's file: dicts with bytes keys (a Python 2 pickle read with
    encoding='bytes'); user 2 has no timestamp-free quirks, item 3 has no image."""
    review = lambda item: {key("productid"): item, key("reviewerID"): "x"}  # noqa: E731
    user_train = {0: [review(0), review(1)], 1: [review(2)], 2: [review(0), review(3)]}
    user_validation = {0: [review(2)], 1: [review(0)], 2: [review(1)]}
    user_test = {0: [review(3)], 1: [review(1)], 2: [review(2)]}
    items = {i: {key("imgs"): jpeg(COLOURS[i]), key("asin"): f"A{i}"} for i in range(3)}
    items[3] = {key("asin"): "A3"}
    parts = np.empty(6, dtype=object)
    parts[:] = [user_train, user_validation, user_test, items, 3, 4]
    np.save(path, parts, allow_pickle=True)
    return path


def pairs(frame) -> list[tuple[str, str]]:
    return list(zip(frame["user"], frame["item"]))


@pytest.mark.parametrize("key", [lambda n: n.encode(), str], ids=["bytes keys", "str keys"])
def test_reader_gives_the_fixed_split_and_the_jpeg_bytes(tmp_path, key):
    data = read_dvbpr(write_miniature(tmp_path / "mini.npy", key))
    assert (data.n_users, data.n_items) == (3, 4)
    assert pairs(data.train) == [("0", "0"), ("0", "1"), ("1", "2"), ("2", "0"), ("2", "3")]
    assert pairs(data.validation) == [("0", "2"), ("1", "0"), ("2", "1")]
    assert pairs(data.test) == [("0", "3"), ("1", "1"), ("2", "2")]
    assert sorted(data.images) == ["0", "1", "2"]
    assert data.images["1"] == jpeg(COLOURS[1])
    assert "timestamp" not in data.train


def test_data_config_reads_the_file_as_a_fixed_split(tmp_path):
    path = write_miniature(tmp_path / "mini.npy")
    results = tmp_path / "results"
    exp = Experiment(config_path=tmp_path / "c.yml", dataset="mini",
                     data_config=DataConfig(strategy="fixed", layout="dvbpr", root_folder=path),
                     path_output_rec_result=results, path_output_rec_weight=results,
                     path_output_rec_performance=results, path_output_figures=results, models=[])
    [[split]] = prepare_data(exp.data, verbose=False)
    assert split.n_users == 3 and split.n_items == 4
    assert split.test.item_ids.tolist() == ["3", "1", "2"]
    assert split.validation.item_ids.tolist() == ["2", "0", "1"]


def test_prepare_writes_tsvs_and_images_the_images_loader_decodes(tmp_path, capsys):
    path = write_miniature(tmp_path / "mini.npy")
    assert main_prepare(["dvbpr", "--npy", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert "3 users, 4 items, 5 train / 3 validation / 3 test rows, 3 images" in capsys.readouterr().out
    assert (tmp_path / "out" / "test.tsv").read_text() == "0\t3\t1.0\n1\t1\t1.0\n2\t2\t1.0\n"
    source = ImageFolderSource(tmp_path / "out" / "images", (8, 8))
    pixels = source.load(np.array(["0", "2"], dtype=object), np.ones(2, bool))
    assert pixels[0, 0].mean() > 200 and pixels[0, 2].mean() < 50   # red
    assert pixels[1, 2].mean() > 200 and pixels[1, 0].mean() < 50   # blue
    # A rerun keeps the images already written (resumable).
    stamp = (tmp_path / "out" / "images" / "0.jpg").stat().st_mtime_ns
    write_dvbpr_dataset(read_dvbpr(path), tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "images" / "0.jpg").stat().st_mtime_ns == stamp


def test_missing_file_names_where_it_comes_from(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"AmazonFashion6ImgPartitioned.npy.*kang205/DVBPR"):
        read_dvbpr(tmp_path / "AmazonFashion6ImgPartitioned.npy")
    assert main_prepare(["dvbpr", "--npy", str(tmp_path / "nope.npy"), "--out", str(tmp_path)]) == 2


def test_wrong_layout_is_a_clear_error(tmp_path):
    parts = np.empty(3, dtype=object)
    parts[:] = [{}, {}, {}]
    np.save(tmp_path / "bad.npy", parts, allow_pickle=True)
    with pytest.raises(DataError, match=r"bad.npy: expected the 6 parts"):
        read_dvbpr(tmp_path / "bad.npy")
    user_train = {0: [{b"productid": 9}]}
    parts = np.empty(6, dtype=object)
    parts[:] = [user_train, {}, {}, {}, 1, 2]
    np.save(tmp_path / "range.npy", parts, allow_pickle=True)
    with pytest.raises(DataError, match=r"user_train\[0\] names item 9, outside 0..1"):
        read_dvbpr(tmp_path / "range.npy")


# Ray Tune's own experiment state is pickled, so resuming a study on Ray unpickles whatever the
# backend does; its per-trial records are pickles beside it (README: resume only from trusted storage).
UNPICKLING_MODULES = ("data/dvbpr.py", "tuning/ray_backend.py")


def test_the_dvbpr_reader_is_the_only_module_that_unpickles():
    package = Path(__file__).resolve().parents[2] / "elliot_visual"
    offenders = [str(p.relative_to(package)) for p in package.rglob("*.py")
                 if str(p.relative_to(package)) not in UNPICKLING_MODULES and any(s in p.read_text(encoding="utf-8")
                                                 for s in ("allow_pickle=True", "import pickle", "pickle.load"))]
    assert offenders == []
