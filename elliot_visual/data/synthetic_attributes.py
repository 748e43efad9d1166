"""Planted data with named attribute features and item images, for interpretable VBPR-family models.

Each item is mostly one named attribute (probability 0.85-0.95, every other attribute 0-0.1) and
its image is a swatch of that attribute's colour; user ``u<m>`` buys 8 items of attribute
``m % n_attributes`` and one random item. A trained VBPR over these features must therefore rank
each user's own attribute first in her affinity vector (I-TVBPR eq. 5), and boosting another
attribute (eq. 7) must fill her list with it. Written in the layout the ``AttributeFeatures``
and ``Images`` loaders read: ``dataset.tsv`` (user, item, rating, timestamp), ``attributes.tsv``
(header ``item`` + names), ``images/<item>.png`` and the planted truth ``user_attributes.tsv``.
Why hand-written: no library plants named-attribute tastes with known ground truth.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from elliot_visual.storage import write_bytes, write_text

ATTRIBUTES = ("floral", "denim", "stripes", "leather", "silk", "plaid")
COLOURS = ((214, 96, 160), (54, 92, 160), (230, 200, 60), (120, 72, 40), (200, 200, 220), (60, 150, 80))
ITEMS_PER_USER = 8
START, DAY = 1_577_836_800, 86_400  # 2020-01-01 UTC; one event a day, so time figures read as dates


def item_attribute(item: str, n_attributes: int = len(ATTRIBUTES)) -> int:
    """The planted attribute of item ``i<n>``: ``n % n_attributes``."""
    return int(item[1:]) % n_attributes


def user_attribute(user: str, n_attributes: int = len(ATTRIBUTES)) -> int:
    """The planted liked attribute of user ``u<m>``: ``m % n_attributes``."""
    return int(user[1:]) % n_attributes


def write_planted_attributes(folder: str | Path, n_items: int = 60, n_users: int = 36, seed: int = 5,
                             image_size: int = 16) -> Path:
    """Write the dataset described in the module docstring into ``folder``; returns ``folder``."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    d = len(ATTRIBUTES)
    if n_items < d * ITEMS_PER_USER:
        raise ValueError(f"n_items must be at least {d * ITEMS_PER_USER} ({ITEMS_PER_USER} per attribute)")
    values = rng.uniform(0.0, 0.1, (n_items, d))
    for i in range(n_items):
        values[i, i % d] = rng.uniform(0.85, 0.95)
        buffer = io.BytesIO()
        Image.new("RGB", (image_size, image_size), COLOURS[i % d]).save(buffer, format="PNG")
        write_bytes(folder / "images" / f"i{i}.png", buffer.getvalue())
    lines = ["item\t" + "\t".join(ATTRIBUTES)]
    lines += [f"i{i}\t" + "\t".join(f"{v:.4f}" for v in values[i]) for i in range(n_items)]
    write_text(folder / "attributes.tsv", "\n".join(lines) + "\n")
    rows, stamp = [], 0
    for u in range(n_users):
        liked = [i for i in range(n_items) if i % d == u % d]
        chosen = [int(i) for i in rng.choice(liked, size=ITEMS_PER_USER, replace=False)] + [int(rng.integers(n_items))]
        for i in dict.fromkeys(chosen):
            rows.append(f"u{u}\ti{i}\t1\t{START + stamp * DAY}")
            stamp += 1
    write_text(folder / "dataset.tsv", "\n".join(rows) + "\n")
    write_text(folder / "user_attributes.tsv", "".join(f"u{u}\t{ATTRIBUTES[u % d]}\n" for u in range(n_users)))
    return folder
