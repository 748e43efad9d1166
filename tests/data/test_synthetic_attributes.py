"""The planted named-attribute data: the loaders read it, and the bundled copy is what the generator writes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from elliot_visual.data.synthetic_attributes import ATTRIBUTES, item_attribute, write_planted_attributes
from elliot_visual.features.store import open_side_information

BUNDLED = Path(__file__).resolve().parents[2] / "data" / "demo_attributes"


def test_items_are_mostly_their_planted_attribute_and_users_buy_theirs(tmp_path: Path) -> None:
    folder = write_planted_attributes(tmp_path / "d")
    namespaces = open_side_information([{"dataloader": "AttributeFeatures", "path": folder / "attributes.tsv"},
                                        {"dataloader": "Images", "name": "pictures",
                                         "images_src_folder": folder / "images"}])
    source = namespaces["VisualAttributes"]["visual_features"]
    assert source.names == tuple(ATTRIBUTES)
    items = source.item_ids()
    values = source.load(items, np.ones(len(items), bool))
    assert [int(np.argmax(row)) for row in values] == [item_attribute(i) for i in items]
    assert set(namespaces["pictures"]["images"].item_ids()) == set(items)
    rows = pd.read_csv(folder / "dataset.tsv", sep="\t", header=None, names=["user", "item", "rating", "time"])
    own = [item_attribute(i) == int(u[1:]) % len(ATTRIBUTES) for u, i in zip(rows["user"], rows["item"])]
    assert np.mean(own) > 0.85 and rows["time"].is_monotonic_increasing


def test_the_bundled_demo_data_is_what_the_generator_writes(tmp_path: Path) -> None:
    folder = write_planted_attributes(tmp_path / "d")
    written = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    assert written == sorted(p.relative_to(BUNDLED) for p in BUNDLED.rglob("*") if p.is_file())
    assert all((folder / p).read_bytes() == (BUNDLED / p).read_bytes() for p in written)
