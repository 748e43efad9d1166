"""Interactions: the data contract every later layer reads.

Public ids (strings, exactly as read) map to dense indices for users and items. The train part is
a CSR matrix of ratings; validation and test are :class:`HeldOut` row sets. Users come from the
train part (Elliot drops held-out users that have no train rows). Held-out items outside the item
catalogue keep index ``-1``: they still count as relevant (they lower Recall as in Elliot) but can
never be recommended. The catalogue is the train items, optionally extended with items that have
side information (cold items), see :meth:`Interactions.with_items`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

COLUMNS = ("user", "item", "rating", "timestamp")


@dataclass(frozen=True)
class HeldOut:
    """Held-out rows (validation or test): ``users`` dense indices, ``items`` dense or -1, public ``item_ids``."""

    users: np.ndarray
    items: np.ndarray
    item_ids: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def user_set(self) -> np.ndarray:
        """Dense indices of users with at least one held-out row, ascending."""
        return np.unique(self.users)

    def relevance(self, n_users: int, n_items: int, threshold: float) -> sp.csr_matrix:
        """(n_users, n_items) CSR of ratings of relevant in-catalogue items (rating >= threshold)."""
        keep = (self.ratings >= threshold) & (self.items >= 0)
        return sp.csr_matrix((self.ratings[keep].astype(np.float64), (self.users[keep], self.items[keep])),
                             shape=(n_users, n_items))

    def n_relevant(self, n_users: int, threshold: float) -> np.ndarray:
        """(n_users,) count of relevant held-out items per user, items outside the catalogue included."""
        keep = self.ratings >= threshold
        return np.bincount(self.users[keep], minlength=n_users)


@dataclass
class Interactions:
    """One train/validation/test split of a dataset, indexed densely (see the module docstring)."""

    name: str
    user_ids: np.ndarray
    item_ids: np.ndarray
    train: sp.csr_matrix
    test: HeldOut
    validation: HeldOut | None = None
    train_timestamps: sp.csr_matrix | None = None
    train_frame: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(COLUMNS)))

    @property
    def n_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])

    @property
    def transactions(self) -> int:
        """Number of distinct train (user, item) pairs, Elliot's ``data.transactions``."""
        return int(self.train.nnz)

    @cached_property
    def user_index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.user_ids)}

    @cached_property
    def item_index(self) -> dict[str, int]:
        return {it: i for i, it in enumerate(self.item_ids)}

    @cached_property
    def train_binary(self) -> sp.csr_matrix:
        """(n_users, n_items) float32 CSR of ones for every train pair."""
        m = self.train.copy().astype(np.float32)
        m.data[:] = 1.0
        return m

    @cached_property
    def item_popularity(self) -> np.ndarray:
        """(n_items,) number of train users who interacted with each item."""
        return np.asarray(self.train_binary.sum(axis=0)).ravel().astype(np.int64)

    @cached_property
    def train_item_mask(self) -> np.ndarray:
        """(n_items,) True for items with at least one train interaction (False for cold items)."""
        return self.item_popularity > 0

    @property
    def keeps_held_out_users(self) -> bool:
        """Whether some users have no train rows (a user-level split kept them)."""
        return bool((np.diff(self.train.indptr) == 0).any())

    def user_positives(self, user: int) -> np.ndarray:
        """Dense item indices of ``user``'s train items."""
        return self.train.indices[self.train.indptr[user]:self.train.indptr[user + 1]]

    @classmethod
    def from_frames(cls, name: str, train: pd.DataFrame, test: pd.DataFrame,
                    validation: pd.DataFrame | None = None,
                    extra_items: list[str] | np.ndarray | None = None,
                    keep_held_out_users: bool = False) -> "Interactions":
        """Index the frames (columns user, item, rating[, timestamp], ids as strings).

        Users and items are numbered in order of first appearance in ``train``; ``extra_items``
        (e.g. items with features but no train rows) are appended to the catalogue. Duplicate
        (user, item) rows keep the last one, as Elliot's dict-based loader does. Held-out users
        without train rows are dropped, as in Elliot, unless ``keep_held_out_users`` (a user-level
        split): then they are appended after the train users, with empty train rows.
        """
        train = _normalise(train)
        user_ids = pd.unique(train["user"]).astype(object)
        if keep_held_out_users:
            held = [_normalise(f)["user"] for f in (validation, test) if f is not None]
            known = set(user_ids)
            new = [u for u in pd.unique(pd.concat(held)) if u not in known] if held else []
            user_ids = np.concatenate([user_ids, np.asarray(new, dtype=object)]).astype(object)
        item_ids = pd.unique(train["item"]).astype(object)
        if extra_items is not None and len(extra_items):
            known = set(item_ids)
            extra = [str(i) for i in pd.unique(np.asarray(extra_items, dtype=object).astype(str)) if str(i) not in known]
            item_ids = np.concatenate([item_ids, np.asarray(extra, dtype=object)])
        user_index = {u: i for i, u in enumerate(user_ids)}
        item_index = {it: i for i, it in enumerate(item_ids)}
        dedup = train.drop_duplicates(["user", "item"], keep="last")
        rows = dedup["user"].map(user_index).to_numpy(np.int64)
        cols = dedup["item"].map(item_index).to_numpy(np.int64)
        shape = (len(user_ids), len(item_ids))
        matrix = sp.csr_matrix((dedup["rating"].to_numpy(np.float32), (rows, cols)), shape=shape)
        matrix.sort_indices()
        stamps = None
        if "timestamp" in dedup and dedup["timestamp"].notna().all():
            stamps = sp.csr_matrix((dedup["timestamp"].to_numpy(np.float64), (rows, cols)), shape=shape)
            stamps.sort_indices()
        return cls(name=name, user_ids=user_ids, item_ids=item_ids, train=matrix,
                   test=_held_out(test, user_index, item_index),
                   validation=None if validation is None else _held_out(validation, user_index, item_index),
                   train_timestamps=stamps, train_frame=train.reset_index(drop=True))

    def with_items(self, extra_items: list[str] | np.ndarray) -> "Interactions":
        """The same split with ``extra_items`` appended to the catalogue (cold items become rankable)."""
        frames = self._held_out_frames()
        return Interactions.from_frames(self.name, self.train_frame, frames["test"], frames.get("validation"),
                                        extra_items=np.concatenate([self.item_ids[~self.train_item_mask],
                                                                    np.asarray(extra_items, dtype=object)]),
                                        keep_held_out_users=self.keeps_held_out_users)

    def without_items(self, drop_items: list[str] | np.ndarray) -> "Interactions":
        """The same split with every row of ``drop_items`` removed (train and held-out alike)."""
        drop = set(np.asarray(drop_items, dtype=object).astype(str))
        frames = self._held_out_frames()
        keep = lambda df: None if df is None else df[~df["item"].isin(drop)]  # noqa: E731
        cold = [i for i in self.item_ids[~self.train_item_mask] if i not in drop]
        return Interactions.from_frames(self.name, keep(self.train_frame), keep(frames["test"]),
                                        keep(frames.get("validation")), extra_items=cold,
                                        keep_held_out_users=self.keeps_held_out_users)

    def _held_out_frames(self) -> dict[str, pd.DataFrame]:
        out = {}
        for key, part in (("test", self.test), ("validation", self.validation)):
            if part is None:
                continue
            frame = pd.DataFrame({"user": self.user_ids[part.users], "item": part.item_ids,
                                  "rating": part.ratings})
            if part.timestamps is not None:
                frame["timestamp"] = part.timestamps
            out[key] = frame
        return out

    def with_name(self, name: str) -> "Interactions":
        return replace(self, name=name)


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Ids as strings, ratings as float; keeps a timestamp column when present."""
    out = frame.copy()
    out["user"] = out["user"].astype(str)
    out["item"] = out["item"].astype(str)
    out["rating"] = out["rating"].astype(np.float64) if "rating" in out else 1.0
    return out


def _held_out(frame: pd.DataFrame, user_index: dict[str, int], item_index: dict[str, int]) -> HeldOut:
    """Held-out rows of train users only (Elliot builds test dicts over train users); last duplicate wins."""
    frame = _normalise(frame).drop_duplicates(["user", "item"], keep="last")
    frame = frame[frame["user"].isin(user_index.keys())]
    users = frame["user"].map(user_index).to_numpy(np.int64)
    items = frame["item"].map(item_index).fillna(-1).to_numpy(np.int64)
    stamps = frame["timestamp"].to_numpy(np.float64) if "timestamp" in frame and frame["timestamp"].notna().all() else None
    return HeldOut(users=users, items=items, item_ids=frame["item"].to_numpy(object),
                   ratings=frame["rating"].to_numpy(np.float64), timestamps=stamps)
