"""Tune one ``models:`` entry on validation, then report its best configuration's test results.

Elliot's selection, step by step: inside a run the best validation event wins (first on ties); a
trial's loss is minus that best validation value (averaged over validation folds); across trials
the lowest loss wins (first on ties); across test folds the fold whose best trial has the lowest
loss is reported. Test results are computed only for the weights of the best validation event, so
the test set never influences a choice. Without a validation split, Elliot validates on test; so
does this (and says so in the log).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from elliot_visual.config.schema import Experiment, ModelSpec
from elliot_visual.config.search_space import parse_dimension
from elliot_visual.data.interactions import Interactions
from elliot_visual.evaluation.evaluator import (EvaluationResult, build_metrics, evaluate, evaluate_lists,
                                                parse_validation_metric)
from elliot_visual.evaluation.metrics.base import Metric
from elliot_visual.evaluation.metrics.visdiv import evaluation_features
from elliot_visual.models.base import HyperParams, Recommender, build_model
from elliot_visual.registry import MODELS
from elliot_visual.storage import ResultPaths, safe_file_name
from elliot_visual.training.loop import TrainingConfig, TrainingResult, resolve_device, train
from elliot_visual.tuning.search import best_trial, search

log = logging.getLogger(__name__)

FeatureProvider = Callable[[type[Recommender], HyperParams, Interactions], dict[str, torch.Tensor]]
"""``(model class, params, split) -> tensors``; a provider with a ``store(split)`` method (the runner's
:class:`~elliot_visual.features.store.SplitFeatures`) also serves metrics that read item features."""


@dataclass
class TrialOutcome:
    """One hyperparameter configuration, trained and evaluated."""

    name: str
    params: HyperParams
    loss: float
    best_iteration: int | None
    validation: dict[int, dict[str, float]]
    test: EvaluationResult
    training: list[TrainingResult] = field(default_factory=list)
    recommendations: PublicLists | None = None


@dataclass(frozen=True)
class PublicLists:
    """The test-time top-k lists in public ids: (n,) users, (n, K) items (None = padding), (n, K) scores."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    scores: np.ndarray


@dataclass
class ModelOutcome:
    """A ``models:`` entry: every trial, and the one selected on validation."""

    spec: ModelSpec
    trials: list[TrialOutcome]
    best: TrialOutcome
    validation_metric: str
    validation_cutoff: int

    @property
    def family(self) -> str:
        return self.best.name.split("_")[0]


COMPARISON_AXES = ("loader",)


def comparison_variants(spec: ModelSpec) -> list[ModelSpec]:
    """One entry per value of a comparison axis: a list under ``loader`` means *compare* the
    feature sources (one report row per backbone), not *tune* over them."""
    variants = [spec]
    for axis in COMPARISON_AXES:
        if axis not in spec.search:
            continue
        expanded = []
        for variant in variants:
            for value in variant.search[axis]:
                search = {k: v for k, v in variant.search.items() if k != axis}
                expanded.append(variant.model_copy(update={"params": {**variant.params, axis: value},
                                                           "search": search}))
        variants = expanded
    return variants


def no_features(cls: type[Recommender], params: HyperParams, data: Interactions) -> dict[str, torch.Tensor]:
    """The feature provider for experiments without side information."""
    if cls.needs:
        raise ValueError(f"model {cls.family} needs {', '.join(cls.needs)} but the config declares no "
                         "data_config.side_information; add a loader entry (see README, 'Side information')")
    return {}


def tune_and_evaluate(spec: ModelSpec, folds: list[list[Interactions]], exp: Experiment,
                      features: FeatureProvider = no_features,
                      paths: ResultPaths | None = None) -> ModelOutcome:
    """Search ``spec``'s space on validation for each test fold and keep the best, as Elliot does."""
    cls = MODELS.get(spec.name)
    metric, cutoff = parse_validation_metric(spec.meta.validation_metric, exp.evaluation)
    device = resolve_device(exp.gpu)
    per_fold: list[tuple[list[TrialOutcome], TrialOutcome]] = []
    for test_fold, validation_folds in enumerate(folds):
        if validation_folds[0].validation is None:
            log.warning("%s: no validation split; selecting on the test set as Elliot does", spec.key)
        trials: list[TrialOutcome] = []

        def objective(point: dict[str, Any]) -> float:
            params = cls.Params(**{**spec.params, **point})
            outcome = _run_trial(cls, params, spec, validation_folds, exp, features, device,
                                 metric, cutoff, paths)
            trials.append(outcome)
            return outcome.loss

        dimensions = [parse_dimension(name, values) for name, values in spec.search.items()]
        if dimensions:
            found = search(dimensions, objective, spec.meta.hyper_opt_alg, spec.meta.hyper_max_evals,
                           seed=exp.random_seed)
            index = best_trial(found).index
        else:
            objective({})
            index = 0
        trials[index] = chosen = with_feature_metrics(trials[index], validation_folds[-1], exp, features)
        per_fold.append((trials, chosen))
    trials, best = min(per_fold, key=lambda pair: pair[1].loss)
    return ModelOutcome(spec, trials, best, metric, cutoff)


def _run_trial(cls: type[Recommender], params: HyperParams, spec: ModelSpec,
               validation_folds: list[Interactions], exp: Experiment, features: FeatureProvider,
               device: torch.device, metric: str, cutoff: int, paths: ResultPaths | None) -> TrialOutcome:
    name = cls.report_name(params)
    selection = f"{metric}@{cutoff}"
    watched_at = [(metric, cutoff)]
    stopping = spec.early_stopping
    if stopping is not None and stopping.monitor not in ("loss", selection):
        watched_at.append(parse_validation_metric(stopping.monitor, exp.evaluation))
    watched = sorted({name for name, _ in watched_at})
    # Feature-reading metrics (VisDiv: t-SNE per user) select nothing and cost far more than the others,
    # so they are left out here and computed for the selected configuration only (with_feature_metrics).
    plain_metrics = [m.name for m in build_metrics(exp.evaluation) if not m.needs_features]
    losses, validations, trainings, tests = [], [], [], []
    for fold, data in enumerate(validation_folds):
        model = build_model(cls, params, data.n_users, data.n_items, features(cls, params, data))
        part = "validation" if data.validation is not None else "test"

        def validate(m: Recommender, data: Interactions = data) -> dict[str, float]:
            result = evaluate(m.score, data, part, exp.evaluation, exp.top_k, device, metrics=watched,
                              cutoffs=sorted({k for _, k in watched_at}))
            return {f"{name}@{k}": result.values[k][name] for name, k in watched_at}

        checkpoint = None
        if paths is not None and (spec.meta.save_weights or spec.meta.restore):
            suffix = f"_fold={fold}" if len(validation_folds) > 1 else ""
            checkpoint = paths.weights / safe_file_name(name + suffix)
        config = TrainingConfig(validation_rate=spec.meta.validation_rate, early_stopping=spec.early_stopping,
                                device=device, checkpoint_dir=checkpoint, restore=spec.meta.restore,
                                progress=True, description=name, selection=selection)
        training = train(model, data, config, validate)
        trainings.append(training)
        losses.append(-(training.best_value if training.best_value is not None else float("-inf")))
        validations.append(evaluate(model.score, data, part, exp.evaluation, exp.top_k, device,
                                    metrics=plain_metrics).values)
        tests.append(evaluate(model.score, data, "test", exp.evaluation, exp.top_k, device, metrics=plain_metrics))
        log.info("%s: best %s@%d = %.5f at epoch %s", name, metric, cutoff, -losses[-1], training.best_epoch)
    test = tests[-1]
    if len(tests) > 1:  # Elliot averages metrics over validation folds (np.average)
        test = EvaluationResult(values=_average([t.values for t in tests]), per_user=tests[-1].per_user,
                                recommendations=tests[-1].recommendations)
    user_ids, item_ids = tests[-1].recommendations.public_ids(validation_folds[-1])
    lists = PublicLists(user_ids, item_ids, tests[-1].recommendations.scores)
    return TrialOutcome(name=name, params=params, loss=float(np.mean(losses)),
                        best_iteration=trainings[-1].best_epoch, validation=_average(validations),
                        test=test, training=trainings, recommendations=lists)


def with_feature_metrics(trial: TrialOutcome, data: Interactions, exp: Experiment,
                         features: FeatureProvider) -> TrialOutcome:
    """``trial`` with the feature-reading metrics (VisDiv) added to its test values, computed on its
    saved test lists (those of ``data``, the last validation fold's split) without scoring again.

    A deviation from Elliot, which computes every metric for every trial: VisDiv is not one of
    Elliot's metrics, and a per-user t-SNE for each grid point would dominate a study's run time.
    The trial tables therefore leave VisDiv empty for configurations that were not selected.
    """
    readers = [m for m in build_metrics(exp.evaluation) if m.needs_features]
    if not readers:
        return trial
    extra = evaluate_lists(trial.test.recommendations, data, "test", exp.evaluation, readers,
                           features=metric_features(readers, features, data))
    values = {k: {**row, **extra.values.get(k, {})} for k, row in trial.test.values.items()}
    per_user = {k: {**trial.test.per_user.get(k, {}), **extra.per_user.get(k, {})}
                for k in {*trial.test.per_user, *extra.per_user}}
    test = EvaluationResult(values=values, recommendations=trial.test.recommendations, per_user=per_user,
                            part=trial.test.part)
    return replace(trial, test=test)


def metric_features(readers: list[Metric], features: FeatureProvider, data: Interactions
                    ) -> dict[str, np.ndarray]:
    """The item-aligned arrays the feature-reading metrics (VisDiv) ask for, from ``data``'s store."""
    store = getattr(features, "store", None)
    if store is None:
        raise ValueError(f"metrics {sorted({m.name for m in readers})} read item features, but the config "
                         "declares no data_config.side_information; add the loader entry their 'loader' "
                         "option names")
    return evaluation_features(readers, store(data))


def _average(results: list[dict[int, dict[str, float]]]) -> dict[int, dict[str, float]]:
    if len(results) == 1:
        return results[0]
    return {k: {m: float(np.mean([r[k][m] for r in results])) for m in results[0][k]} for k in results[0]}
