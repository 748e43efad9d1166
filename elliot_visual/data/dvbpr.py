"""DVBPR's pickled datasets (Kang et al., ICDM 2017): ``AmazonFashion6ImgPartitioned.npy``,
``AmazonMenWithImgPartitioned.npy`` — the data of the DVBPR and ImgRec papers' tables.

Each file is a pickled list ``[user_train, user_validation, user_test, Item, usernum, itemnum]``:
``user_*[u]`` lists user u's reviews as dicts holding ``productid`` (the item index), one
validation and one test review per user; ``Item[i]`` holds ``imgs``, the item's JPEG bytes. The
files come from the DVBPR authors (https://github.com/kang205/DVBPR, README, "Datasets"; built from
McAuley's Amazon data, research use only): they are not redistributed with this project.

**Unpickling runs code**: a crafted ``.npy`` can execute anything on load. This module is the only
place in the package that allows it (``np.load(..., allow_pickle=True)``); read only files you
obtained from the authors. Users and items keep DVBPR's indices as ids (``"0"``, ``"1"``, ...).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from elliot_visual.data.readers import DataError, SplitFrames
from elliot_visual.storage import atomic_write, write_bytes

SOURCE = "https://github.com/kang205/DVBPR (README, 'Datasets')"
PARTS = ("user_train", "user_validation", "user_test", "Item", "usernum", "itemnum")
TIME_KEYS = ("unixReviewTime", "timestamp", "time")


@dataclass(frozen=True)
class DVBPRData:
    """The file's fixed split as frames (``user, item, rating[, timestamp]``) and the item images.

    ``images`` maps an item id to its JPEG bytes (items without an image are absent).
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    images: Mapping[str, bytes]
    n_users: int
    n_items: int

    @property
    def split(self) -> SplitFrames:
        return self.train, self.validation, self.test


def _key(record: Mapping[Any, Any], name: str) -> Any:
    """A field of a DVBPR dict whose keys are ``bytes`` (Python 2 pickles) or ``str``."""
    if name in record:
        return record[name]
    return record.get(name.encode())


def _records(part: Any, n_users: int) -> Sequence[tuple[int, Any]]:
    """(user, reviews) of a ``user_*`` part, a dict or a list indexed by user."""
    if isinstance(part, Mapping):
        return [(int(u), reviews) for u, reviews in part.items()]
    return list(enumerate(part))[:n_users] if n_users else list(enumerate(part))


def _frame(path: Path, name: str, part: Any, n_users: int, n_items: int) -> pd.DataFrame:
    users, items, stamps = [], [], []
    for user, reviews in _records(part, n_users):
        for review in reviews:
            item = _key(review, "productid") if isinstance(review, Mapping) else None
            if item is None:
                raise DataError(f"{path}: {name}[{user}] holds a review without 'productid'; "
                                f"expected DVBPR's layout {list(PARTS)}")
            if not 0 <= int(item) < n_items:
                raise DataError(f"{path}: {name}[{user}] names item {item}, outside 0..{n_items - 1} (itemnum)")
            users.append(str(user))
            items.append(str(int(item)))
            stamp = next((_key(review, k) for k in TIME_KEYS if _key(review, k) is not None), None)
            stamps.append(np.nan if stamp is None else float(stamp))
    frame = pd.DataFrame({"user": pd.Series(users, dtype=object), "item": pd.Series(items, dtype=object),
                          "rating": np.ones(len(users))})
    if stamps and not np.isnan(stamps).any():
        frame["timestamp"] = np.asarray(stamps).astype(np.int64)
    return frame


def read_dvbpr(path: str | Path) -> DVBPRData:
    """Read a DVBPR ``.npy`` (see the module docstring: it unpickles, so it can run code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DVBPR dataset {path} not found. It is not redistributable: download "
                                f"{path.name} from the DVBPR authors, {SOURCE}, and put it at {path}")
    try:
        loaded = np.load(path, allow_pickle=True, encoding="bytes")
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: not a DVBPR .npy file ({error})") from None
    parts = list(loaded.tolist() if isinstance(loaded, np.ndarray) else loaded)
    if len(parts) != len(PARTS):
        raise DataError(f"{path}: expected the {len(PARTS)} parts {list(PARTS)}, found {len(parts)}")
    user_train, user_validation, user_test, items, n_users, n_items = parts
    n_users, n_items = int(n_users), int(n_items)
    frames = [_frame(path, name, part, n_users, n_items)
              for name, part in zip(PARTS[:3], (user_train, user_validation, user_test))]
    images: dict[str, bytes] = {}
    for index, record in (items.items() if isinstance(items, Mapping) else enumerate(items)):
        blob = _key(record, "imgs") if isinstance(record, Mapping) else None
        if blob:
            images[str(int(index))] = bytes(blob)
    return DVBPRData(*frames, images=images, n_users=n_users, n_items=n_items)


def read_dvbpr_split(path: str | Path) -> SplitFrames:
    """(train, validation, test) of a DVBPR file: ``data_config: {strategy: fixed, layout: dvbpr, root_folder: X.npy}``."""
    return read_dvbpr(path).split


def write_dvbpr_dataset(data: DVBPRData, folder: str | Path, progress: bool = True) -> dict[str, Path]:
    """Write the split as Elliot TSVs (``train.tsv``, ``val.tsv``, ``test.tsv``) and every image as
    ``images/<item>.jpg`` (the file's JPEG bytes unchanged), for the extraction blocks and the
    ``Images`` loader. An image already on disk with the same size is kept, so a rerun resumes."""
    folder = Path(folder)
    out = {"train": folder / "train.tsv", "validation": folder / "val.tsv", "test": folder / "test.tsv",
           "images": folder / "images"}
    for key in ("train", "validation", "test"):
        with atomic_write(out[key]) as handle:
            getattr(data, key).to_csv(handle, sep="\t", header=False, index=False, lineterminator="\n")
    out["images"].mkdir(parents=True, exist_ok=True)
    for item, blob in tqdm(data.images.items(), desc="writing images", unit="img", disable=not progress,
                           mininterval=5.0):
        target = out["images"] / f"{item}.jpg"
        if not (target.is_file() and target.stat().st_size == len(blob)):
            write_bytes(target, blob)
    return out
