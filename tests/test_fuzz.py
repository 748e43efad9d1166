"""Fuzzed configs and bad data: every wrong input is a clean error naming its key or file.

Each case runs what a run does before training (config validation, input checks, data
preparation, side information, the preflight checks of ``tuning/preflight.py``), so hundreds of
cases take seconds. A case is classified as

* ``clean``: an error the CLI prints without a traceback, naming the key or file at fault;
* ``vague``: such an error, but its message does not name the key or file;
* ``traceback``: any other exception (a library error passed through raw);
* ``hang``: no answer within the time limit;
* ``silent``: a wrong input accepted (or a valid control rejected).

The figures are printed (``pytest -s``) and must be 0 tracebacks, 0 hangs, 0 silent, 0 vague.
"""
from __future__ import annotations

import copy
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from elliot_visual.cli import USER_ERRORS
from elliot_visual.config import load_experiment
from elliot_visual.data.loading import check_inputs_exist, prepare_data
from elliot_visual.experiment import result_paths
from elliot_visual.features.store import side_information_provider
from elliot_visual.storage import write_npy, write_text
from elliot_visual.tuning.preflight import preflight

TIME_LIMIT_S = 20
N_USERS, N_ITEMS = 24, 30


@dataclass
class Case:
    name: str
    mutate: Callable[[dict[str, Any], Path], None]   # edits the config and/or the files in the folder
    names: tuple[str, ...]                           # the message must name one of these (key or file)
    valid: bool = False                              # a control: must be accepted


def write_data(root: Path) -> None:
    """Tiny interactions (each user 8 timestamped rows) and 8-d feature vectors for every item."""
    rng = np.random.default_rng(0)
    lines = []
    for u in range(N_USERS):
        for n, i in enumerate(rng.choice(N_ITEMS, size=8, replace=False)):
            lines.append(f"u{u}\ti{i}\t{1 + (u + n) % 5}\t{1000 * u + n}")
    write_text(root / "data" / "ds.tsv", "\n".join(lines) + "\n")
    write_npy(root / "data" / "feats" / "features.npy", rng.random((N_ITEMS, 8)).astype(np.float32))
    write_text(root / "data" / "feats" / "item_ids.txt", "".join(f"i{i}\n" for i in range(N_ITEMS)))


def base_config() -> dict[str, Any]:
    return {"experiment": {
        "dataset": "fz",
        "data_config": {"strategy": "dataset", "dataset_path": "data/ds.tsv",
                        "side_information": [{"dataloader": "FeatureVectors", "name": "vis",
                                              "path": "data/feats", "n_components": 4}]},
        "prefiltering": [{"strategy": "user_k_core", "core": 2}],
        "splitting": {"test_splitting": {"strategy": "temporal_hold_out", "test_ratio": 0.2},
                      "validation_splitting": {"strategy": "temporal_hold_out", "leave_n_out": 1}},
        "top_k": 10,
        "evaluation": {"cutoffs": [5, 10], "simple_metrics": ["Recall", "nDCG"], "relevance_threshold": 1},
        "gpu": -1, "threads": 1,
        "path_output_rec_result": "results/recs", "path_output_rec_weight": "results/weights",
        "path_output_rec_performance": "results/performance", "path_output_figures": "results/figures",
        "models": {
            "MostPop": {"meta": {"save_recs": True}},
            "BPRMF": {"meta": {"validation_rate": 1, "validation_metric": "Recall@5", "hyper_opt_alg": "grid"},
                      "epochs": 2, "batch_size": 16, "factors": [4, 8], "lr": 0.01, "seed": 1},
            "VBPR": {"epochs": 2, "batch_size": 16, "factors": 4, "factors_d": 2, "loader": "vis",
                     "early_stopping": {"monitor": "Recall@5", "patience": 2}},
        }}}


def check(config: dict[str, Any], root: Path) -> None:
    """Everything a run does before training."""
    exp = load_experiment(config, root)
    check_inputs_exist(exp.data)
    result_paths(exp).create()
    folds = prepare_data(exp.data, verbose=False)
    folds, features = side_information_provider(exp.data, folds)
    preflight(exp, folds, features)


def at(config: dict[str, Any], path: str) -> tuple[Any, Any]:
    """(parent container, last key) of a dotted path such as ``models.BPRMF.meta.validation_rate``."""
    node: Any = config["experiment"]
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]
    for part in parts[:-1]:
        node = node[part]
    return node, parts[-1]


def set_value(path: str, value: Any) -> Callable[[dict[str, Any], Path], None]:
    def mutate(config: dict[str, Any], _root: Path) -> None:
        parent, key = at(config, path)
        parent[key] = copy.deepcopy(value)
    return mutate


def delete(path: str) -> Callable[[dict[str, Any], Path], None]:
    def mutate(config: dict[str, Any], _root: Path) -> None:
        parent, key = at(config, path)
        del parent[key]
    return mutate


def leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list) and node and isinstance(node[0], dict):
        for i, value in enumerate(node):
            yield from leaves(value, f"{prefix}.{i}")
    else:
        yield prefix, node


def mappings(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        yield prefix
        for key, value in node.items():
            yield from mappings(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, dict):
                yield from mappings(value, f"{prefix}.{i}")


def _key(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def config_cases() -> list[Case]:
    base = base_config()
    cases: list[Case] = []
    # 1. a typo'd key in every mapping (searched hyperparameters' lists aside)
    for path in mappings(base["experiment"]):
        def typo(config: dict[str, Any], _root: Path, path: str = path) -> None:
            node = config["experiment"]
            for part in [p for p in path.split(".") if p]:
                node = node[int(part) if part.isdigit() else part]
            node["colour_typo"] = 1
        cases.append(Case(f"unknown key under '{path or 'experiment'}'", typo, ("colour_typo",)))
    # 2. a value of the wrong type for every scalar leaf
    for path, value in leaves(base["experiment"]):
        if isinstance(value, bool):
            cases.append(Case(f"{path}: not a boolean", set_value(path, "perhaps"), (_key(path),)))
        elif isinstance(value, (int, float)):
            cases.append(Case(f"{path}: text for a number", set_value(path, "many"), (_key(path),)))
            cases.append(Case(f"{path}: a mapping for a number", set_value(path, {"a": 1}), (_key(path),)))
        elif isinstance(value, str):
            cases.append(Case(f"{path}: a mapping for a name", set_value(path, {"x": 1}), (_key(path),)))
    # 3. out-of-range numbers
    for path, bad in [("top_k", 0), ("top_k", -3), ("evaluation.cutoffs", [0]), ("evaluation.cutoffs", [20]),
                      ("threads", 0), ("models.BPRMF.epochs", 0), ("models.BPRMF.epochs", -1),
                      ("models.BPRMF.meta.validation_rate", 0), ("models.BPRMF.meta.validation_rate", 5),
                      ("models.BPRMF.meta.hyper_max_evals", 0), ("models.VBPR.factors", 0),
                      ("models.VBPR.factors", -4), ("models.VBPR.factors_d", 0), ("models.BPRMF.lr", -0.1),
                      ("models.VBPR.early_stopping.patience", -1), ("prefiltering.0.core", -2),
                      ("splitting.test_splitting.test_ratio", 1.5), ("splitting.test_splitting.test_ratio", 0),
                      ("splitting.validation_splitting.leave_n_out", 0),
                      ("data_config.side_information.0.n_components", 0)]:
        cases.append(Case(f"{path} = {bad!r}", set_value(path, bad), (_key(path).split(".")[-1], "cutoff")))
    # 4. missing required keys
    for path in ["dataset", "data_config", "models", "data_config.dataset_path", "splitting",
                 "splitting.test_splitting", "splitting.test_splitting.strategy", "prefiltering.0.strategy",
                 "data_config.side_information.0.dataloader", "data_config.side_information.0.path"]:
        cases.append(Case(f"missing {path}", delete(path), (_key(path), "splitting", "strategy", "models")))
    # 5. unknown names
    for path, bad, named in [
            ("splitting.test_splitting.strategy", "temporal_holdout", "temporal_holdout"),
            ("prefiltering.0.strategy", "user_kcore", "user_kcore"),
            ("evaluation.simple_metrics", ["Recal"], "Recal"), ("models.BPRMF.meta.hyper_opt_alg", "gird", "gird"),
            ("models.BPRMF.meta.validation_metric", "nDCG@7", "validation"),
            ("models.BPRMF.meta.validation_metric", "AUC@5", "validation"),
            ("models.BPRMF.meta.validation_metric", "Recall@", "validation"),
            ("models.VBPR.early_stopping.monitor", "Precision@5", "monitor"),
            ("models.VBPR.early_stopping.mode", "maximum", "mode"),
            ("data_config.side_information.0.dataloader", "FeatureVector", "FeatureVector"),
            ("data_config.strategy", "fixd", "strategy"), ("data_config.layout", "csv", "layout"),
            ("models.VBPR.loader", "resnet", "resnet")]:
        cases.append(Case(f"{path} = {bad!r}", set_value(path, bad), (named,)))

    def unknown_model(config: dict[str, Any], _root: Path) -> None:
        config["experiment"]["models"]["VBRP"] = config["experiment"]["models"].pop("VBPR")
    cases.append(Case("unknown model VBRP", unknown_model, ("VBRP",)))
    # 6. wrong containers
    for path, bad in [("models", ["MostPop"]), ("models", {}), ("evaluation", [1]), ("splitting", "random"),
                      ("data_config.side_information", {"dataloader": 3}), ("prefiltering", [3]),
                      ("models.BPRMF.meta", [1]), ("models.VBPR.early_stopping", 3), ("models.BPRMF", [1, 2])]:
        cases.append(Case(f"{path} = {bad!r}", set_value(path, bad), (_key(path), "models", "expected")))
    # 7. search spaces and hyperparameters that validate as YAML but not as values
    for path, bad, named in [("models.BPRMF.factors", ["uniform", 4], "factors"),
                             ("models.BPRMF.factors", ["quniform", 8, 4, 1], "factors"),
                             ("models.BPRMF.lr", ["loguniform", -5, -1], "hyper_max_evals"),
                             ("models.BPRMF.factors", ["choice"], "factors"),
                             ("models.BPRMF.factors", [4, "eight"], "factors"),
                             ("models.BPRMF.epochs", [2, 0], "epochs"),
                             ("models.VBPR.lr", "fast", "lr"), ("models.VBPR.batch_size", 2.5, "batch_size")]:
        cases.append(Case(f"{path} = {bad!r}", set_value(path, bad), (named,)))
    # 8. absurd sizes (would allocate gigabytes before failing)
    for path, bad, named in [("top_k", 10**9, "top_k"), ("evaluation.cutoffs", [5, 10**6], "cutoff"),
                             ("models.VBPR.factors", 10**9, "factors"), ("models.BPRMF.factors", [4, 10**9], "factors"),
                             ("models.VBPR.batch_size", 10**9, "batch_size"),
                             ("models.BPRMF.batch_size", 10**8, "batch_size"),
                             ("evaluation.complex_metrics", [{"metric": "VisDiv", "loader": "vis",
                                                              "figure_sample": 10**6}], "figure_sample")]:
        cases.append(Case(f"{path} = {bad!r}", set_value(path, bad), (named,)))
    # 9. keys that would deceive
    for path, bad in [("models.BPRMF.meta.restore_epoch", 5), ("align_side_with_train", False),
                      ("path_logger_config", "logging.yml"), ("data_config.cold_items", "some")]:
        cases.append(Case(f"{path} = {bad!r}", set_value(path, bad), (_key(path),)))
    # 10. paths
    def output_is_a_file(config: dict[str, Any], root: Path) -> None:
        write_text(root / "results" / "performance", "not a folder")
    cases += [
        Case("dataset_path missing", set_value("data_config.dataset_path", "data/nothing.tsv"), ("nothing.tsv",)),
        Case("dataset_path is a folder", set_value("data_config.dataset_path", "data"), ("data",)),
        Case("feature path missing", set_value("data_config.side_information.0.path", "data/none"), ("none",)),
        Case("output folder is a file", output_is_a_file, ("performance",)),
    ]
    # 11. valid controls: forms Elliot accepts must keep working
    cases += [Case(name, mutate, (), valid=True) for name, mutate in [
        ("control: the base config", lambda c, r: None),
        ("control: scalar cutoff", set_value("evaluation.cutoffs", 5)),
        ("control: lr as YAML 1.1 string", set_value("models.VBPR.lr", "1e-3")),
        ("control: lowercase validation metric", set_value("models.BPRMF.meta.validation_metric", "recall@5")),
        ("control: restore_epoch -1 (the fork's default)", set_value("models.BPRMF.meta.restore_epoch", -1)),
        ("control: verbose", set_value("models.BPRMF.meta.verbose", True)),
        ("control: batch_size -1", set_value("models.VBPR.batch_size", -1)),
        ("control: prefiltering as one mapping", set_value("prefiltering", {"strategy": "user_k_core", "core": 2})),
        ("control: cold_items none", set_value("data_config.cold_items", "none")),
        ("control: early_stopping verbose", set_value("models.VBPR.early_stopping.verbose", True)),
        ("control: optimize_internal_loss", set_value("models.BPRMF.meta.optimize_internal_loss", True)),
        ("control: config_test", set_value("config_test", True)),
    ]]
    return cases


def _replace_line(path: Path, index: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[index] = text
    path.write_text("\n".join(lines) + "\n")


def data_cases() -> list[Case]:
    """Wrong data files (the config stays valid)."""
    ds = lambda r: r / "data" / "ds.tsv"  # noqa: E731
    feats = lambda r: r / "data" / "feats" / "features.npy"  # noqa: E731
    ids = lambda r: r / "data" / "feats" / "item_ids.txt"  # noqa: E731

    def edit(action: Callable[[Path], None]) -> Callable[[dict[str, Any], Path], None]:
        return lambda config, root: action(root)

    def features_with(change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
        return lambda root: write_npy(feats(root), change(np.load(feats(root))))

    def nan_row(values: np.ndarray) -> np.ndarray:
        values[3] = np.nan
        return values

    def inf_row(values: np.ndarray) -> np.ndarray:
        values[7, 2] = np.inf
        return values

    def fixed_split(config: dict[str, Any], root: Path, validation: str, test: str | None = None) -> None:
        write_text(root / "data" / "train.tsv", "u1\ti1\t1\nu1\ti2\t1\nu2\ti2\t1\nu2\ti3\t1\n")
        write_text(root / "data" / "val.tsv", validation)
        write_text(root / "data" / "test.tsv", test or "u1\ti3\t1\nu2\ti1\t1\n")
        config["experiment"]["data_config"] = {
            "strategy": "fixed", "train_path": "data/train.tsv", "validation_path": "data/val.tsv",
            "test_path": "data/test.tsv"}
        config["experiment"].pop("splitting")
        config["experiment"].pop("prefiltering")
        del config["experiment"]["models"]["VBPR"]
        config["experiment"]["models"]["BPRMF"]["meta"]["validation_metric"] = "Recall@1"
        config["experiment"]["top_k"] = 2
        config["experiment"]["evaluation"]["cutoffs"] = [1, 2]

    return [
        Case("empty dataset file", edit(lambda r: ds(r).write_text("")), ("ds.tsv",)),
        Case("blank lines only", edit(lambda r: ds(r).write_text("\n\n\n")), ("ds.tsv",)),
        Case("one column", edit(lambda r: ds(r).write_text("u1\nu2\n")), ("ds.tsv",)),
        Case("a rating that is text", edit(lambda r: _replace_line(ds(r), 5, "u0\ti1\tgood\t5")), ("ds.tsv",)),
        Case("a timestamp that is text", edit(lambda r: _replace_line(ds(r), 9, "u1\ti2\t3\tyesterday")), ("ds.tsv",)),
        Case("a missing field", edit(lambda r: _replace_line(ds(r), 11, "u1\t\t3\t5")), ("ds.tsv",)),
        Case("undecodable bytes", edit(lambda r: ds(r).write_bytes(ds(r).read_bytes()[:40] + b"\xff\xfe\x00bad\n"
                                                               + ds(r).read_bytes()[40:])), ("ds.tsv",)),
        Case("a binary file", edit(lambda r: ds(r).write_bytes(bytes(range(256)) * 4)), ("ds.tsv",)),
        Case("too few rows for the k-core", edit(lambda r: ds(r).write_text("u1\ti1\t1\t1\n")), ("ds.tsv", "core")),
        Case("NaN feature row", edit(features_with(nan_row)), ("features.npy",)),
        Case("infinite feature value", edit(features_with(inf_row)), ("features.npy",)),
        Case("feature matrix shorter than the id list", edit(features_with(lambda v: v[:-5])), ("features.npy",
                                                                                              "item_ids")),
        Case("truncated .npy", edit(lambda r: feats(r).write_bytes(feats(r).read_bytes()[:60])), ("features.npy",)),
        Case("not a .npy at all", edit(lambda r: feats(r).write_text("hello")), ("features.npy",)),
        Case("3-d features for a vector loader", edit(features_with(lambda v: v.reshape(N_ITEMS, 2, 4))),
             ("features.npy", "feature")),
        Case("item id list missing", edit(lambda r: ids(r).unlink()), ("item_ids",)),
        Case("features for other items", edit(lambda r: ids(r).write_text("".join(f"x{i}\n" for i in range(N_ITEMS)))),
             ("features", "item")),
        Case("features missing for some items", edit(lambda r: (features_with(lambda v: v[:20])(r),
                                                                ids(r).write_text("".join(f"i{i}\n" for i in range(20))))),
             ("features",)),
        Case("object-dtype .npy (pickle)", edit(lambda r: feats(r).write_bytes(_pickled_npy())), ("features.npy",)),
        Case("validation users absent from train",
             lambda c, r: fixed_split(c, r, "u8\ti1\t1\nu9\ti2\t1\n"), ("validation",)),
        Case("empty test file", lambda c, r: fixed_split(c, r, "u1\ti3\t1\n", test="\n"), ("test",)),
        Case("relevance threshold above every rating",
             lambda c, r: (fixed_split(c, r, "u1\ti3\t1\n"),
                           c["experiment"]["evaluation"].update(relevance_threshold=4)), ("relevance_threshold",)),
        Case("control: fixed split", lambda c, r: fixed_split(c, r, "u1\ti3\t1\n"), (), valid=True),
        Case("control: duplicate rows keep the last", edit(lambda r: ds(r).write_text(ds(r).read_text() * 2)), (),
             valid=True),
    ]


def _pickled_npy() -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}] * N_ITEMS, dtype=object), allow_pickle=True)
    return buffer.getvalue()


class _Hang(Exception):
    pass


def classify(case: Case, root: Path) -> tuple[str, str]:
    write_data(root)
    config = base_config()
    case.mutate(config, root)

    def alarm(*_: Any) -> None:
        raise _Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(TIME_LIMIT_S)
    try:
        check(config, root)
    except _Hang:
        return "hang", ""
    except USER_ERRORS as error:
        message = str(error)
        if case.valid:
            return "silent", f"valid control rejected: {message}"
        named = any(name.lower() in message.lower() for name in case.names)
        return ("clean" if named else "vague"), message
    except Exception as error:  # noqa: BLE001  exactly what the fuzzer looks for
        return "traceback", f"{type(error).__name__}: {error}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return ("accepted" if case.valid else "silent"), ""


def _figures(cases: list[Case], tmp_path: Path) -> tuple[Counter, list[str]]:
    counts: Counter = Counter()
    faults = []
    for index, case in enumerate(cases):
        verdict, message = classify(case, tmp_path / f"case{index}")
        counts[verdict] += 1
        if verdict not in ("clean", "accepted"):
            faults.append(f"{verdict}: {case.name}: {message[:300]}")
    return counts, faults


@pytest.mark.filterwarnings("ignore")
def test_fuzzed_configs_fail_cleanly_naming_the_key(tmp_path: Path) -> None:
    cases = config_cases()
    assert len([c for c in cases if not c.valid]) >= 100
    counts, faults = _figures(cases, tmp_path)
    print(f"\nconfig fuzzing: {len(cases)} cases ({sum(c.valid for c in cases)} valid controls): {dict(counts)}")
    assert not faults, "\n".join(faults)


@pytest.mark.filterwarnings("ignore")
def test_bad_data_fails_cleanly_naming_the_file(tmp_path: Path) -> None:
    cases = data_cases()
    assert len([c for c in cases if not c.valid]) >= 20
    counts, faults = _figures(cases, tmp_path)
    print(f"\nbad data: {len(cases)} cases ({sum(c.valid for c in cases)} valid controls): {dict(counts)}")
    assert not faults, "\n".join(faults)
