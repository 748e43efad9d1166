"""The CNNs-in-VRSs study end to end on a miniature Amazon category: raw McAuley files -> ``prepare
amazon`` (images fetched from a server on 127.0.0.1) -> one experiment run shaped like
``config_files/baby.yml`` (extraction with the bundled real-weights backbone, the four visual
models per feature source, grid search on validation, the study's metrics, VisDiv) -> the
Table-1 summary, Elliot's files and the visual-profile figures.

The raw data plant a visual signal: every item is a crop of one of four photos (its style), and
every user reviews mostly items of one style, so the extracted features group items by style.
"""
from __future__ import annotations

import gzip
import json
import struct
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from elliot_visual.cli import main
from elliot_visual.config import load_experiment
from elliot_visual.experiment import run_experiment, run_extraction_blocks
from elliot_visual.extraction.backbones import WeightsNotFoundError

REPO = Path(__file__).resolve().parents[1]

STYLES = ("chelsea", "coffee", "astronaut", "rocket")  # scikit-image's sample photos
ITEMS_PER_STYLE = 11
N_USERS = 56
REVIEWS_PER_USER = 8
NO_URL_ITEM = "B0NOURL000"   # no imUrl in the metadata: dropped by drop_items_without_image
DEAD_URL_ITEM = "B0DEAD0000"  # its URL answers 404: dropped after the download
METRICS = ["Recall", "AUC", "ItemCoverage", "ItemCoverageRatio", "EFD"]
VISDIV = "VisDiv[global,lite_b]"
CUTOFF = 10

PREPARE = """\
name: mini_baby
output_folder: ../data
sources:
  reviews: ../raw/reviews_Mini.json.gz
  meta: ../raw/meta_Mini.json
filters:
  k_core: 5
  drop_items_without_image: true
images:
  download: true
  workers: 4
  timeout: 5
  retries: 0
on_error: skip
progress: false
"""

# baby.yml in miniature: two feature sources stand for two backbones (the bundled EfficientNet-Lite0
# at two input sizes), each with a pooled vector layer and a convolutional feature map.
STUDY = """\
experiment:
  dataset: mini_baby
  data_config:
    strategy: dataset
    dataset_path: ../data/{0}/dataset.tsv
    missing_hint: elliot-visual prepare amazon --config config_files/prepare_mini_baby.yml
    side_information:
      - dataloader: FeatureVectors
        name: lite_a
        path: ../data/{0}/features/lite_a/pooled
        n_components: 8
      - dataloader: FeatureMaps
        name: lite_a
        path: ../data/{0}/features/lite_a/feature_map
      - dataloader: FeatureVectors
        name: lite_b
        path: ../data/{0}/features/lite_b/pooled
        n_components: 8
      - dataloader: FeatureMaps
        name: lite_b
        path: ../data/{0}/features/lite_b/feature_map
  extraction:
    - images: ../data/{0}/images
      backbone: efficientnet_lite0
      name: lite_a
      layers: [pooled, feature_map]
      output: ../data/{0}/features
      pca: 8
      preprocessing: {crop: 64}
      workers: 0
      progress: false
    - images: ../data/{0}/images
      backbone: efficientnet_lite0
      name: lite_b
      layers: [pooled, feature_map]
      output: ../data/{0}/features
      pca: 8
      preprocessing: {crop: 96}
      workers: 0
      progress: false
  prefiltering:
    - strategy: iterative_k_core
      core: 5
  splitting:
    save_on_disk: True
    save_folder: ../data/{0}/splits
    test_splitting:
      strategy: temporal_hold_out
      leave_n_out: 1
    validation_splitting:
      strategy: temporal_hold_out
      leave_n_out: 1
  top_k: 10
  evaluation:
    cutoffs: [10]
    simple_metrics: [Recall, AUC, ItemCoverage, ItemCoverageRatio, EFD]
    complex_metrics:
      - metric: VisDiv
        loader: lite_b
        projection: global
        implementation: sklearn
        max_iter: 300
        n_jobs: 1
        figure_sample: 2
        figure_seed: 5
    relevance_threshold: 1
    paired_ttest: True
  gpu: -1
  models:
    VBPR:
      meta: {hyper_opt_alg: grid, validation_rate: 1, validation_metric: AUC@10, save_recs: True}
      epochs: 2
      batch_size: 128
      loader: [lite_a, lite_b]
      lr: [0.001, 0.01]
      factors: 8
      factors_d: 4
    DeepStyle:
      meta: {hyper_opt_alg: grid, validation_rate: 1, validation_metric: AUC@10, save_recs: True}
      epochs: 2
      batch_size: 128
      loader: [lite_a, lite_b]
      lr: [0.001, 0.01]
      factors: 8
    ACF:
      meta: {hyper_opt_alg: grid, validation_rate: 1, validation_metric: AUC@10, save_recs: True}
      epochs: 1
      batch_size: 128
      loader: [lite_a, lite_b]
      lr: [0.001, 0.01]
      factors: 8
      layers_component: (8, 1)
      layers_item: (8, 1)
    VNPR:
      meta: {hyper_opt_alg: grid, validation_rate: 1, validation_metric: AUC@10, save_recs: True}
      epochs: 2
      batch_size: 128
      loader: [lite_a, lite_b]
      lr: [0.001, 0.01]
      mf_factors: 8
      mlp_hidden_size: (8, 1)
"""


def style_images(folder: Path, seed: int = 0) -> dict[str, str]:
    """``ITEMS_PER_STYLE`` JPEGs per style, each a random crop (flipped, tinted) of its style's photo;
    returns item id -> style."""
    from skimage import data

    rng = np.random.default_rng(seed)
    styles: dict[str, str] = {}
    for s, name in enumerate(STYLES):
        photo = getattr(data, name)()
        photo = photo[..., :3] if photo.ndim == 3 else np.stack([photo] * 3, axis=-1)
        height, width = photo.shape[:2]
        for k in range(ITEMS_PER_STYLE):
            side = int(min(height, width) * rng.uniform(0.6, 0.9))
            top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
            crop = photo[top:top + side, left:left + side].astype(np.float32)
            crop = crop[:, ::-1] if rng.random() < 0.5 else crop
            crop = np.clip(crop * rng.uniform(0.85, 1.15, size=3), 0, 255).astype(np.uint8)
            item = f"B0{s}{k:07d}"
            Image.fromarray(crop).resize((72, 72), Image.BILINEAR).save(folder / f"{item}.jpg", quality=90)
            styles[item] = name
    return styles


def write_raw_files(raw: Path, base_url: str, styles: dict[str, str], seed: int = 1) -> None:
    """McAuley's files: gzipped strict-JSON reviews, Python-literal metadata (as the 2014 dumps)."""
    rng = np.random.default_rng(seed)
    by_style = {name: [i for i, s in styles.items() if s == name] for name in STYLES}
    extra = [NO_URL_ITEM, DEAD_URL_ITEM]
    reviews = []
    for u in range(N_USERS):
        own = by_style[STYLES[u % len(STYLES)]]
        chosen = list(rng.choice(own, REVIEWS_PER_USER - 2, replace=False))
        others = [i for i in styles if i not in chosen]
        chosen += list(rng.choice(others, 2, replace=False))
        if u < 12:  # six reviews each: only the image filters can remove the two imageless items
            chosen[-1] = extra[u % 2]
        for t, item in enumerate(chosen):
            reviews.append({"reviewerID": f"U{u:04d}", "asin": str(item), "overall": float(rng.integers(3, 6)),
                            "unixReviewTime": 1_300_000_000 + 86_400 * (t * N_USERS + u)})
    (raw / "reviews_Mini.json.gz").write_bytes(gzip.compress("\n".join(map(json.dumps, reviews)).encode()))
    meta = [{"asin": item, "title": f"{style} item", "imUrl": f"{base_url}/{item}.jpg",
             "categories": [["Baby", style.title()]]} for item, style in styles.items()]
    meta.append({"asin": NO_URL_ITEM, "title": "no picture", "categories": [["Baby", "Misc"]]})
    meta.append({"asin": DEAD_URL_ITEM, "title": "dead link", "imUrl": f"{base_url}/gone.jpg",
                 "categories": [["Baby", "Misc"]]})
    (raw / "meta_Mini.json").write_text("\n".join(repr(m) for m in meta) + "\n", encoding="utf-8")


@pytest.fixture
def image_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The item photos served over HTTP on 127.0.0.1 (the way ``imUrl`` links are fetched)."""
    folder = tmp_path_factory.mktemp("served")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    httpd.shutdown()
    httpd.server_close()


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, f"{pattern}: {[p.name for p in found]}"
    return found[0]


def check_prepare_keeps_the_items_with_a_downloaded_image(study: dict) -> None:
    data = study["data"]
    frame = pd.read_csv(data / "dataset.tsv", sep="\t", header=None, names=["user", "item", "rating", "time"])
    assert set(frame["item"]) == set(study["styles"])  # the imageless and the dead-link item are gone
    assert frame.groupby("user").size().min() >= 5 and frame.groupby("item").size().min() >= 5
    assert sorted(p.stem for p in (data / "images").glob("*.jpg")) == sorted(study["styles"])
    card = json.loads((data / "card.json").read_text())
    assert (card["users"], card["items"], card["interactions"]) == (
        frame["user"].nunique(), len(study["styles"]), len(frame))


def check_extraction_wrote_vectors_maps_pca_and_metadata(study: dict) -> None:
    features = study["data"] / "features"
    items = sorted(study["styles"])
    for network, crop, regions in (("lite_a", 64, 4), ("lite_b", 96, 9)):
        pooled = np.load(features / network / "pooled" / "features.npy")
        ids = (features / network / "pooled" / "item_ids.txt").read_text().split()
        assert ids == items and pooled.shape == (len(items), 1280) and np.isfinite(pooled).all()
        maps = np.load(features / network / "feature_map" / "features.npy")
        assert maps.shape == (len(items), regions, 1280)  # (H*W, C): 2x2 at 64 px, 3x3 at 96 px
        assert np.load(features / network / "pooled_pca8" / "features.npy").shape == (len(items), 8)
        meta = json.loads((features / network / "pooled" / "metadata.json").read_text())
        assert (meta["backbone"], meta["layer"], meta["weights"]["kind"]) == ("efficientnet_lite0", "pooled",
                                                                               "pretrained")
        assert meta["preprocessing"]["crop"] == crop and meta["n_items"] == len(items)
        assert len(meta["weights"]["sha256"]) == 64
    # real ImageNet weights separate the planted styles: an item's nearest neighbour shares its style
    pooled = np.load(features / "lite_b" / "pooled" / "features.npy")
    unit = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    style = np.array([study["styles"][i] for i in items])
    assert (style[similarity.argmax(axis=1)] == style).mean() >= 0.9


def check_summary_has_one_row_per_model_and_backbone_with_the_configured_columns(study: dict) -> None:
    performance = study["results"] / "performance"
    summary = pd.read_csv(_one(performance, f"summary_cutoff_{CUTOFF}_relthreshold_1_*.tsv"), sep="\t")
    assert list(summary.columns) == ["model", "backbone", *METRICS, VISDIV]
    assert list(zip(summary["model"], summary["backbone"])) == [
        (model, backbone) for model in ("VBPR", "DeepStyle", "ACF", "VNPR") for backbone in ("lite_a", "lite_b")]
    values = summary[[*METRICS, VISDIV]].to_numpy(dtype=float)
    assert np.isfinite(values).all()
    assert summary[["Recall", "AUC", "ItemCoverageRatio"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (summary["ItemCoverage"] >= CUTOFF).all() and (summary[VISDIV] > 0).all()
    markdown = _one(performance, f"summary_cutoff_{CUTOFF}_relthreshold_1_*.md").read_text().splitlines()
    assert markdown[0] == "| model | backbone | " + " | ".join([*METRICS, VISDIV]) + " |"
    assert len(markdown) == 2 + len(summary)
    assert markdown[2].startswith("| VBPR | lite_a | ") and markdown[-1].startswith("| VNPR | lite_b | ")


def check_elliot_files_hold_every_best_model_and_every_trial(study: dict) -> None:
    results = study["results"]
    table = pd.read_csv(_one(results / "performance", f"rec_cutoff_{CUTOFF}_relthreshold_1_*.tsv"), sep="\t")
    assert list(table.columns) == ["model", *METRICS, VISDIV]
    assert [name.split("_")[0] for name in table["model"]] == [m for m in ("VBPR", "DeepStyle", "ACF", "VNPR")
                                                             for _ in range(2)]
    assert all(name.endswith(("load=lite_a", "load=lite_b")) for name in table["model"])
    trials = pd.read_csv(_one(results / "performance", f"rec_VBPR_cutoff_{CUTOFF}_relthreshold_1_*.tsv"), sep="\t")
    assert len(trials) == 4  # two learning rates per backbone
    ttest = _one(results / "performance", f"stat_paired_ttest_cutoff_{CUTOFF}_relthreshold_1_*.tsv")
    rows = [line.split("\t") for line in ttest.read_text().splitlines()]
    assert {row[2] for row in rows} == {"Recall", "EFD", VISDIV}  # the per-user metrics, VisDiv included
    assert len(rows) == 8 * 7 * 3  # ordered pairs of the 8 best models x 3 metrics
    assert len(list((results / "recs").glob("*.tsv"))) == 16
    assert (study["data"] / "splits" / "0" / "0" / "val.tsv").is_file()  # the split, saved as Elliot saves it


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def check_figures_show_the_sampled_users_under_every_model_and_backbone(study: dict) -> None:
    figures = study["results"] / "figures"
    grids = sorted(figures.glob("visdiv_user*_grid.png"))
    singles = sorted(figures.glob("visdiv_VisDiv_global_lite_b_at10_user*.png"))
    assert len(grids) == 2  # figure_sample: 2
    assert len(singles) == 2 * 8  # each sampled user under 4 models x 2 backbones
    users = {g.name[len("visdiv_user"):-len("_grid.png")] for g in grids}
    for user in users:
        drawn = {p.name.split(f"_user{user}_")[1][:-4] for p in singles if f"_user{user}_" in p.name}
        assert drawn == {f"{m}_{b}" for m in ("VBPR", "DeepStyle", "ACF", "VNPR") for b in ("lite_a", "lite_b")}
    single_w, single_h = _png_size(singles[0])
    for grid in grids:
        width, height = _png_size(grid)
        assert width > 1.6 * single_w and height > 3 * single_h  # 2 backbone columns x 4 model rows
        Image.open(grid).verify()
    written = {p for p in study["summary"].files if p.parent == figures}
    assert written == set(grids) | set(singles)


def check_a_second_run_reuses_the_extracted_features(study: dict) -> None:
    folder = study["data"] / "features" / "lite_a" / "pooled"
    before = (folder / "metadata.json").stat().st_mtime_ns
    run_extraction_blocks(load_experiment(study["root"] / "config_files" / "mini_baby.yml"))
    assert (folder / "metadata.json").stat().st_mtime_ns == before


def test_raw_amazon_files_become_table_one_and_the_visual_profiles(tmp_path: Path,
                                                                    image_server: tuple[str, Path]) -> None:
    """One run of the whole path (about 20 s on one core); the ``check_*`` functions above read what
    it left. One test rather than a module fixture, so that parallel workers never run it twice."""
    base_url, served = image_server
    styles = style_images(served)
    (tmp_path / "raw").mkdir()
    write_raw_files(tmp_path / "raw", base_url, styles)
    (tmp_path / "config_files").mkdir()
    (tmp_path / "config_files" / "prepare_mini_baby.yml").write_text(PREPARE)
    (tmp_path / "config_files" / "mini_baby.yml").write_text(STUDY)
    assert main(["prepare", "amazon", "--config", str(tmp_path / "config_files" / "prepare_mini_baby.yml")]) == 0
    summary = run_experiment(tmp_path / "config_files" / "mini_baby.yml")
    study = {"root": tmp_path, "styles": styles, "summary": summary,
             "results": tmp_path / "results" / "mini_baby", "data": tmp_path / "data" / "mini_baby"}
    check_prepare_keeps_the_items_with_a_downloaded_image(study)
    check_extraction_wrote_vectors_maps_pca_and_metadata(study)
    check_summary_has_one_row_per_model_and_backbone_with_the_configured_columns(study)
    check_elliot_files_hold_every_best_model_and_every_trial(study)
    check_figures_show_the_sampled_users_under_every_model_and_backbone(study)
    check_a_second_run_reuses_the_extracted_features(study)


STUDY_CONFIGS = [("baby.yml", "amazon_baby"), ("boys_girls.yml", "amazon_boys_girls")]


@pytest.mark.parametrize(("config", "dataset"), STUDY_CONFIGS)
def test_study_config_without_data_stops_with_the_prepare_command(tmp_path: Path, config: str, dataset: str,
                                                                  capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "config_files").mkdir()
    (tmp_path / "config_files" / config).write_text((REPO / "config_files" / config).read_text())
    assert main(["run", str(tmp_path / "config_files" / config)]) == 2
    err = capsys.readouterr().err
    command = f"elliot-visual prepare amazon --config config_files/prepare_{dataset}.yml"
    assert f"data missing: {tmp_path / 'data' / dataset / 'dataset.tsv'}" in err and command in err
    assert (REPO / "config_files" / f"prepare_{dataset}.yml").is_file()  # the command names a shipped file
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(("config", "dataset"), STUDY_CONFIGS)
def test_study_config_without_weights_names_every_missing_file_before_extracting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str, dataset: str) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # an empty weights cache
    (tmp_path / "config_files").mkdir()
    (tmp_path / "config_files" / config).write_text((REPO / "config_files" / config).read_text())
    (tmp_path / "data" / dataset / "images").mkdir(parents=True)
    (tmp_path / "data" / dataset / "dataset.tsv").write_text("u1\ti1\t5\t1\n")
    with pytest.raises(WeightsNotFoundError) as error:
        run_experiment(tmp_path / "config_files" / config)
    lines = str(error.value).splitlines()
    checkpoints = tmp_path / "hub" / "checkpoints"
    for position, (backbone, file) in enumerate([("alexnet", "alexnet-owt-7be5be79.pth"),
                                                 ("vgg19", "vgg19-dcbb9e9d.pth"),
                                                 ("resnet50", "resnet50-11ad3fa6.pth")]):
        assert lines[position].startswith(f"extraction[{position}] ({backbone}): ")
        assert f"Put the file {file} at {checkpoints / file}" in lines[position]
        assert (f"curl -L --create-dirs -o {checkpoints / file} https://download.pytorch.org/models/{file}"
                in lines[position])
    assert not (tmp_path / "data" / dataset / "features").exists()  # stopped before any extraction
