"""The runner: one short function that reads as the pipeline it runs (see DESIGN.md)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from elliot_visual.config import load_experiment
from elliot_visual.config.schema import Experiment
from elliot_visual.data.loading import check_inputs_exist, prepare_data
from elliot_visual.evaluation.significance import compare_models
from elliot_visual.evaluation.visual_profiles import best_model_profiles
from elliot_visual.features.store import side_information_provider
from elliot_visual.reports.elliot_format import write_reports
from elliot_visual.reports.html_report import write_run_page
from elliot_visual.storage import ResultPaths, timestamp_suffix
from elliot_visual.training.loop import set_cpu_threads
from elliot_visual.transfer_study import check_accuracy_keys, write_transfer_study
from elliot_visual.tuning.tune import ModelOutcome, TuningSettings, comparison_variants, tune_and_evaluate

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run produced: the experiment, each model entry's outcome, and the files written."""

    experiment: Experiment
    outcomes: list[ModelOutcome]
    files: list[Path]


def run_experiment(config_path: str | Path) -> RunSummary:
    """Load the config, prepare data and features, tune/train/evaluate every model, write reports."""
    started = time.time()
    exp = load_experiment(config_path)                              # config/: validated, or ConfigError
    if exp.evaluation.transactions is not None:                     # the transfer study's tables: known backbones
        check_accuracy_keys(exp.evaluation.transactions)
    check_inputs_exist(exp.data)                                    # data/: stop at once if data are absent
    set_cpu_threads(exp.threads)                                    # training/: torch's CPU pool
    run_extraction_blocks(exp)                                      # extraction/: only missing features
    paths = result_paths(exp).create()
    folds = prepare_data(exp.data)                                  # data/: read, prefilter, split
    folds, features = side_information_provider(exp.data, folds)    # features/: aligned to item index
    settings = TuningSettings(exp.evaluation, exp.top_k, exp.gpu, exp.random_seed, exp.threads, exp.ray)
    outcomes = [tune_and_evaluate(variant, folds, settings, features, paths)  # tuning/ + training/ + evaluation/
                for spec in exp.models for variant in comparison_variants(spec)]
    significance = compare_models(outcomes, exp.evaluation)         # evaluation/: paired tests
    profiles = best_model_profiles(exp.evaluation, outcomes, folds, features)  # evaluation/: VisDiv maps to draw
    stamp = timestamp_suffix()
    files = write_reports(exp.evaluation, outcomes, significance, paths, stamp, profiles=profiles,
                          triplets=exp.print_results_as_triplets)  # reports/: files, figures
    files += write_transfer_study(exp.evaluation, outcomes, features, folds[-1][-1], paths)  # transfer tables
    files += write_run_page(exp, outcomes, paths, files, stamp, started)  # reports/: run.json, report.html
    return RunSummary(exp, outcomes, files)


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
