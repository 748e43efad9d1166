"""A planted dataset with named attribute features and item images, laid out as a user's project.

Six attributes; item ``i<n>`` is mostly attribute ``n % 6`` (probability ~0.9, the others ~0.05),
its image a swatch of that attribute's colour; user ``u<m>`` buys items of attribute ``m % 6``
(plus one random item), so a trained model's affinity vector must rank her attribute first.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


ATTRIBUTES = ["floral", "denim", "stripes", "leather", "silk", "plaid"]
COLOURS = [(214, 96, 160), (54, 92, 160), (230, 200, 60), (120, 72, 40), (200, 200, 220), (60, 150, 80)]
N_ITEMS, N_USERS = 60, 36

CONFIG = """\
experiment:
  dataset: attrs
  data_config:
    strategy: dataset
    dataset_path: ../data/{0}/dataset.tsv
    side_information:
      - dataloader: AttributeFeatures
        name: attributes
        path: ../data/{0}/attributes.tsv
      - dataloader: Images
        name: attributes
        images_src_folder: ../data/{0}/images
        output_image_size: (8, 8)
  splitting:
    test_splitting:
      strategy: temporal_hold_out
      leave_n_out: 1
    validation_splitting:
      strategy: temporal_hold_out
      leave_n_out: 1
  top_k: 10
  evaluation:
    cutoffs: [5, 10]
    simple_metrics: [Recall, nDCG, AUC]
    paired_ttest: True
  gpu: -1
  threads: 1
  models:
    MostPop:
      meta:
        save_recs: True
    BPRMF:
      meta:
        validation_metric: AUC@10
        validation_rate: 5
      epochs: 20
      batch_size: 64
      factors: 4
      lr: [0.01, 0.05]
    VBPR:
      meta:
        validation_metric: AUC@10
        validation_rate: 5
        save_weights: True
      epochs: 40
      batch_size: 64
      factors: 4
      factors_d: 4
      lr: 0.05
      l_w: 0.0001
      l_e: 0.0
      loader: attributes
"""


def item_attribute(item: str) -> int:
    return int(item[1:]) % len(ATTRIBUTES)


def user_attribute(user: str) -> int:
    return int(user[1:]) % len(ATTRIBUTES)


def write_attribute_project(root: Path, seed: int = 5) -> Path:
    """config_files/attrs.yml and data/attrs/{dataset.tsv, attributes.tsv, images/} under ``root``."""
    rng = np.random.default_rng(seed)
    data = root / "data" / "attrs"
    (data / "images").mkdir(parents=True)
    values = rng.uniform(0.0, 0.1, (N_ITEMS, len(ATTRIBUTES)))
    for i in range(N_ITEMS):
        values[i, i % len(ATTRIBUTES)] = rng.uniform(0.85, 0.95)
        Image.new("RGB", (16, 16), COLOURS[i % len(COLOURS)]).save(data / "images" / f"i{i}.png")
    lines = ["item\t" + "\t".join(ATTRIBUTES)]
    lines += [f"i{i}\t" + "\t".join(f"{v:.4f}" for v in values[i]) for i in range(N_ITEMS)]
    (data / "attributes.tsv").write_text("\n".join(lines) + "\n")
    rows, stamp = [], 0
    for u in range(N_USERS):
        liked = [i for i in range(N_ITEMS) if i % len(ATTRIBUTES) == u % len(ATTRIBUTES)]
        chosen = list(rng.choice(liked, size=8, replace=False)) + [int(rng.integers(N_ITEMS))]
        for i in dict.fromkeys(chosen):
            stamp += 1
            rows.append(f"u{u}\ti{i}\t1\t{stamp}")
    (data / "dataset.tsv").write_text("\n".join(rows) + "\n")
    (root / "config_files").mkdir()
    (root / "config_files" / "attrs.yml").write_text(CONFIG)
    return root
