"""A small dataset with a planted visual signal, written in the same layout as real data.

Items belong to *styles* and carry a few latent visual *attributes*; an item's feature vector is
its style's centre plus its attributes mapped into feature space plus noise, the centres far
apart, so features reveal the style and, within it, the look. Each user prefers one or two styles,
draws most of her interactions from them, and within a style favours items whose attributes lie
near her taste there. With ~12 interactions per item, co-occurrence only hints at these tastes,
while the features show them. Timestamps grow per user, and ``cold_items`` items get
interactions only from ``test_start`` on (one per user, her last): a temporal split puts them in
test only, where just a model reading features can rank them.

:func:`draw_item_images` draws each item's picture from the same truth: its style fixes the
background colour and the stripe pattern (orientation and frequency), its attributes the colour
and phase of the stripes, so a model reading pixels (DVBPR, ImgRec-EtE) can learn what the
features tell, offline and in seconds on a CPU.

What a correct pipeline must show on it: a visual model (VBPR, VisRank, ...) beats BPRMF, and a
model recommending the user's own style cluster has low visual diversity. The defaults (300 users,
400 items, ~4,800 interactions) keep a several-model demo well under two minutes on two cores.
Why hand-written: no library plants a visual preference signal with known ground truth.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from elliot_visual.storage import atomic_write, write_bytes, write_npy, write_text

DAY = 86_400
START = 1_577_836_800  # 2020-01-01 UTC; day-resolution unix seconds like the Amazon data


@dataclass(frozen=True)
class SyntheticDataset:
    """The planted data and the truth behind it.

    ``interactions``: rows ``user, item, rating, timestamp`` (ids as strings ``"0"``, ``"1"``, ...),
    ordered by user then time. ``features``: (n_items, feature_dim) float32 in ``item_ids`` order.
    ``item_styles``: (n_items,) style of each item; ``item_attributes``: (n_items, n_attributes).
    ``user_styles``: (n_users, 2) preferred styles,
    ``-1`` in the second slot for one-style users. ``style_centres``: (n_styles, feature_dim).
    ``cold_item_ids``: items with no interaction before ``test_start`` (unix seconds).
    """

    interactions: pd.DataFrame
    item_ids: np.ndarray
    user_ids: np.ndarray
    features: np.ndarray
    item_styles: np.ndarray
    item_attributes: np.ndarray
    user_styles: np.ndarray
    style_centres: np.ndarray
    cold_item_ids: np.ndarray
    test_start: int


@dataclass(frozen=True)
class PlantedFiles:
    """Where :func:`write_planted_dataset` put each part (paths under its ``root``)."""

    dataset: Path
    features: Path
    item_ids: Path
    features_folder: Path
    item_mapping: Path
    categories: Path
    user_styles: Path
    labels: Path
    images: Path | None = None


def make_planted_dataset(n_users: int = 300, n_items: int = 400, n_styles: int = 8, feature_dim: int = 64,
                         interactions_per_user: int = 16, seed: int = 42, cold_items: int = 0,
                         in_style: float = 0.9, separation: float = 2.5, n_attributes: int = 4,
                         spread: float = 0.6, noise: float = 0.2,
                         taste: float = 2.0, cold_users_per_item: int = 3, days: int = 730) -> SyntheticDataset:
    """Draw a planted dataset (see the module docstring); the same ``seed`` gives the same data.

    An item's features are ``centre[style] + attributes @ A + noise``: style centres with
    per-coordinate standard deviation ``separation`` (far apart: clusters do not overlap),
    ``n_attributes`` latent visual attributes (colour, shape, ...) mapped into feature space with
    per-coordinate spread ``spread``, and isotropic ``noise``. A user has a taste point in attribute
    space for each of her styles and picks items near it (``taste`` sets how strongly), so the
    features predict *which* items of a style she takes, not only the style. ``in_style`` is the
    share of her interactions drawn from her styles; ``interactions_per_user`` the Poisson mean of
    her warm interactions (at least 5).
    """
    if n_styles < 2 or n_items < 2 * n_styles:
        raise ValueError(f"need at least 2 styles and 2 items per style (got {n_styles} styles, {n_items} items)")
    if not 0 <= cold_items < n_items - n_styles:
        raise ValueError(f"cold_items={cold_items} must leave warm items in every style (n_items={n_items})")
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=separation, size=(n_styles, feature_dim))
    item_styles = rng.permutation(np.arange(n_items) % n_styles)
    attributes = rng.normal(size=(n_items, n_attributes))
    mixing = rng.normal(scale=spread / np.sqrt(n_attributes), size=(n_attributes, feature_dim))
    features = (centres[item_styles] + attributes @ mixing
                + noise * rng.normal(size=(n_items, feature_dim))).astype(np.float32)
    # Mild popularity, so MostPop is a fair baseline but no item dominates.
    appeal = rng.lognormal(0.0, 0.5, size=n_items)

    cold = np.zeros(n_items, dtype=bool)
    if cold_items:
        # One warm anchor per style is never cold, so every style keeps something to learn from.
        anchors = [rng.choice(np.flatnonzero(item_styles == s)) for s in range(n_styles)]
        pool = np.setdiff1d(np.arange(n_items), anchors)
        cold[rng.choice(pool, size=cold_items, replace=False)] = True
    warm = ~cold

    n_pref = rng.integers(1, 3, size=n_users)
    user_styles = np.full((n_users, 2), -1, dtype=np.int64)
    for u in range(n_users):
        user_styles[u, :n_pref[u]] = rng.choice(n_styles, size=n_pref[u], replace=False)
    tastes = rng.normal(size=(n_users, 2, n_attributes))  # one taste point per (user, style slot)
    counts = np.maximum(5, rng.poisson(interactions_per_user, size=n_users))

    def pull(u: int, slot: int, items: np.ndarray) -> np.ndarray:
        """How strongly user u's taste in her style ``slot`` draws her to ``items`` (standardised within them)."""
        closeness = -np.linalg.norm(attributes[items] - tastes[u, slot], axis=1)
        return np.exp(taste * (closeness - closeness.mean()) / (closeness.std() + 1e-12))

    rows_user, rows_item, rows_time = [], [], []
    for u in range(n_users):
        styles = user_styles[u, :n_pref[u]]
        n_in = rng.binomial(counts[u], in_style)
        per_slot = rng.multinomial(n_in, np.full(len(styles), 1 / len(styles)))
        chosen = []
        for slot, style in enumerate(styles):
            inside = np.flatnonzero(warm & (item_styles == style))
            chosen.append(_weighted_sample(rng, inside, appeal[inside] * pull(u, slot, inside),
                                           min(per_slot[slot], len(inside))))
        outside = np.flatnonzero(warm & ~np.isin(item_styles, styles))
        chosen.append(_weighted_sample(rng, outside, appeal[outside], min(counts[u] - n_in, len(outside))))
        chosen = np.concatenate(chosen)
        rng.shuffle(chosen)
        stamps = START + DAY * np.sort(rng.choice(days, size=len(chosen), replace=False))
        rows_user.append(np.full(len(chosen), u))
        rows_item.append(chosen)
        rows_time.append(stamps)

    test_start = START + DAY * days
    taken = np.zeros(n_users, dtype=bool)  # at most one cold event per user, her last
    for item in np.flatnonzero(cold):
        # The cold item's first users are fans of its style whose taste it suits.
        fans, slots = np.nonzero((user_styles == item_styles[item]) & ~taken[:, None])
        if fans.size == 0:
            continue
        distance = np.linalg.norm(attributes[item] - tastes[fans, slots], axis=1)
        weights = np.exp(-taste * distance / np.sqrt(n_attributes))
        picked = rng.choice(fans, size=min(cold_users_per_item, len(fans)), replace=False, p=weights / weights.sum())
        taken[picked] = True
        for u in picked:
            rows_user.append(np.array([u]))
            rows_item.append(np.array([item]))
            rows_time.append(np.array([test_start + DAY * int(rng.integers(0, 30))]))

    frame = pd.DataFrame({"user": np.concatenate(rows_user), "item": np.concatenate(rows_item),
                          "timestamp": np.concatenate(rows_time).astype(np.int64)})
    frame = frame.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)
    frame = pd.DataFrame({"user": frame["user"].astype(str).astype(object),
                          "item": frame["item"].astype(str).astype(object),
                          "rating": np.ones(len(frame)), "timestamp": frame["timestamp"]})
    return SyntheticDataset(
        interactions=frame, item_ids=np.arange(n_items).astype(str).astype(object),
        user_ids=np.arange(n_users).astype(str).astype(object), features=features, item_styles=item_styles,
        item_attributes=attributes,
        user_styles=user_styles, style_centres=centres, cold_item_ids=np.flatnonzero(cold).astype(str).astype(object),
        test_start=int(test_start))


def _weighted_sample(rng: np.random.Generator, pool: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """``size`` distinct items of ``pool`` drawn with probability proportional to ``weights`` (aligned to pool)."""
    if size <= 0:
        return np.zeros(0, dtype=np.int64)
    p = weights / weights.sum()
    return rng.choice(pool, size=size, replace=False, p=p)


def draw_item_images(data: SyntheticDataset, size: int = 32, seed: int = 0, pixel_noise: float = 8.0) -> np.ndarray:
    """(n_items, 3, size, size) uint8 pictures whose look is the planted truth (module docstring).

    Style s: a background colour (hues spread around the colour wheel) and stripes at angle
    π s / n_styles with 2 + s mod 3 periods across the picture; attributes: the stripes' colour
    (the first three attributes through a sigmoid, as RGB) and phase (the fourth, if any). The
    palette and the pixel noise come from ``seed``, not from the data's own stream.
    """
    rng = np.random.default_rng(seed)
    n_styles = int(data.style_centres.shape[0])
    hues = (np.arange(n_styles) / n_styles + rng.uniform(0, 1 / n_styles)) % 1.0
    phase = 2 * np.pi * np.arange(3) / 3
    background = 0.5 + 0.4 * np.cos(2 * np.pi * hues[:, None] - phase[None, :])  # (n_styles, 3) in [.1, .9]
    attrs = data.item_attributes
    colour_attrs = np.zeros((len(attrs), 3))
    colour_attrs[:, :min(3, attrs.shape[1])] = attrs[:, :3]
    foreground = 1.0 / (1.0 + np.exp(-1.5 * colour_attrs))  # (n_items, 3)
    shift = attrs[:, 3] if attrs.shape[1] > 3 else np.zeros(len(attrs))
    ys, xs = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    styles = data.item_styles
    angle = np.pi * styles / n_styles
    periods = 2 + styles % 3
    coordinate = np.cos(angle)[:, None, None] * xs + np.sin(angle)[:, None, None] * ys
    stripes = (np.sin(2 * np.pi * periods[:, None, None] * coordinate + shift[:, None, None]) > 0)[:, None]
    pixels = np.where(stripes, foreground[:, :, None, None], background[styles][:, :, None, None]) * 255.0
    pixels = pixels + rng.normal(scale=pixel_noise, size=pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def write_planted_dataset(root: str | Path, dataset: SyntheticDataset | None = None, *,
                          image_size: int | None = None, **kwargs: int | float) -> PlantedFiles:
    """Write a planted dataset under ``root`` as real data are laid out (``kwargs`` go to :func:`make_planted_dataset`).

    * ``dataset.tsv``: headerless ``user, item, rating, timestamp`` (Elliot's ``dataset_path``);
    * ``visual_features.npy`` (n_items, d) float32 with ``item_ids.txt``, one id per line, in row order;
    * ``visual_features/<item>.npy``: one 1-D vector per item (Elliot's ``visual_features`` folder),
      with ``visual_feats.tsv`` mapping ``item \\t feature_index`` (the fork's ``item_mapping``);
    * ``item_categories.tsv``: ``item \\t style`` (an item-attribute file);
    * ``item_labels.tsv``: ``item \\t style<s>|look<a>``, several labels per item (:func:`planted_labels`);
    * ``user_styles.tsv``: ``user \\t style[,style]``, the planted truth, for figures and checks;
    * with ``image_size``: ``images/<item>.png``, :func:`draw_item_images` (the ``Images`` loader's layout).
    """
    data = dataset if dataset is not None else make_planted_dataset(**kwargs)
    root = Path(root)
    files = PlantedFiles(dataset=root / "dataset.tsv", features=root / "visual_features.npy",
                         item_ids=root / "item_ids.txt", features_folder=root / "visual_features",
                         item_mapping=root / "visual_feats.tsv", categories=root / "item_categories.tsv",
                         user_styles=root / "user_styles.tsv", labels=root / "item_labels.tsv")
    with atomic_write(files.dataset) as handle:
        data.interactions.to_csv(handle, sep="\t", header=False, index=False, lineterminator="\n")
    write_npy(files.features, data.features)
    write_text(files.item_ids, "".join(f"{item}\n" for item in data.item_ids))
    for index, item in enumerate(data.item_ids):
        write_npy(files.features_folder / f"{item}.npy", data.features[index])
    write_text(files.item_mapping, "".join(f"{item}\t{item}\n" for item in data.item_ids))
    write_text(files.categories, "".join(f"{item}\t{style}\n" for item, style in zip(data.item_ids, data.item_styles)))
    write_text(files.labels, "".join(f"{item}\t{'|'.join(labels)}\n"
                                     for item, labels in zip(data.item_ids, planted_labels(data))))
    write_text(files.user_styles, "".join(f"{user}\t{','.join(str(s) for s in styles if s >= 0)}\n"
                                          for user, styles in zip(data.user_ids, data.user_styles)))
    if image_size is not None:
        files = replace(files, images=write_style_images(root / "images", data.item_ids,
                                                         draw_item_images(data, image_size).transpose(0, 2, 3, 1)))
    return files


def planted_labels(data: SyntheticDataset) -> list[list[str]]:
    """Each item's labels: its style (``style<s>``) and its dominant latent attribute (``look<a>``).

    A user's items then share her one or two style labels, while the look labels are spread over
    every style: predicting a user's labels from her items (the multilabel task) must find her styles.
    """
    looks = np.argmax(np.abs(data.item_attributes), axis=1) if data.item_attributes.size else \
        np.zeros(len(data.item_ids), dtype=np.int64)
    return [[f"style{int(s)}", f"look{int(a)}"] for s, a in zip(data.item_styles, looks)]


@dataclass(frozen=True)
class TrendDataset:
    """Planted fashion trends: ``interactions`` (user, item, rating, timestamp), ``features``
    (n_items, n_styles + noise_dims) float32 whose first ``n_styles`` columns are named style
    attributes (``feature_names``), ``trend_styles`` the style in fashion during each period, and
    ``change_points`` the unix seconds where the fashion changes."""

    interactions: pd.DataFrame
    item_ids: np.ndarray
    features: np.ndarray
    feature_names: list[str]
    item_styles: np.ndarray
    trend_styles: np.ndarray
    change_points: np.ndarray
    start: int
    end: int


def make_trend_dataset(n_users: int = 200, n_items: int = 120, n_styles: int = 4, interactions_per_user: int = 12,
                       periods: int = 3, in_fashion: float = 0.7, noise_dims: int = 4, days: int = 360,
                       changes: tuple[float, ...] | None = None, seed: int = 0) -> TrendDataset:
    """Styles that rise and fall: the timeline is cut into ``periods`` periods (equal ones, or at the
    fractions ``changes`` of the span), each with one style in fashion; an interaction at time t picks, with probability ``in_fashion``, an item of
    the style in fashion at t, else an item of the user's own style.

    Items carry interpretable features: a noisy one-hot of their style (``style<k>``, attribute
    probabilities in [0, 1]) plus ``noise_dims`` uninformative ones. What a temporal model must show
    on it: it ranks late events better than a static one, its time epochs split at
    ``change_points``, and the style in fashion last rises in its trend.
    Why hand-written: no library plants a time-varying visual preference with known change points.
    """
    rng = np.random.default_rng(seed)
    item_styles = np.arange(n_items) % n_styles
    rng.shuffle(item_styles)
    onehot = np.eye(n_styles)[item_styles]
    attributes = np.clip(0.8 * onehot + rng.uniform(0.0, 0.2, onehot.shape), 0.0, 1.0)
    features = np.concatenate([attributes, rng.uniform(0.0, 1.0, (n_items, noise_dims))], 1).astype(np.float32)
    trend_styles = rng.permutation(n_styles)[:periods] if periods <= n_styles else rng.integers(0, n_styles, periods)
    start, end = START, START + days * DAY
    fractions = np.linspace(0, 1, periods + 1)[1:-1] if changes is None else np.asarray(changes, dtype=float)
    if len(fractions) != periods - 1 or np.any(np.diff(fractions) <= 0) or np.any((fractions <= 0) | (fractions >= 1)):
        raise ValueError(f"changes must be {periods - 1} increasing fractions in (0, 1), got {changes}")
    change_points = start + fractions * (end - start)
    user_styles = rng.integers(0, n_styles, n_users)
    by_style = [np.flatnonzero(item_styles == s) for s in range(n_styles)]
    rows = []
    for user in range(n_users):
        times = np.sort(rng.integers(start, end, interactions_per_user))
        seen: set[int] = set()
        for t in times:
            period = int(np.searchsorted(change_points, t, side="right"))
            style = trend_styles[period] if rng.random() < in_fashion else user_styles[user]
            pool = [i for i in by_style[style] if i not in seen] or [i for i in range(n_items) if i not in seen]
            item = int(rng.choice(pool))
            seen.add(item)
            rows.append((str(user), str(item), 1.0, int(t)))
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    names = [f"style{k}" for k in range(n_styles)] + [f"noise{k}" for k in range(noise_dims)]
    return TrendDataset(frame, np.asarray([str(i) for i in range(n_items)], dtype=object), features, names,
                        item_styles, np.asarray(trend_styles), change_points, start, end)


def draw_style_images(item_styles: np.ndarray, n_styles: int, size: int = 64, seed: int = 0,
                      jitter: float = 6.0) -> np.ndarray:
    """(n_items, size, size, 3) uint8 images whose *style* is visible only in their texture.

    Style ``s`` is a stripe pattern at angle ``180 * s / n_styles`` degrees (each item jittered by
    up to ``jitter`` degrees, with its own phase and a period of 6-9 px at 64 px, scaled with
    ``size``); the two colours of every
    image are drawn at random, independently of the style, so colour is a nuisance: a network
    whose similarities follow colour misreads the style, one tuned to the style reads it. This is
    the planted signal of the transfer study (purchases follow the style, see
    :func:`make_planted_dataset`'s ``item_styles``).
    """
    rng = np.random.default_rng(seed)
    n = int(np.asarray(item_styles).shape[0])
    angles = np.radians(180.0 * np.asarray(item_styles) / n_styles + rng.uniform(-jitter, jitter, n))
    periods = rng.uniform(6.0, 9.0, n) * size / 64
    phases = rng.uniform(0.0, 2 * np.pi, n)
    ink, paper = rng.integers(0, 256, (n, 3)), rng.integers(0, 256, (n, 3))
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        along = xs * np.cos(angles[i]) + ys * np.sin(angles[i])
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * along / periods[i] + phases[i])        # (size, size) in [0, 1]
        images[i] = (wave[..., None] * ink[i] + (1 - wave[..., None]) * paper[i]).round().astype(np.uint8)
    return images


def write_style_images(folder: str | Path, item_ids: np.ndarray, images: np.ndarray) -> Path:
    """Write ``images[i]`` as ``<folder>/<item_ids[i]>.png`` (the layout extraction reads)."""
    import io

    from PIL import Image

    folder = Path(folder)
    for item, pixels in zip(item_ids, images):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        write_bytes(folder / f"{item}.png", buffer.getvalue())
    return folder
