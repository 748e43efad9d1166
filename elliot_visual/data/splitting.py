"""Elliot's splitting strategies, the nested train/validation/test structure, and the saved split layout.

``test_splitting`` divides the whole frame into (train, test) pairs; ``validation_splitting``, when
given, divides every such train part again into (train, validation) pairs. The result is Elliot's
nesting: ``[([(train, val), ...], test), ...]`` — outer test folds, inner validation folds — here
with ``val = None`` when there is no validation split.

Deterministic strategies (``temporal_hold_out``, ``fixed_timestamp``, ``random_cross_validation``,
which despite its name is a round-robin) give exactly Elliot's rows in Elliot's order. Random ones
(``random_subsampling``) draw from ``np.random.default_rng(seed)``, one Generator for the whole split
as Elliot seeds NumPy once; they draw the same *distribution* of splits as Elliot, but not the same
rows, because Elliot shuffles with the legacy global ``np.random`` state.

``save_on_disk`` writes Elliot's layout, which ``data_config.strategy: hierarchy`` reads back:
``<folder>/<i>/test.tsv`` and ``<folder>/<i>/train.tsv`` or ``<folder>/<i>/<j>/{train,val}.tsv``.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from elliot_visual.data.readers import DataError, read_tsv
from elliot_visual.data.strategy_options import StrategyOptionError, as_count, as_ratio, call_strategy
from elliot_visual.registry import SPLITTERS
from elliot_visual.storage import atomic_write

if TYPE_CHECKING:
    from elliot_visual.config.schema import SplitSpec, Splitting

logger = logging.getLogger(__name__)

Pairs = list[tuple[pd.DataFrame, pd.DataFrame]]
# Outer test folds; each holds its inner (train, validation or None) folds and the test frame.
Folds = list[tuple[list[tuple[pd.DataFrame, pd.DataFrame | None]], pd.DataFrame]]


def split(frame: pd.DataFrame, splitting: Splitting, seed: int = 42) -> Folds:
    """Split ``frame`` as the ``splitting`` block says (and save it when ``save_on_disk``).

    ``splitting`` is a ``schema.Splitting``; ``seed`` is ``experiment.random_seed`` and seeds every
    random draw of the whole split.
    """
    rng = np.random.default_rng(seed)
    outer = split_once(frame, splitting.test_splitting, rng, "splitting.test_splitting")
    if splitting.validation_splitting is None:
        folds: Folds = [([(train, None)], test) for train, test in outer]
    else:
        folds = [(split_once(train, splitting.validation_splitting, rng, "splitting.validation_splitting"), test)
                 for train, test in outer]
    for i, (inner, test) in enumerate(folds):
        for j, (train, val) in enumerate(inner):
            logger.info("split fold %d/%d: train %d rows, validation %s rows, test %d rows",
                        i, j, len(train), "no" if val is None else len(val), len(test))
    if splitting.save_on_disk:
        save_splits(folds, Path(splitting.save_folder))
    return folds


def split_once(frame: pd.DataFrame, spec: SplitSpec | dict[str, Any], rng: np.random.Generator,
               where: str = "splitting") -> Pairs:
    """One level of splitting: ``spec`` (``strategy`` + options) applied to ``frame`` -> [(train, test), ...]."""
    if isinstance(spec, dict):
        options = dict(spec)
        name = options.pop("strategy", None)
    else:
        name = getattr(spec, "strategy", None)
        options = dict(getattr(spec, "model_extra", None) or {})
    if not name:
        raise StrategyOptionError(f"{where}: no 'strategy' given; known strategies: {', '.join(SPLITTERS.names())}")
    func = SPLITTERS.get(str(name))
    return call_strategy(where, str(name), func, (frame.reset_index(drop=True), rng), options)


@SPLITTERS.register("temporal_hold_out")
def temporal_hold_out(frame: pd.DataFrame, rng: np.random.Generator, *, test_ratio: float | None = None,
                      leave_n_out: int | None = None) -> Pairs:
    """Per user, the latest rows go to test.

    ``test_ratio`` r: rows ranked by timestamp ascending (ties by row order), the first
    ``floor(n * (1 - r))`` stay in train — so the later of two tied rows goes to test, and a
    one-row user goes wholly to test. ``leave_n_out`` n: rows ranked by timestamp descending
    (ties: the *earlier* row ranks first), ranks <= n go to test; users with <= n rows go wholly
    to test. Both follow Elliot's ``rank(method='first')``. ``test_ratio`` wins if both are given.
    """
    _need_timestamps(frame, "temporal_hold_out")
    if test_ratio is not None:
        if leave_n_out is not None:
            logger.warning("temporal_hold_out: both test_ratio and leave_n_out given; using test_ratio as Elliot does")
        ratio = as_ratio("temporal_hold_out", "test_ratio", test_ratio)
        sizes = frame.groupby("user")["user"].transform("size").to_numpy()
        keep = np.floor(sizes * (1 - ratio))
        rank = frame.groupby("user")["timestamp"].rank(method="first", ascending=True).to_numpy()
        return [_split_with_mask(frame, rank > keep)]
    if leave_n_out is not None:
        n = as_count("temporal_hold_out", "leave_n_out", leave_n_out)
        rank = frame.groupby("user")["timestamp"].rank(method="first", ascending=False).to_numpy()
        return [_split_with_mask(frame, rank <= n)]
    raise StrategyOptionError("strategy 'temporal_hold_out' needs option 'test_ratio' or 'leave_n_out'")


@SPLITTERS.register("random_subsampling")
def random_subsampling(frame: pd.DataFrame, rng: np.random.Generator, *, folds: int = 1,
                       test_ratio: float | None = None, leave_n_out: int | None = None) -> Pairs:
    """``folds`` independent draws; each sends a random subset of every user's rows to test.

    With ``test_ratio`` r the subset has ``n - floor(n * (1 - r))`` rows, with ``leave_n_out`` n
    rows (a user with fewer than n rows is an error). Rows keep their order in both parts.
    """
    folds = as_count("random_subsampling", "folds", folds)
    if folds < 1:
        raise StrategyOptionError("strategy 'random_subsampling': option 'folds' must be at least 1")
    sizes = frame.groupby("user")["user"].transform("size").to_numpy()
    if test_ratio is not None:
        ratio = as_ratio("random_subsampling", "test_ratio", test_ratio)
        n_test = sizes - np.floor(sizes * (1 - ratio)).astype(np.int64)
    elif leave_n_out is not None:
        n = as_count("random_subsampling", "leave_n_out", leave_n_out)
        short = sizes < n
        if short.any():
            user = frame["user"].to_numpy()[np.flatnonzero(short)[0]]
            raise DataError(f"random_subsampling: leave_n_out={n} but user {user!r} has only "
                            f"{int(sizes[np.flatnonzero(short)[0]])} rows; lower leave_n_out or prefilter with "
                            f"user_k_core")
        n_test = np.full(len(frame), n, dtype=np.int64)
    else:
        raise StrategyOptionError("strategy 'random_subsampling' needs option 'test_ratio' or 'leave_n_out'")
    user_codes = pd.factorize(frame["user"])[0]
    pairs = []
    for _ in range(folds):
        # A uniformly random subset of size n_test per user: the rows whose random key ranks lowest.
        keys = rng.random(len(frame))
        order = np.lexsort((keys, user_codes))
        rank = np.empty(len(frame), dtype=np.int64)
        starts = np.r_[0, np.flatnonzero(np.diff(user_codes[order])) + 1]
        group_start = np.repeat(starts, np.diff(np.r_[starts, len(frame)]))
        rank[order] = np.arange(len(frame)) - group_start
        pairs.append(_split_with_mask(frame, rank < n_test))
    return pairs


@SPLITTERS.register("random_users")
def random_users(frame: pd.DataFrame, rng: np.random.Generator, *, test_ratio: float) -> Pairs:
    """Whole users to test: a uniform random ``test_ratio`` share of the users (rounded down, at
    least one), with every row of theirs; the other users keep all their rows in train.

    A user-level split for tasks that predict from a user's whole item set (the multilabel task):
    the held-out users have no train rows and stay in the split (``Interactions.from_frames``
    with ``keep_held_out_users``), where Elliot's item-level splits drop such users.
    """
    ratio = as_ratio("random_users", "test_ratio", test_ratio)
    users = pd.unique(frame["user"])
    if len(users) < 2:
        raise DataError(f"random_users: {len(users)} user(s); a user-level split needs at least two")
    n_test = min(len(users) - 1, max(1, int(np.floor(len(users) * ratio))))
    chosen = set(users[rng.permutation(len(users))[:n_test]].tolist())
    return [_split_with_mask(frame, frame["user"].isin(chosen).to_numpy())]


USER_LEVEL_SPLITTERS = ("random_users",)


def holds_out_users(splitting: "Splitting | None") -> bool:
    """Whether a split sends whole users to its held-out parts (they must then stay in the split)."""
    if splitting is None:
        return False
    specs = [splitting.test_splitting, splitting.validation_splitting]
    return any(spec is not None and spec.strategy in USER_LEVEL_SPLITTERS for spec in specs)


@SPLITTERS.register("random_cross_validation")
def random_cross_validation(frame: pd.DataFrame, rng: np.random.Generator, *, folds: int) -> Pairs:
    """``folds`` (train, test) pairs: each user's rows are dealt to folds round-robin in row order.

    Elliot's strategy of this name does not shuffle: a user's 1st row is in fold 0, 2nd in fold 1,
    ... (shuffle the file beforehand for a random assignment). Fold f is the test part of pair f.
    """
    folds = as_count("random_cross_validation", "folds", folds)
    if folds < 2:
        raise StrategyOptionError("strategy 'random_cross_validation': option 'folds' must be at least 2")
    fold_of_row = frame.groupby("user").cumcount().to_numpy() % folds
    return [_split_with_mask(frame, fold_of_row == f) for f in range(folds)]


@SPLITTERS.register("fixed_timestamp")
def fixed_timestamp(frame: pd.DataFrame, rng: np.random.Generator, *, timestamp: int | str,
                    min_below: int = 1, min_over: int = 1) -> Pairs:
    """Rows with ``timestamp >= t`` go to test.

    ``timestamp: best`` picks t among the data's timestamps: the one maximising the number of
    users with at least ``min_below`` rows before t and ``min_over`` rows at or after t; the
    latest such t on ties (Elliot's choice).
    """
    _need_timestamps(frame, "fixed_timestamp")
    if timestamp == "best":
        cut = best_timestamp(frame, as_count("fixed_timestamp", "min_below", min_below),
                             as_count("fixed_timestamp", "min_over", min_over))
        logger.info("fixed_timestamp: best timestamp %s", cut)
    else:
        cut = as_count("fixed_timestamp", "timestamp", timestamp)
    return [_split_with_mask(frame, frame["timestamp"].to_numpy() >= cut)]


def best_timestamp(frame: pd.DataFrame, min_below: int = 1, min_over: int = 1) -> Any:
    """The split time that leaves the most users with ``min_below`` rows before it and ``min_over`` after.

    A user with sorted times s_1 <= ... <= s_n counts for t iff s_{min_below} < t <= s_{n-min_over+1}
    (a bound vanishes when its minimum is 0), so each user votes for an interval and the score of
    every candidate t is two binary searches, not a loop over users.
    """
    ordered = frame[["user", "timestamp"]].sort_values(["user", "timestamp"], kind="stable")
    times = ordered["timestamp"].to_numpy()
    sizes = ordered.groupby("user", sort=False)["user"].size().to_numpy()
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    ok = sizes >= min_below + min_over
    lower = np.where(min_below > 0, times[np.minimum(starts + min_below - 1, len(times) - 1)], -np.inf)[ok]
    upper = np.where(min_over > 0, times[np.clip(starts + sizes - min_over, 0, len(times) - 1)], np.inf)[ok]
    candidates = pd.unique(frame["timestamp"])
    score = (np.searchsorted(np.sort(lower), candidates, side="left")
             - np.searchsorted(np.sort(upper), candidates, side="left"))
    if score.max(initial=0) == 0:
        logger.warning("fixed_timestamp best: no timestamp leaves any user with %d rows before and %d after; "
                       "using the latest timestamp as Elliot does", min_below, min_over)
    best = candidates[score == score.max()].max()
    return best.item() if hasattr(best, "item") else best


def _split_with_mask(frame: pd.DataFrame, test_mask: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows where the mask is False, rows where it is True), each in the frame's row order."""
    test_mask = np.asarray(test_mask, dtype=bool)
    return frame[~test_mask].reset_index(drop=True), frame[test_mask].reset_index(drop=True)


def _need_timestamps(frame: pd.DataFrame, strategy: str) -> None:
    if "timestamp" not in frame:
        raise DataError(f"splitting strategy '{strategy}' needs a timestamp column, but the data have none "
                        f"(4th column of Elliot's TSV); use random_subsampling or random_cross_validation")


def save_splits(folds: Folds, folder: Path) -> Path:
    """Write ``folds`` in Elliot's layout under ``folder``, replacing a previous split there.

    Files are headerless TSVs with the frame's columns. The new split is written to a temporary
    sibling folder (each file atomically) and swapped in at the end, so a crash leaves either the
    old split or the new one. Elliot wipes ``save_folder`` blindly; here an existing folder is
    replaced only when it holds nothing but a saved split, so a mistyped path cannot delete data.
    """
    folder = Path(folder)
    if folder.exists() and not _is_split_folder(folder):
        raise DataError(f"splitting.save_folder {folder} exists and holds files that are not a saved split; "
                        f"point save_folder at an empty or new folder (it is replaced on every run)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the split is an ordinary shared folder
        for i, (inner, test) in enumerate(folds):
            _write_tsv(staging / str(i) / "test.tsv", test)
            if len(inner) == 1 and inner[0][1] is None:
                _write_tsv(staging / str(i) / "train.tsv", inner[0][0])
                continue
            for j, (train, val) in enumerate(inner):
                if val is None:
                    raise DataError(f"fold {i}/{j} has no validation part although its siblings do")
                _write_tsv(staging / str(i) / str(j) / "train.tsv", train)
                _write_tsv(staging / str(i) / str(j) / "val.tsv", val)
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
        os.replace(staging, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("split saved under %s", folder)
    return folder


def read_hierarchy(folder: str | Path) -> Folds:
    """Read a split saved by :func:`save_splits` (Elliot's ``strategy: hierarchy``), folds in numeric order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data_config.root_folder {folder}: folder not found")
    outer = _numbered_dirs(folder)
    if not outer:
        raise DataError(f"data_config.root_folder {folder}: no numbered fold folders (0/, 1/, ...) with test.tsv")
    folds: Folds = []
    for test_dir in outer:
        test = read_tsv(_required(test_dir / "test.tsv"))
        inner_dirs = _numbered_dirs(test_dir)
        if inner_dirs:
            inner = [(read_tsv(_required(d / "train.tsv")), read_tsv(_required(d / "val.tsv"))) for d in inner_dirs]
        else:
            inner = [(read_tsv(_required(test_dir / "train.tsv")), None)]
        folds.append((inner, test))
    return folds


def _write_tsv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_write(path, "w") as handle:
        _as_read(frame).to_csv(handle, sep="\t", header=False, index=False, lineterminator="\n")


def _as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """Ratings written as Elliot writes them: ``2`` when every rating is a whole number (pandas read
    the column as integers), else as floats (``4.5``, and ``2.0`` beside them), so the saved split is
    byte-identical to Elliot's. Readers hold ratings as float64, which would print ``2.0``."""
    if "rating" not in frame or not pd.api.types.is_float_dtype(frame["rating"]):
        return frame
    ratings = frame["rating"].to_numpy()
    if np.isfinite(ratings).all() and (ratings == np.round(ratings)).all():
        return frame.assign(rating=ratings.astype(np.int64))
    return frame


def _numbered_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def _required(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: file missing from the saved split")
    return path


def _is_split_folder(folder: Path) -> bool:
    """True for an empty folder or one holding only numbered folders of train/val/test TSVs."""
    if not folder.is_dir():
        return False
    for root, dirs, files in os.walk(folder):
        relative = Path(root).relative_to(folder)
        if any(not part.isdigit() for part in relative.parts):
            return False
        if relative == Path(".") and files:
            return False
        if any(f not in ("train.tsv", "val.tsv", "test.tsv") for f in files):
            return False
        if len(relative.parts) >= 2 and dirs:
            return False
    return True
