"""The bundled interpretable demo (config_files/demo_attributes.yml over planted named attributes,
elliot_visual.data.synthetic_attributes) laid out as a user's project in a temporary folder."""
from __future__ import annotations

from pathlib import Path

from elliot_visual.data.synthetic_attributes import ATTRIBUTES, item_attribute, user_attribute, write_planted_attributes

__all__ = ["ATTRIBUTES", "DATASET", "item_attribute", "user_attribute", "write_attribute_project"]

REPO = Path(__file__).resolve().parents[1]
DATASET = "demo_attributes"


def write_attribute_project(root: Path, seed: int = 5) -> Path:
    """config_files/demo_attributes.yml (the bundled one) and freshly generated data/demo_attributes/."""
    write_planted_attributes(root / "data" / DATASET, seed=seed)
    (root / "config_files").mkdir()
    (root / "config_files" / f"{DATASET}.yml").write_text((REPO / "config_files" / f"{DATASET}.yml").read_text())
    return root
