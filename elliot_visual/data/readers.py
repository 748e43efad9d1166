"""Readers for the interaction files the project meets, returned as frames of ``user, item, rating[, timestamp]``.

* Elliot's headerless TSV ``user \\t item \\t rating [\\t timestamp]`` (:func:`read_tsv`);
* MMRec / LATTICE splits: ``train.json``/``val.json``/``test.json`` = ``{"userIdx": [itemIdx, ...]}``
  with ``user2id.json``/``item2id.json`` mapping back to public ids, or MMRec's ``<name>.inter``
  (:func:`read_mmrec_split`);
* Cornac's ``user item rating [timestamp]`` text files, tab, comma or blank separated
  (:func:`read_cornac`, :func:`read_cornac_split`);
* the Ducho benchmark: ``reviews.tsv`` plus ``train/val/test.tsv``, 3-column Elliot TSV (:func:`read_ducho_split`).

Ids stay strings exactly as written (``"007"`` stays ``"007"``), ratings are float, timestamps are
int64 when every value is integral. pandas' C parser reads the file; only when it fails (or
leaves a hole) is the file scanned line by line to name the first bad line in a
:class:`DataError`, so a million-row file costs one fast parse.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ("user", "item", "rating", "timestamp")
SplitFrames = tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame]


class DataError(ValueError):
    """A data file that cannot be read as it should; the message names the file and the line."""


def read_tsv(path: str | Path, header: bool = False, columns: list[str] | None = None) -> pd.DataFrame:
    """Read Elliot's ``user \\t item \\t rating [\\t timestamp]`` file.

    ``header`` skips a first header line (Elliot's files have none). ``columns`` names the file's
    columns in order when they are not Elliot's (e.g. ``[item, user, timestamp]``); it must contain
    ``user`` and ``item``, and names other than the four canonical ones are read and dropped.
    A 2-column file gets rating 1.0; an all-empty timestamp column is dropped (as Elliot does).
    """
    return _read_delimited(Path(path), "\t", header, columns)


def read_cornac(path: str | Path, sep: str | None = None, header: bool = False,
                columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Cornac ``user item [rating [timestamp]]`` file; ``sep`` is sniffed (tab, comma, blanks) if None."""
    path = Path(path)
    return _read_delimited(path, sep or _sniff_separator(path, header), header, columns)


def read_ducho_split(folder: str | Path) -> SplitFrames:
    """(train, validation, test) of a Ducho benchmark folder (``train.tsv``, ``val.tsv``, ``test.tsv``)."""
    folder = Path(folder)
    return (read_tsv(_existing(folder, "train.tsv")), read_tsv(_existing(folder, "val.tsv")),
            read_tsv(_existing(folder, "test.tsv")))


def read_ducho_reviews(folder: str | Path) -> pd.DataFrame:
    """Every review of a Ducho benchmark folder (``reviews.tsv``), e.g. to re-split it."""
    return read_tsv(_existing(Path(folder), "reviews.tsv"))


def read_elliot_split(folder: str | Path) -> SplitFrames:
    """(train, validation or None, test) of a folder of Elliot TSVs, named
    ``trainingset/validationset/testset.tsv`` (Elliot's fixed-split examples) or ``train/val/test.tsv``."""
    folder = Path(folder)
    for train_name, val_name, test_name in (("trainingset.tsv", "validationset.tsv", "testset.tsv"),
                                            ("train.tsv", "val.tsv", "test.tsv")):
        if (folder / train_name).is_file():
            val = folder / val_name
            return (read_tsv(folder / train_name), read_tsv(val) if val.is_file() else None,
                    read_tsv(_existing(folder, test_name)))
    raise DataError(f"{folder}: no trainingset.tsv or train.tsv found; expected Elliot's fixed split files")


def read_cornac_split(folder: str | Path) -> SplitFrames:
    """(train, validation or None, test) of a folder holding Cornac files named
    ``train.*``, ``test.*`` and optionally ``val.*``/``validation.*`` (any extension)."""
    folder = Path(folder)
    train = _find_one(folder, ("train",))
    test = _find_one(folder, ("test",))
    val = _find_one(folder, ("val", "valid", "validation"), required=False)
    return read_cornac(train), None if val is None else read_cornac(val), read_cornac(test)


def read_mmrec_split(folder: str | Path) -> SplitFrames:
    """(train, validation, test) of an MMRec / LATTICE folder, with public ids where a map exists.

    LATTICE style: ``train.json``, ``val.json``, ``test.json`` ``{"userIdx": [itemIdx, ...]}``;
    ``user2id.json`` and ``item2id.json`` (``{public_id: idx}``, in this folder or its parent)
    map indices back to reviewer ids and ASINs. MMRec style: one ``<name>.inter`` TSV with header
    ``userID itemID [rating] [timestamp] x_label`` (0 train, 1 validation, 2 test), mapped back
    with ``u_id_mapping.csv``/``i_id_mapping.csv``. Ratings are 1.0 when the file carries none.
    """
    folder = Path(folder)
    if (folder / "train.json").is_file():
        users = _json_id_map(folder, "user2id.json")
        items = _json_id_map(folder, "item2id.json")
        return (read_mmrec_json(folder / "train.json", users, items),
                read_mmrec_json(_existing(folder, "val.json"), users, items),
                read_mmrec_json(_existing(folder, "test.json"), users, items))
    inter = sorted(folder.glob("*.inter"))
    if len(inter) == 1:
        frame = read_mmrec_inter(inter[0])
        if "x_label" not in frame:
            raise DataError(f"{inter[0]}: no x_label column, so it holds no train/validation/test split")
        parts = [frame[frame["x_label"] == label].drop(columns="x_label").reset_index(drop=True)
                 for label in (0, 1, 2)]
        return parts[0], parts[1], parts[2]
    raise DataError(f"{folder}: expected MMRec split files (train.json, val.json, test.json) "
                    f"or exactly one <name>.inter file; found {len(inter)} .inter files")


def read_mmrec_json(path: str | Path, users: dict[str, str] | None = None,
                    items: dict[str, str] | None = None) -> pd.DataFrame:
    """One LATTICE split file ``{"userIdx": [itemIdx, ...]}`` as rows (rating 1.0), in file order.

    ``users``/``items`` map the file's indices (as strings) to public ids; an index missing from
    a given map is an error, since it means the map belongs to another dataset.
    """
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: expected an object {{\"userIdx\": [itemIdx, ...]}}, got {type(content).__name__}")
    user_col, item_col = [], []
    for user, item_list in content.items():
        if not isinstance(item_list, list):
            raise DataError(f"{path}: user {user!r} maps to {type(item_list).__name__}, "
                            f"expected a list of item indices")
        user_col.extend([str(user)] * len(item_list))
        item_col.extend(str(i) for i in item_list)
    frame = pd.DataFrame({"user": pd.Series(user_col, dtype=object), "item": pd.Series(item_col, dtype=object),
                          "rating": np.ones(len(user_col))})
    frame["user"] = _map_ids(frame["user"], users, path, "user", "user2id.json")
    frame["item"] = _map_ids(frame["item"], items, path, "item", "item2id.json")
    return frame


def read_mmrec_inter(path: str | Path) -> pd.DataFrame:
    """MMRec's ``<name>.inter`` (TSV with header ``userID itemID [rating] [timestamp] [x_label]``).

    Ids are mapped back to public ones with ``u_id_mapping.csv`` / ``i_id_mapping.csv`` (MMRec's
    ``user_id userID`` and ``asin itemID`` tables) when they lie beside the file.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    except (pd.errors.ParserError, ValueError) as err:
        raise DataError(f"{path}: cannot read MMRec .inter file: {err}") from None
    names = {"userID": "user", "itemID": "item", "rating": "rating", "timestamp": "timestamp", "x_label": "x_label"}
    missing = [k for k in ("userID", "itemID") if k not in raw.columns]
    if missing:
        raise DataError(f"{path}: header lacks {', '.join(missing)}; MMRec .inter files start "
                        f"with 'userID\\titemID\\t...' (found: {', '.join(raw.columns)})")
    frame = raw[[c for c in raw.columns if c in names]].rename(columns=names)
    for column in ("rating", "timestamp", "x_label"):
        if column in frame:
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = np.flatnonzero(values.isna().to_numpy())
            if bad.size:
                # header is line 1, so data row r sits on line r + 2
                raise DataError(f"{path}, line {bad[0] + 2}: {column} {frame[column].iloc[bad[0]]!r} is not a number")
            frame[column] = values
    frame["rating"] = frame["rating"].astype(np.float64) if "rating" in frame else 1.0
    if "timestamp" in frame:
        frame["timestamp"] = _integral_or_float(frame["timestamp"])
    if "x_label" in frame:
        frame["x_label"] = frame["x_label"].astype(np.int64)
    frame["user"] = _map_ids(frame["user"], _csv_id_map(path.parent, "u_id_mapping.csv"), path, "user",
                             "u_id_mapping.csv")
    frame["item"] = _map_ids(frame["item"], _csv_id_map(path.parent, "i_id_mapping.csv"), path, "item",
                             "i_id_mapping.csv")
    return frame[[c for c in (*COLUMNS, "x_label") if c in frame]]


# Layouts holding a fixed train/validation/test split, by the ``data_config.layout`` name.
SPLIT_LAYOUTS: dict[str, Callable[[str | Path], SplitFrames]] = {
    "elliot": read_elliot_split,
    "mmrec": read_mmrec_split,
    "cornac": read_cornac_split,
    "ducho": read_ducho_split,
}


def read_split_layout(layout: str, folder: str | Path) -> SplitFrames:
    """(train, validation or None, test) of ``folder`` read in ``layout`` (a :data:`SPLIT_LAYOUTS` key)."""
    try:
        reader = SPLIT_LAYOUTS[layout]
    except KeyError:
        raise DataError(f"unknown data_config.layout '{layout}'; known layouts: {', '.join(SPLIT_LAYOUTS)}") from None
    return reader(folder)


def read_interactions(path: str | Path, layout: str = "elliot", header: bool = False,
                      columns: list[str] | None = None) -> pd.DataFrame:
    """One file of interactions in ``layout``: Elliot/Ducho TSV, Cornac text, or an MMRec ``.inter``/``.json``."""
    path = Path(path)
    if layout in ("elliot", "ducho"):
        return read_tsv(path, header=header, columns=columns)
    if layout == "cornac":
        return read_cornac(path, header=header, columns=columns)
    if layout == "mmrec":
        if path.suffix == ".json":
            return read_mmrec_json(path, _json_id_map(path.parent, "user2id.json"),
                                   _json_id_map(path.parent, "item2id.json"))
        return read_mmrec_inter(path).drop(columns="x_label", errors="ignore")
    raise DataError(f"unknown data_config.layout '{layout}'; known layouts: {', '.join(SPLIT_LAYOUTS)}")


def _read_delimited(path: Path, sep: str, header: bool, columns: list[str] | None) -> pd.DataFrame:
    """The shared fast path: C parser with typed columns, then a line scan only if something is wrong."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a file of interactions; point the data_config path at the file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return _read_delimited_text(path, sep, header, columns)
    except UnicodeDecodeError:
        raise undecodable_line(path) from None


def undecodable_line(path: Path) -> DataError:
    """The first line of ``path`` that is not UTF-8, by number (a binary or mis-encoded file)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                return DataError(f"{path}, line {number}: byte {raw[error.start:error.start + 1]!r} at column "
                                 f"{error.start + 1} is not UTF-8; re-save the file as UTF-8 (or is it binary?)")
    return DataError(f"{path}: not UTF-8 text")


def _read_delimited_text(path: Path, sep: str, header: bool, columns: list[str] | None) -> pd.DataFrame:
    first = _first_data_line(path, header)
    if first is None:
        raise DataError(f"{path}: no data rows")
    n_fields = len(_split_line(first[1], sep))
    names = _column_names(path, n_fields, columns)
    if "user" not in names or "item" not in names:
        raise DataError(f"{path}: line {first[0]} has {n_fields} field(s); need at least user and item")
    numeric = [c for c in ("rating", "timestamp") if c in names]
    try:
        frame = pd.read_csv(
            path, sep=sep, header=None, names=names, skiprows=1 if header else 0, engine="c",
            dtype={name: (np.float64 if name in numeric else str) for name in names},
            keep_default_na=False, na_values={c: [""] for c in numeric}, quoting=csv.QUOTE_NONE,
            skip_blank_lines=True, skipinitialspace=sep != "\t")
    except (pd.errors.ParserError, ValueError) as err:
        raise _locate_bad_line(path, sep, header, names, numeric, str(err)) from None
    holes = frame["user"].isna() | frame["item"].isna() | (frame["user"] == "") | (frame["item"] == "")
    if "rating" in frame and not frame["rating"].isna().all():
        holes |= frame["rating"].isna()
    if "timestamp" in frame and not frame["timestamp"].isna().all():
        holes |= frame["timestamp"].isna()
    if holes.any():
        raise _locate_bad_line(path, sep, header, names, numeric, "a row has an empty or missing field")
    frame = frame[[c for c in COLUMNS if c in frame]]
    frame["user"] = frame["user"].astype(object)
    frame["item"] = frame["item"].astype(object)
    # Elliot sets every rating to 1 when the rating column is absent or empty.
    frame["rating"] = 1.0 if "rating" not in frame or frame["rating"].isna().all() else frame["rating"]
    if "timestamp" in frame:
        if frame["timestamp"].isna().all():
            frame = frame.drop(columns="timestamp")
        else:
            frame["timestamp"] = _integral_or_float(frame["timestamp"])
    return frame.reset_index(drop=True)


def _column_names(path: Path, n_fields: int, columns: list[str] | None) -> list[str]:
    if columns is None:
        if n_fields < 2 or n_fields > 4:
            raise DataError(f"{path}: {n_fields} column(s) per row; Elliot's layout is "
                            f"user, item[, rating[, timestamp]] (set data_config.columns for other layouts)")
        return list(COLUMNS[:n_fields])
    if len(columns) != n_fields:
        raise DataError(f"{path}: data_config.columns names {len(columns)} column(s) but rows have {n_fields}")
    names = [c if c in COLUMNS else f"_unused_{i}" for i, c in enumerate(columns)]
    if len(set(names)) != len(names):
        raise DataError(f"{path}: data_config.columns {columns} names a column twice")
    return names


def _locate_bad_line(path: Path, sep: str, header: bool, names: list[str], numeric: list[str],
                     parser_message: str) -> DataError:
    """Scan the file for the first line the fast parser could not take, and say what is wrong with it."""
    positions = {name: i for i, name in enumerate(names)}
    empty_allowed: set[str] | None = None  # computed on the first empty numeric field only
    with path.open(encoding="utf-8", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            if header and number == 1:
                continue
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            fields = _split_line(text, sep)
            if len(fields) != len(names):
                return DataError(f"{path}, line {number}: expected {len(names)} fields "
                                 f"({', '.join(n for n in names)}), found {len(fields)}: {text!r}")
            for key in ("user", "item"):
                if fields[positions[key]] == "":
                    return DataError(f"{path}, line {number}: empty {key} id: {text!r}")
            for key in numeric:
                value = fields[positions[key]]
                if value == "":
                    if empty_allowed is None:
                        empty_allowed = _all_empty_numeric(path, sep, header, positions, numeric)
                    if key in empty_allowed:
                        continue
                if not _is_number(value):
                    return DataError(f"{path}, line {number}: {key} {value!r} is not a number: {text!r}")
    return DataError(f"{path}: cannot be read as {len(names)}-column rows: {parser_message}")


def _all_empty_numeric(path: Path, sep: str, header: bool, positions: dict[str, int],
                       numeric: list[str]) -> set[str]:
    """Numeric columns that are empty on every line (allowed: Elliot treats them as absent)."""
    seen_value = {key: False for key in numeric}
    with path.open(encoding="utf-8", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            if (header and number == 1) or not line.strip():
                continue
            fields = _split_line(line.rstrip("\r\n"), sep)
            for key in numeric:
                if positions[key] < len(fields) and fields[positions[key]] != "":
                    seen_value[key] = True
    return {key for key, seen in seen_value.items() if not seen}


def _is_number(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return bool(np.isfinite(value))


def _split_line(text: str, sep: str) -> list[str]:
    if sep == r"\s+":
        return text.split()
    fields = text.split(sep)
    return fields if sep == "\t" else [f.strip() for f in fields]


def _first_data_line(path: Path, header: bool) -> tuple[int, str] | None:
    with path.open(encoding="utf-8", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            if header and number == 1:
                continue
            if line.strip():
                return number, line.rstrip("\r\n")
    return None


def _sniff_separator(path: Path, header: bool) -> str:
    first = _first_data_line(path, header)
    if first is None:
        raise DataError(f"{path}: no data rows")
    text = first[1]
    if "\t" in text:
        return "\t"
    if "," in text:
        return ","
    return r"\s+"


def _integral_or_float(values: pd.Series) -> pd.Series:
    """int64 when every value is a whole number (unix seconds), so files are written back unchanged."""
    as_float = values.astype(np.float64)
    finite = np.isfinite(as_float.to_numpy())
    if finite.all() and (np.mod(as_float.to_numpy(), 1) == 0).all() and (np.abs(as_float) < 2**62).all():
        return as_float.astype(np.int64)
    return as_float


def _existing(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def _find_one(folder: Path, stems: tuple[str, ...], required: bool = True) -> Path | None:
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    hits = sorted(p for p in folder.iterdir() if p.is_file() and p.stem.lower() in stems)
    if len(hits) > 1:
        raise DataError(f"{folder}: several candidate files {[p.name for p in hits]}; keep one")
    if not hits and required:
        raise DataError(f"{folder}: no file named {'/'.join(stems)}.* found")
    return hits[0] if hits else None


def _json_id_map(folder: Path, name: str) -> dict[str, str] | None:
    """``{idx: public_id}`` from a ``{public_id: idx}`` JSON file in ``folder`` or its parent, if present."""
    for candidate in (folder / name, folder.parent / name):
        if candidate.is_file():
            forward = json.loads(candidate.read_text(encoding="utf-8"))
            return {str(idx): str(public) for public, idx in forward.items()}
    return None


def _csv_id_map(folder: Path, name: str) -> dict[str, str] | None:
    """``{idx: public_id}`` from MMRec's two-column mapping table (header ``public\\tidx``), if present."""
    path = folder / name
    if not path.is_file():
        return None
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    if table.shape[1] != 2:
        raise DataError(f"{path}: expected two columns (public id, index), found {table.shape[1]}")
    return dict(zip(table.iloc[:, 1], table.iloc[:, 0]))


def _map_ids(ids: pd.Series, mapping: dict[str, str] | None, path: Path, kind: str, map_name: str) -> pd.Series:
    if mapping is None:
        return ids.astype(object)
    mapped = ids.map(mapping)
    missing = mapped.isna()
    if missing.any():
        raise DataError(f"{path}: {int(missing.sum())} {kind} index(es) absent from {map_name} "
                        f"(first: {ids[missing].iloc[0]}); the map belongs to another dataset")
    return mapped.astype(object)
