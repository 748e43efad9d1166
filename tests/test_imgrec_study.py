"""``config_files/imgrec_fashion.yml`` end to end on a miniature DVBPR file: prepare dvbpr -> the
config's models and protocol -> Elliot's report with the 1 + 100 and 1 + 500 columns.

The miniature: a planted dataset (120 users, 600 items) written as DVBPR's pickled layout (JPEG
pictures from ``draw_item_images``). The config is the shipped one with its paths pointed at the
miniature, the ResNet50 extraction replaced by the planted feature vectors (ResNet50's weights are
not on a test machine), epochs and grids cut to one small value, and ImgRec-EtE on the tiny CNN.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from elliot_visual.data.prepare_command import main_prepare
from elliot_visual.data.synthetic import draw_item_images, make_planted_dataset
from elliot_visual.experiment import run_experiment
from elliot_visual.storage import write_npy, write_text
from elliot_visual.testing.backbones import register_tiny_backbone

REPO = Path(__file__).resolve().parents[1]


def write_dvbpr_miniature(path: Path) -> np.ndarray:
    planted = make_planted_dataset(n_users=120, n_items=600, n_styles=6, feature_dim=16, interactions_per_user=10,
                                   seed=3)
    frame = planted.interactions
    from_last = frame.groupby("user", sort=False).cumcount(ascending=False)
    parts = []
    for rows in (frame[from_last >= 2], frame[from_last == 1], frame[from_last == 0]):
        users: dict[int, list] = {int(u): [] for u in planted.user_ids}
        for user, item in zip(rows["user"], rows["item"]):
            users[int(user)].append({b"productid": int(item), b"reviewerID": f"U{user}".encode()})
        parts.append(users)
    items = {}
    for index, picture in enumerate(draw_item_images(planted, 32)):
        buffer = io.BytesIO()
        Image.fromarray(picture.transpose(1, 2, 0)).save(buffer, format="JPEG", quality=95)
        items[index] = {b"imgs": buffer.getvalue()}
    stored = np.empty(6, dtype=object)
    stored[:] = [*parts, items, len(planted.user_ids), len(planted.item_ids)]
    np.save(path, stored, allow_pickle=True)
    return planted.features


def miniature_config(root: Path) -> Path:
    raw = yaml.safe_load((REPO / "config_files" / "imgrec_fashion.yml").read_text())
    exp = raw["experiment"]
    exp["dataset"] = "mini_fashion"
    exp.pop("extraction")
    exp["data_config"]["side_information"][0] = {"dataloader": "FeatureVectors", "name": "resnet50",
                                                 "path": "../data/{0}/features.npy",
                                                 "item_ids_file": "../data/{0}/item_ids.txt"}
    exp["data_config"]["side_information"][1]["output_image_size"] = "(32, 32)"
    exp["evaluation"]["negative_sampling"]["trials"] = 2
    exp["gpu"] = -1
    exp["threads"] = 1
    for name, entry in exp["models"].items():
        for key, value in list(entry.items()):
            if isinstance(value, list):
                entry[key] = value[0]
        entry.pop("early_stopping", None)
        if "epochs" in entry:
            entry.update(epochs=2, batch_size=256)
            entry.setdefault("meta", {})["validation_rate"] = 1
    exp["models"]["DVBPR"].update(fc_units=16, conv_channels="(4, 8)", factors=8)
    exp["models"]["ImgRecEtE"].update(backbone=register_tiny_backbone(), weights="random", unfreeze_from="conv2",
                                      finetune_epochs=1, factors=8, ft_units=8)
    config = root / "config_files" / "imgrec_mini.yml"
    config.parent.mkdir(parents=True)
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return config


def test_the_imgrec_config_runs_its_models_under_the_papers_protocol(tmp_path: Path) -> None:
    data = tmp_path / "data" / "mini_fashion"
    features = write_dvbpr_miniature(tmp_path / "mini.npy")
    assert main_prepare(["dvbpr", "--npy", str(tmp_path / "mini.npy"), "--out", str(data), "--no-progress"]) == 0
    write_npy(data / "features.npy", features)
    write_text(data / "item_ids.txt", "".join(f"{i}\n" for i in range(len(features))))
    summary = run_experiment(miniature_config(tmp_path))
    [table] = [p for p in summary.files if p.name.startswith("rec_cutoff_10_")]
    frame = pd.read_csv(table, sep="\t")
    families = [name.split("_")[0] for name in frame["model"]]
    assert families == ["PopRank", "WARP", "BPRMF", "FM", "VisRank", "VBPR", "DVBPR", "ImgRecDir", "ImgRecFT",
                        "ImgRecEtE"]
    for column in ("AUC", "AUC_std", "HR", "nDCG", "AUC_neg500", "HR_neg500", "nDCG_neg500_std"):
        assert column in frame.columns, column
    assert ((frame["AUC"] >= 0) & (frame["AUC"] <= 1)).all()
    # More negatives can only push the held-out item down: HR@10 against 500 <= against 100.
    assert (frame["HR_neg500"] <= frame["HR"] + 1e-9).all()
    visual = frame.set_index(pd.Index(families))
    assert visual.loc["VisRank", "AUC"] > visual.loc["PopRank", "AUC"]
