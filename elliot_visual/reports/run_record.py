"""``results/<dataset>/run.json``: what a run was — config as run, seeds, versions, timings, files.

The HTML report (and ``elliot-visual report``) is rebuilt from the results folder alone; Elliot's
TSVs hold the numbers, this record holds what they do not: the config text and its path (the
interactive page reloads the trained model through it), the seeds, the library versions, the
start and end of the run, per trial the training time and where its history TSV is, and which
row of the tables belongs to which model entry and backbone. Paths are relative to the results
folder when they lie inside it.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elliot_visual.storage import ResultPaths, write_json

if TYPE_CHECKING:
    from elliot_visual.config.schema import Experiment
    from elliot_visual.tuning.tune import ModelOutcome

RECORD_FILE = "run.json"
VERSIONED = ("elliot_visual", "torch", "numpy", "scipy", "pandas", "scikit-learn", "matplotlib", "Jinja2",
             "timm", "torchvision")


def results_folder(paths: ResultPaths) -> Path:
    """The dataset's results folder (``results/<dataset>``): the parent of ``performance/``."""
    return Path(paths.performance).parent


def versions() -> dict[str, str]:
    """Python, the platform and the installed versions of the libraries a result depends on."""
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _relative(path: Path | str | None, root: Path) -> str | None:
    if path is None:
        return None
    path = Path(path).resolve()
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _iso(seconds: float) -> str:
    return _dt.datetime.fromtimestamp(seconds).isoformat(timespec="seconds")


def run_record(exp: "Experiment", outcomes: "Sequence[ModelOutcome]", paths: ResultPaths, stamp: str,
               files: Sequence[Path], started: float | None, finished: float) -> dict[str, Any]:
    """The record's content (see the module docstring); ``started``/``finished`` are ``time.time()``."""
    root = results_folder(paths)
    config_path = Path(exp.config_path)
    config_text = config_path.read_text(encoding="utf-8") if config_path.is_file() else ""
    models = []
    for outcome in outcomes:
        best = outcome.best
        models.append({
            "key": outcome.spec.key, "family": outcome.family, "model": best.name,
            "backbone": outcome.loader or "-", "loader": outcome.loader, "task": outcome.task,
            "table": outcome.table, "validation_metric": outcome.selection.key,
            "seed": getattr(best.params, "seed", None), "save_weights": bool(outcome.spec.meta.save_weights),
            "trials": [{"name": t.name, "selected": t is best, "loss": t.loss, "best_iteration": t.best_iteration,
                        "seconds": sum(r.seconds for run in t.training for r in run.history),
                        "epochs": sum(len(run.history) for run in t.training),
                        "history": [_relative(run.history_path, root) for run in t.training
                                    if run.history_path is not None]}
                       for t in outcome.trials],
        })
    return {
        "dataset": exp.dataset, "stamp": stamp, "config_path": str(config_path.resolve()), "config_text": config_text,
        "random_seed": exp.random_seed, "versions": versions(),
        "started": _iso(started) if started is not None else None, "finished": _iso(finished),
        "seconds": (finished - started) if started is not None else None,
        "cutoffs": list(exp.evaluation.cutoffs), "relevance_threshold": exp.evaluation.relevance_threshold,
        "folders": {name: _relative(getattr(paths, name), root) for name in ("recs", "weights", "performance",
                                                                             "figures")},
        "models": models,
        "files": sorted({_relative(f, root) for f in files}),
    }


def write_run_record(record: dict[str, Any], paths: ResultPaths) -> Path:
    """Write ``run.json`` into the results folder (atomically)."""
    return write_json(results_folder(paths) / RECORD_FILE, record)



def read_run_record(folder: str | os.PathLike) -> dict[str, Any]:
    """The record of the run whose results are in ``folder``; a clear error when it is not one."""
    path = Path(folder) / RECORD_FILE
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"results folder {folder} does not exist")
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {RECORD_FILE}: not the results folder of a run "
                                "(expected results/<dataset>, written by 'elliot-visual run')")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
