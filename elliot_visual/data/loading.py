"""``data_config`` to indexed splits: read -> prefilter -> binarize -> split, as Elliot's DataSetLoader does.

* ``strategy: dataset`` reads ``dataset_path``, applies ``prefiltering`` in order, sets every
  rating to 1 if ``binarize``, then splits (and saves the split when ``save_on_disk``);
* ``strategy: fixed`` reads ``train_path``/``validation_path``/``test_path`` verbatim (no
  prefiltering, no splitting; ``binarize`` still applies), or, for a non-Elliot ``layout``, the
  split folder ``root_folder``;
* ``strategy: hierarchy`` reads a split saved by ``save_on_disk`` from ``root_folder``.

The result mirrors Elliot's data objects: a list over test folds of lists over validation folds
of :class:`Interactions`.
"""
from __future__ import annotations

from pathlib import Path

import logging
from typing import TYPE_CHECKING

import pandas as pd

from elliot_visual.data.interactions import HeldOut, Interactions
from elliot_visual.data.prefilter import apply_prefilters
from elliot_visual.data.dvbpr import read_dvbpr_split
from elliot_visual.data.readers import DataError, read_interactions, read_split_layout
from elliot_visual.data.splitting import Folds, holds_out_users, read_hierarchy, split

if TYPE_CHECKING:
    from elliot_visual.config.schema import DataSection

logger = logging.getLogger(__name__)


def prepare_data(section: DataSection, verbose: bool = True) -> list[list[Interactions]]:
    """The experiment's splits (``exp.data``), indexed: ``result[i][j]`` is test fold i, validation fold j.

    Each :class:`Interactions` has the train part, the validation part (or None) and the test
    part. With ``verbose`` a short summary (users, items, interactions per part) is logged.
    """
    folds = read_folds(section)
    keep = section.config.keep_held_out_users or holds_out_users(section.splitting)
    data = [[Interactions.from_frames(section.dataset, train, test, val, keep_held_out_users=keep)
             for train, val in inner] for inner, test in folds]
    for i, (inner, test) in enumerate(folds):
        for j, (_, val) in enumerate(inner):
            where = f"fold {i}/{j}" if len(folds) > 1 or len(inner) > 1 else ""
            for label, frame, part in (("validation", val, data[i][j].validation), ("test", test, data[i][j].test)):
                if frame is not None and part is not None:
                    report_held_out(label, frame, part, data[i][j], where)
    if verbose:
        for line in describe(data).splitlines():
            logger.info("%s", line)
    return data


def report_held_out(label: str, frame: pd.DataFrame, part: HeldOut, data: Interactions, where: str = "") -> None:
    """Say what Elliot does silently to held-out rows, and refuse a held-out set that evaluates nothing.

    Rows of users without train rows are dropped (Elliot builds its test dicts over train users);
    rows of items outside the catalogue stay relevant but can never be recommended. Both are logged
    with counts and first ids. An empty set would make every metric empty and model selection
    arbitrary, so it is an error (a ``relevance_threshold`` above every rating is the preflight's).
    """
    at = f"{data.name} {label}" + (f" ({where})" if where else "")
    users = frame["user"].astype(str)
    dropped = sorted(set(users[~users.isin(data.user_index.keys())]))
    if dropped:
        rows = int((~users.isin(data.user_index.keys())).sum())
        logger.warning("%s: dropped %d rows of %d users absent from train (first: %s), as Elliot does",
                       at, rows, len(dropped), ", ".join(dropped[:5]))
    outside = part.items < 0
    if outside.any():
        first = list(dict.fromkeys(str(i) for i in part.item_ids[outside]))
        logger.warning("%s: %d rows name %d items absent from the train catalogue (first: %s); they count as "
                       "relevant but can never be recommended, as in Elliot", at, int(outside.sum()), len(first),
                       ", ".join(first[:5]))
    if len(part) == 0:
        cause = (f"all {len(frame)} rows are of users absent from train" if len(frame) else
                 f"the split produced none: check splitting.{label}_splitting (leave_n_out, test_ratio) or, "
                 f"with strategy fixed, data_config.{label}_path")
        raise DataError(f"{at}: no rows ({cause}); every metric would be empty and model selection arbitrary")


def check_inputs_exist(section: DataSection) -> None:
    """Stop at once, before any work, when the data files the config names are absent.

    The message names every missing path and, when the config gives ``data_config.missing_hint``,
    the command that produces them (e.g. ``elliot-visual prepare amazon ...``).
    """
    config = section.config
    candidates = {"dataset": [config.dataset_path],
                  "fixed": [config.train_path, config.validation_path, config.test_path, config.root_folder],
                  "hierarchy": [config.root_folder]}[config.strategy]
    missing = [str(p) for p in candidates if p is not None and not Path(p).exists()]
    if missing:
        hint = (f"; produce them with: {config.missing_hint}" if config.missing_hint
                else "; check data_config paths (relative paths start at the config file's folder)")
        raise FileNotFoundError(f"{section.dataset}: data missing: {', '.join(missing)}{hint}")


def read_folds(section: DataSection) -> Folds:
    """The experiment's splits as frames (Elliot's nested ``[([(train, val), ...], test), ...]``)."""
    config = section.config
    if config.strategy != "dataset":
        ignored = [key for key, value in (("prefiltering", section.prefiltering), ("splitting", section.splitting)) if value]
        if ignored:
            logger.warning("data_config.strategy %s uses its files verbatim; %s ignored as in Elliot",
                           config.strategy, " and ".join(ignored))
    if config.strategy == "dataset":
        if section.splitting is None:
            raise DataError("data_config.strategy: dataset needs a 'splitting' block with test_splitting "
                            "(e.g. strategy: temporal_hold_out, test_ratio: 0.2)")
        frame = read_interactions(config.dataset_path, config.layout, config.header, config.columns)
        frame = apply_prefilters(frame, section.prefiltering)
        if section.binarize:
            frame = binarize(frame)
        if frame.empty:
            raise DataError(f"{config.dataset_path}: no rows left after prefiltering; loosen the prefiltering steps")
        return split(frame, section.splitting, seed=section.random_seed)
    if config.strategy == "fixed":
        if config.train_path is None:
            # DVBPR's pickled .npy is read by the one module allowed to unpickle (data/dvbpr.py).
            reader = read_dvbpr_split if config.layout == "dvbpr" else \
                (lambda folder: read_split_layout(config.layout, folder))
            train, val, test = reader(config.root_folder)
        else:
            read = lambda path: read_interactions(path, config.layout, config.header, config.columns)  # noqa: E731
            train, test = read(config.train_path), read(config.test_path)
            val = None if config.validation_path is None else read(config.validation_path)
        if section.binarize:
            train, test = binarize(train), binarize(test)
            val = None if val is None else binarize(val)
        return [([(train, val)], test)]
    return read_hierarchy(config.root_folder)


def binarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Every rating set to 1 (``experiment.binarize: True``)."""
    out = frame.copy()
    out["rating"] = 1.0
    return out


def describe(data: list[list[Interactions]]) -> str:
    """A few lines: per fold, users/items/interactions of train, validation and test."""
    if not data:
        return "no data"
    lines = [f"{data[0][0].name}: {len(data)} test fold(s) x {len(data[0])} validation fold(s)"]
    for i, inner in enumerate(data):
        for j, part in enumerate(inner):
            held = [("validation", part.validation), ("test", part.test)]
            text = ", ".join(f"{label} {len(h)} rows of {len(h.user_set())} users"
                             for label, h in held if h is not None)
            lines.append(f"  fold {i}/{j}: train {part.n_users} users, {part.n_items} items, "
                         f"{part.transactions} interactions; {text}")
    return "\n".join(lines)
