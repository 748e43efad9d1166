"""The runner: one short function that reads as the pipeline it runs (see DESIGN.md)."""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elliot_visual.config import load_experiment
from elliot_visual.config.schema import Experiment, ModelSpec
from elliot_visual.data.loading import check_inputs_exist, prepare_data
from elliot_visual.evaluation.significance import compare_models
from elliot_visual.evaluation.visual_profiles import best_model_profiles
from elliot_visual.features.store import side_information_provider
from elliot_visual.reports.elliot_format import write_reports
from elliot_visual.reports.html_report import write_run_page
from elliot_visual.storage import ResultPaths, timestamp_suffix, write_manifest
from elliot_visual.training.loop import TrainingDivergedError, set_cpu_threads
from elliot_visual.transfer_study import check_accuracy_keys, write_transfer_study
from elliot_visual.tuning.preflight import preflight
from elliot_visual.tuning.tune import ModelOutcome, TuningSettings, comparison_variants, tune_and_evaluate

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run produced: the experiment, each model entry's outcome, and the files written.

    ``outcome("VBPR")`` is a model entry's result (``.best.test.values[k]["Recall"]``);
    ``load_model("VBPR")`` rebuilds its selected configuration with the saved best weights
    (``meta.save_weights: True``) to score users; ``manifest`` marks the run as complete.
    """

    experiment: Experiment
    outcomes: list[ModelOutcome]
    files: list[Path]
    folds: list[list[Any]] = field(default_factory=list, repr=False)
    features: Any = field(default=None, repr=False)
    log_file: Path | None = None

    @property
    def manifest(self) -> Path | None:
        """The completion marker written last (``performance/manifest_<ts>.json``)."""
        return next((p for p in self.files if p.name.startswith("manifest_")), None)

    def outcome(self, model: str) -> ModelOutcome:
        """The outcome of the entry whose YAML key, registry name or report name is ``model``."""
        for o in self.outcomes:
            if model in (o.spec.key, o.spec.name, o.best.name):
                return o
        raise KeyError(f"no model entry {model!r} in this run (entries: {', '.join(o.spec.key for o in self.outcomes)})")

    def metrics(self, model: str, cutoff: int | None = None) -> dict[str, float]:
        """The selected configuration's test metrics at ``cutoff`` (default: the first cutoff)."""
        k = cutoff if cutoff is not None else self.experiment.evaluation.cutoffs[0]
        return dict(self.outcome(model).best.test.values[k])

    def load_model(self, model: str) -> Any:
        """The selected configuration of ``model``, built on the last fold's split with its best weights."""
        from elliot_visual.models.base import build_model
        from elliot_visual.registry import MODELS
        from elliot_visual.storage import safe_file_name
        from elliot_visual.training.loop import load_checkpoint_file

        outcome = self.outcome(model)
        weights = Path(self.experiment.path_output_rec_weight) / safe_file_name(outcome.best.name) / "best-weights.pt"
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} does not exist; run {outcome.spec.key} with meta.save_weights: True")
        cls = MODELS.get(outcome.spec.name)
        data = self.folds[-1][-1]
        from elliot_visual.models.base import DEFAULT_LOADER

        loader = outcome.loader or outcome.spec.loader or DEFAULT_LOADER
        recommender = build_model(cls, outcome.best.params, data.n_users, data.n_items,
                                  self.features(cls, loader, data) if self.features else {})
        recommender.load_state_dict(load_checkpoint_file(weights))
        return recommender.eval()


def run_experiment(config: str | Path | Mapping[str, Any], base_dir: str | Path | None = None) -> RunSummary:
    """Load the config, prepare data and features, tune/train/evaluate every model, write reports.

    ``config`` is a YAML path or the config as a mapping (relative paths then start at ``base_dir``,
    default the current folder). Everything the run logs also goes to ``<results>/<dataset>/log/elliot.log``.
    """
    exp = load_experiment(config, base_dir)                         # config/: validated, or ConfigError
    if exp.evaluation.transactions is not None:                     # the transfer study's tables: known backbones
        check_accuracy_keys(exp.evaluation.transactions)
    check_inputs_exist(exp.data)                                    # data/: stop at once if data are absent
    with run_log(exp) as log_file:
        summary = _run(exp)
    summary.log_file = log_file
    return summary


def _run(exp: Experiment) -> RunSummary:
    started = time.time()
    set_cpu_threads(exp.threads)                                    # training/: torch's CPU pool
    run_extraction_blocks(exp)                                      # extraction/: only missing features
    paths = result_paths(exp).create()
    folds = prepare_data(exp.data)                                  # data/: read, prefilter, split
    folds, features = side_information_provider(exp.data, folds)    # features/: aligned to item index
    preflight(exp, folds, features)                                 # tuning/: data-dependent faults, now
    if exp.config_test:                                             # Elliot's dry run: stop before training
        log.info("config_test: every check passed; nothing trained (set config_test: False to run)")
        return RunSummary(exp, [], [], folds, features)
    settings = TuningSettings(exp.evaluation, exp.top_k, exp.gpu, exp.random_seed, exp.threads, exp.ray,
                              amp=exp.amp)
    outcomes = [o for spec in exp.models for variant in comparison_variants(spec)  # tuning/ + training/ + evaluation/
                if (o := tune_or_report_failure(variant, folds, settings, features, paths)) is not None]
    if not outcomes:
        raise TrainingDivergedError("every model entry", 0, float("inf"), "no entry trained without diverging "
                                    "(see the log)")
    significance = compare_models(outcomes, exp.evaluation)         # evaluation/: paired tests
    profiles = best_model_profiles(exp.evaluation, outcomes, folds, features)  # evaluation/: VisDiv maps to draw
    stamp = timestamp_suffix()
    files = write_reports(exp.evaluation, outcomes, significance, paths, stamp, profiles=profiles,
                          triplets=exp.print_results_as_triplets)  # reports/: files, figures
    files += write_transfer_study(exp.evaluation, outcomes, features, folds[-1][-1], paths)  # transfer tables
    files += write_run_page(exp, outcomes, paths, files, stamp, started)  # reports/: run.json, report.html
    files.append(write_manifest(paths.performance / f"manifest_{stamp}.json", files, {"stamp": stamp}))  # last
    return RunSummary(exp, outcomes, files, folds, features)


def tune_or_report_failure(spec: ModelSpec, folds: list[list[Any]], settings: TuningSettings, features: Any,
                           paths: ResultPaths) -> ModelOutcome | None:
    """An entry's outcome; an entry every trial of which diverged is logged and left out, so the
    other entries' results are still reported (a diverged trial inside a grid is kept as failed)."""
    try:
        return tune_and_evaluate(spec, folds, settings, features, paths)
    except TrainingDivergedError as error:
        log.error("%s left out of the reports: %s", spec.key, error)
        return None


def log_folder(exp: Experiment) -> Path:
    """``path_log_folder``, or Elliot's ``log/`` beside the run's result folders."""
    return Path(exp.path_log_folder) if exp.path_log_folder else Path(exp.path_output_rec_performance).parent / "log"


@contextlib.contextmanager
def run_log(exp: Experiment) -> Iterator[Path]:
    """Append what the package logs during the run (INFO and up) to ``log/elliot.log``, as Elliot keeps
    ``log/elliot.log``; training writes a line per epoch there with ``meta.verbose``, else one every 30 s."""
    folder = log_folder(exp)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "elliot.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package = logging.getLogger("elliot_visual")
    previous = package.level
    package.addHandler(handler)
    package.setLevel(min(package.getEffectiveLevel(), logging.INFO))
    package.info("run of %s (dataset %s) started", exp.config_path, exp.dataset)
    try:
        yield path
        package.info("run of %s finished", exp.config_path)
    except BaseException as error:
        package.error("run of %s failed: %s", exp.config_path, error)
        raise
    finally:
        package.removeHandler(handler)
        package.setLevel(previous)
        handler.close()


def result_paths(exp: Experiment) -> ResultPaths:
    """Elliot's three result folders from the config, plus the figures folder."""
    return ResultPaths(recs=exp.path_output_rec_result, weights=exp.path_output_rec_weight,
                       performance=exp.path_output_rec_performance, figures=exp.path_output_figures)


def run_extraction_blocks(exp: Experiment) -> None:
    """Run each ``extraction:`` block whose output is missing (imports the extras only when needed)."""
    if not exp.extraction:
        return
    from elliot_visual.extraction.blocks import ensure_features

    ensure_features(exp.extraction, Path(exp.config_path).parent, exp.dataset, exp.gpu, exp.ray)
