"""A miniature of ``config_files/home_kitchen_aggregation.yml``: raw McAuley-style files -> ``prepare
amazon`` with category labels and the fine-tuning user cut -> the shipped config (smaller numbers,
the offline EfficientNet-Lite0 for MobileNet) fine-tunes the CNN, extracts every item, trains the set
networks on a user-level split and writes the multilabel tables and the P/R/F1-against-k figure."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from elliot_visual.cli import main
from elliot_visual.data.prepare_command import main_prepare

ROOT = Path(__file__).resolve().parents[1]
LEAVES = {("Kitchen & Dining", "Bakeware"): (200, 60, 40), ("Kitchen & Dining", "Cutlery"): (170, 170, 180),
          ("Bedding", "Sheets"): (40, 80, 200), ("Bedding", "Pillows"): (60, 170, 70)}


def raw_files(folder: Path, rng: np.random.Generator) -> dict[str, tuple[str, str]]:
    """48 items in 4 leaf categories of 2 subtrees; 60 users buying mostly within one subtree."""
    folder.mkdir(parents=True)
    leaves = list(LEAVES)
    items = {f"B{n:09d}": leaves[n % 4] for n in range(48)}
    meta = [{"asin": a, "title": f"item {a}", "imUrl": f"http://img.invalid/{a}.jpg",
             "categories": [["Home & Kitchen", *leaf]]} for a, leaf in items.items()]
    (folder / "meta.json").write_text("\n".join(json.dumps(m) for m in meta) + "\n")
    reviews = []
    for u in range(60):
        subtree = ("Kitchen & Dining", "Bedding")[u % 2]
        liked = [a for a, leaf in items.items() if leaf[0] == subtree]
        chosen = list(rng.choice(liked, size=int(rng.integers(6, 9)), replace=False))
        chosen += list(rng.choice(list(items), size=1))
        for day, asin in enumerate(dict.fromkeys(chosen)):
            reviews.append({"reviewerID": f"U{u:03d}", "asin": asin, "overall": 5.0,
                            "unixReviewTime": 1_400_000_000 + 86_400 * day})
    (folder / "reviews.json").write_text("\n".join(json.dumps(r) for r in reviews) + "\n")
    return items


def write_images(folder: Path, items: dict[str, tuple[str, str]], rng: np.random.Generator) -> None:
    """An item's picture: its leaf category's colour with noise (the planted visual signal)."""
    folder.mkdir(parents=True, exist_ok=True)
    for asin, leaf in items.items():
        pixels = np.clip(np.array(LEAVES[leaf]) + rng.normal(0, 25, (64, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{asin}.png")


def miniature(config: dict) -> dict:
    """The shipped config with the sizes of a test and a backbone whose weights ship offline."""
    exp = config["experiment"]
    exp["dataset"] = "mini_hk"
    exp["gpu"], exp["threads"], exp["top_k"] = -1, 1, 3
    exp["evaluation"]["cutoffs"] = [1, 2, 3]
    block = exp["extraction"][0]
    block.update(backbone="efficientnet_lite0", preprocessing={"crop": 64}, epochs=2, unfreeze_epochs=1,
                 deep_blocks=1, shared_dim=16, workers=0, progress=False)
    exp["data_config"]["side_information"][0]["path"] = "../data/{0}/features/efficientnet_lite0_finetuned_deep/shared"
    for name, entry in exp["models"].items():
        entry["meta"]["validation_metric"] = "F1@3"
        if name != "CategoryPop":
            entry.update(epochs=4, batch_size=8, hidden=32)
    return config


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_home_kitchen_protocol_in_miniature(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    items = raw_files(tmp_path / "data" / "raw", rng)
    (tmp_path / "config_files").mkdir()
    prepare = yaml.safe_load((ROOT / "config_files" / "prepare_amazon_home_kitchen.yml").read_text())
    prepare.update(name="mini_hk", sources={"reviews": "../data/raw/reviews.json", "meta": "../data/raw/meta.json"},
                   images={"download": False}, progress=False)
    prepare["labels"]["min_items"] = 10
    (tmp_path / "config_files" / "prepare.yml").write_text(yaml.safe_dump(prepare))
    assert main_prepare(["amazon", "--config", str(tmp_path / "config_files" / "prepare.yml")]) == 0
    folder = tmp_path / "data" / "mini_hk"
    write_images(folder / "images", items, rng)
    labels = dict(line.split("\t") for line in (folder / "item_labels.tsv").read_text().splitlines())
    # every item holds its subtree and its leaf node (11-12 items each, >= 10), named by their path;
    # the top level, which every item holds, is skipped
    assert labels["B000000000"] == "Home & Kitchen > Kitchen & Dining|Home & Kitchen > Kitchen & Dining > Bakeware"
    users = pd.read_csv(folder / "dataset_aggregation.tsv", sep="\t", header=None)[0].nunique()
    assert users == 18                                                # 30% of 60: the set networks' users

    config = miniature(yaml.safe_load((ROOT / "config_files" / "home_kitchen_aggregation.yml").read_text()))
    (tmp_path / "config_files" / "home_kitchen_aggregation.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "home_kitchen_aggregation"]) == 0

    tuned = folder / "features" / "efficientnet_lite0_finetuned_deep" / "shared"
    stage_one = json.loads((tuned / "metadata.json").read_text())["finetune"]
    assert stage_one["tasks"][0]["kind"] == "multilabel" and stage_one["tasks"][0]["pos_weight"] == 36
    assert stage_one["epochs_run"] == 3 and np.load(tuned / "features.npy").shape == (48, 16)
    performance = tmp_path / "results" / "mini_hk" / "performance"
    for k in (1, 2, 3):
        (table,) = performance.glob(f"multilabel_cutoff_{k}_*.tsv")
        rows = pd.read_csv(table, sep="\t")
        assert [m.split("_")[0] for m in rows["model"]] == ["CategoryPop", "AveragePooling", "NeuralAggregation"]
        assert list(rows.columns) == ["model", "Precision", "Recall", "F1"]
    (trials,) = performance.glob("multilabel_NeuralAggregation_cutoff_3_*.tsv")
    assert len(pd.read_csv(trials, sep="\t")) == 4                    # blocks 1, 2 x context gating off, on
    (figure,) = (tmp_path / "results" / "mini_hk" / "figures").glob("multilabel_curves_*.png")
    assert Image.open(figure).size[0] > 2 * Image.open(figure).size[1]
