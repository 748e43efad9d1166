"""Tune one ``models:`` entry on validation, then report its best configuration's test results.

Elliot's selection, step by step: inside a run the best validation event wins (first on ties); a
trial's loss is minus that best validation value (averaged over validation folds); across trials
the lowest loss wins (first on ties); across test folds the fold whose best trial has the lowest
loss is reported. Test results are computed only for the weights of the best validation event, so
the test set never influences a choice. Without a validation split, Elliot validates on test; so
does this (and says so in the log).

What "the validation metric" means, how a model is evaluated and which report table its rows go
to belong to the entry's task (:mod:`elliot_visual.evaluation.tasks`): this module asks the task
and never special-cases a model.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from elliot_visual.config.schema import Evaluation, ModelSpec, RayConfig, split_metric_at
from elliot_visual.config.search_space import grid_size, parse_dimension
from elliot_visual.data.interactions import Interactions
from elliot_visual.evaluation.evaluator import EvaluationResult, build_metrics, evaluate_lists
from elliot_visual.evaluation.metrics.base import Metric
from elliot_visual.evaluation.metrics.visdiv import evaluation_features
from elliot_visual.evaluation.tasks import Selection, Task, TaskSettings, build_task, default_task
from elliot_visual.models.base import DEFAULT_LOADER, HyperParams, Recommender, build_model
from elliot_visual.registry import MODELS
from elliot_visual.storage import ResultPaths, safe_file_name
from elliot_visual.progress import format_seconds
from elliot_visual.training.history import HISTORY_FILE
from elliot_visual.training.loop import TrainingConfig, TrainingDivergedError, TrainingResult, resolve_device, train
from elliot_visual.tuning.search import Trial, best_trial, search

log = logging.getLogger(__name__)

FeatureProvider = Callable[[type[Recommender], str, Interactions], dict[str, torch.Tensor]]
"""``(model class, bound feature set, split) -> tensors``; a provider with a ``store(split)`` method
(the runner's :class:`~elliot_visual.features.store.SplitFeatures`) also serves metrics that read
item features."""


@dataclass(frozen=True)
class TuningSettings:
    """The config sections the tuner reads (not the whole experiment): ``evaluation``, the list
    length ``top_k``, Elliot's ``gpu`` key, the experiment's ``random_seed`` (search seeds), its
    ``threads`` (torch's CPU pool, also inside Ray trials) and its ``ray`` block (None: trials run here)."""

    evaluation: Evaluation
    top_k: int
    gpu: int = -1
    random_seed: int = 42
    threads: int | None = None
    ray: RayConfig | None = None
    amp: bool = False  # bfloat16 autocast when training on CUDA (the experiment's ``amp`` key)


@dataclass(frozen=True)
class PublicLists:
    """The test-time top-k lists in public ids: (n,) users, (n, K) items (None = padding), (n, K) scores."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    scores: np.ndarray


@dataclass
class TrialOutcome:
    """One hyperparameter configuration, trained and evaluated; or, with ``status`` ``failed``
    (an exception, a killed worker) or ``stopped`` (a scheduler ended it early), not evaluated:
    ``error`` says why, ``loss`` is infinite (the worst: never selected) and ``test`` holds the reason under a
    ``failed`` / ``stopped`` column at every cutoff (the trial tables show it after the metrics)."""

    name: str
    params: HyperParams
    loss: float
    best_iteration: int | None
    validation: dict[int, dict[str, float]]
    test: EvaluationResult | None
    training: list[TrainingResult] = field(default_factory=list)
    recommendations: PublicLists | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)  # the model's describe() (e.g. TVBPR's trends)
    status: str = "ok"
    error: str | None = None

    @property
    def failed(self) -> str | None:
        """Why the trial failed (training diverged, an exception, a killed worker), else None."""
        return self.error if self.status == "failed" else None


def unfinished_trial(name: str, params: HyperParams, status: str, error: str, cutoffs: list[int]) -> TrialOutcome:
    """A trial that produced no evaluation, recorded with its reason (it keeps the study going)."""
    reason = " ".join(str(error).split())  # one line: it is a TSV cell
    return TrialOutcome(name=name, params=params, loss=float("inf"), best_iteration=None, validation={},
                        test=EvaluationResult(values={k: {status: reason} for k in cutoffs}, recommendations=None),
                        status=status, error=reason)


@dataclass
class ModelOutcome:
    """A ``models:`` entry: every trial, the one selected on validation, and how it was selected."""

    spec: ModelSpec
    trials: list[TrialOutcome]
    best: TrialOutcome
    selection: Selection
    task: str = "ranking"
    table: str = "rec"
    loader: str | None = None  # the feature set bound in the entry, for models that read one

    @property
    def family(self) -> str:
        return self.best.name.split("_")[0]

    @property
    def validation_metric(self) -> str:
        return self.selection.metric

    @property
    def validation_cutoff(self) -> int:
        return self.selection.cutoff


COMPARISON_AXES = ("loader",)


def comparison_variants(spec: ModelSpec) -> list[ModelSpec]:
    """One entry per bound feature set: a list under ``loader`` means *compare* the feature sources
    (one report row per backbone), not *tune* over them."""
    loaders = spec.loader if isinstance(spec.loader, list) else [spec.loader]
    return [spec.model_copy(update={"loader": loader}) for loader in loaders]


def no_features(cls: type[Recommender], loader: str, data: Interactions) -> dict[str, torch.Tensor]:
    """The feature provider for experiments without side information."""
    if cls.needs:
        raise ValueError(f"model {cls.family} needs {', '.join(cls.needs)} but the config declares no "
                         "data_config.side_information; add a loader entry (see README, 'Side information')")
    return {}


def entry_task(cls: type[Recommender], spec: ModelSpec, settings: TuningSettings, device: torch.device) -> Task:
    """The task a model entry runs: ``meta.task``, or the default for the model and the config."""
    name = spec.meta.task or default_task(cls.tasks, settings.evaluation)
    if not cls.serves(name):
        raise ValueError(f"models.{spec.key}.meta.task: {cls.family} does not serve the '{name}' task "
                         f"(it serves {', '.join(cls.tasks)})")
    return build_task(name, TaskSettings(settings.evaluation, settings.top_k, device))


def tune_and_evaluate(spec: ModelSpec, folds: list[list[Interactions]], settings: TuningSettings,
                      features: FeatureProvider = no_features,
                      paths: ResultPaths | None = None) -> ModelOutcome:
    """Search ``spec``'s space on validation for each test fold and keep the best, as Elliot does."""
    cls = MODELS.get(spec.name)
    device = resolve_device(settings.gpu)
    task = entry_task(cls, spec, settings, device)
    selection = task.selection(spec.meta.validation_metric)
    loader = spec.loader or DEFAULT_LOADER
    per_fold: list[tuple[list[TrialOutcome], TrialOutcome]] = []
    for validation_folds in folds:
        if validation_folds[0].validation is None:
            log.warning("%s: no validation split; selecting on the test set as Elliot does", spec.key)
        trials: list[TrialOutcome] = []
        run_point = TrialRunner(cls, spec, loader, validation_folds, settings, features, paths)
        dimensions = [parse_dimension(name, values) for name, values in spec.search.items()]
        if settings.ray is not None and dimensions:  # an entry without a search space is one trial: run here
            from elliot_visual.tuning.ray_backend import ray_search

            trials = ray_search(run_point, dimensions, spec, settings, study=f"{spec.key}_fold{len(per_fold)}")
            index = best_trial([Trial(i, {}, t.loss) for i, t in enumerate(trials)]).index
        elif dimensions:
            planned = spec.meta.hyper_max_evals or grid_size(dimensions) or 1
            started = time.monotonic()

            def objective(point: dict[str, Any]) -> float:
                _log_study_progress(spec.key, len(trials) + 1, planned, started)
                trials.append(run_point(point, device=device))
                return trials[-1].loss if trials[-1].status == "ok" else float("inf")

            found = search(dimensions, objective, spec.meta.hyper_opt_alg, spec.meta.hyper_max_evals,
                           seed=settings.random_seed)
            index = best_trial(found).index
        else:
            trials.append(run_point({}, device=device))
            index = 0
        if all(t.status != "ok" for t in trials):
            raise TrainingDivergedError(spec.key, 0, float("inf"), f"every one of its {len(trials)} trials failed "
                                        f"(first: {trials[0].error})")
        trials[index] = chosen = with_feature_metrics(trials[index], validation_folds[-1], settings.evaluation,
                                                      features)
        per_fold.append((trials, chosen))
    trials, best = min(per_fold, key=lambda pair: pair[1].loss)
    return ModelOutcome(spec, trials, best, selection, task=task.name, table=task.table,
                        loader=loader if cls.loader_in_name else None)


def _log_study_progress(key: str, number: int, planned: int, started: float) -> None:
    """``VBPR: trial 3 of 9, elapsed 2:10, remaining about 4:20`` (the estimate from the trials so far)."""
    elapsed = time.monotonic() - started
    remaining = f", remaining about {format_seconds(elapsed / (number - 1) * (planned - number + 1))}" \
        if number > 1 and planned >= number else ""
    log.info("%s: trial %d of %d, elapsed %s%s", key, number, planned, format_seconds(elapsed), remaining)


def watched_values(task: Task, selection: Selection, spec: ModelSpec) -> list[Selection]:
    """The values a run observes at each validation event: the selection value, and the early-stopping
    monitor when it is another metric (``loss`` is observed by the loop itself)."""
    watched = [selection]
    stopping = spec.early_stopping
    if stopping is not None and stopping.monitor not in ("loss", selection.key):
        name, k = split_metric_at(stopping.monitor, "early_stopping.monitor")
        watched.append(task.selection(f"{name}@{k}" if k is not None else name))
    return watched


ValidationHook = Callable[[dict[str, float]], None]


@dataclass
class TrialRunner:
    """``run(point)``: one trial of a ``models:`` entry on one test fold, from a point of its search
    space; the one function both backends call (locally, or inside a Ray Tune trial).

    Picklable (the Ray backend ships it to its workers once per node). ``on_validation`` receives
    every validation event's values (``{"Recall@20": ...}``) as it happens; ``device`` None
    resolves ``gpu`` where the trial runs (a Ray worker sees only its own GPUs), and the entry's
    task is built there for that device.
    """

    cls: type[Recommender]
    spec: ModelSpec
    loader: str
    validation_folds: list[Interactions]
    settings: TuningSettings
    features: FeatureProvider
    paths: ResultPaths | None

    def params(self, point: dict[str, Any]) -> HyperParams:
        try:
            return self.cls.Params(**{**self.spec.params, **point})
        except ValidationError as error:
            item = error.errors(include_url=False)[0]
            raise ValueError(f"experiment.models.{self.spec.key}.{'.'.join(map(str, item['loc']))}: the search "
                             f"produced {point}, which is invalid: {item['msg']}") from None

    def name(self, point: dict[str, Any]) -> str:
        return self.cls.report_name(self.params(point), self.loader)

    def unfinished(self, point: dict[str, Any], status: str, error: str) -> TrialOutcome:
        """The outcome of ``point`` when its trial failed or was stopped before any evaluation."""
        return unfinished_trial(self.name(point), self.params(point), status, error, self.settings.evaluation.cutoffs)

    def selection(self) -> Selection:
        return entry_task(self.cls, self.spec, self.settings, torch.device("cpu")).selection(
            self.spec.meta.validation_metric)

    def __call__(self, point: dict[str, Any], on_validation: ValidationHook | None = None,
                 device: torch.device | None = None) -> TrialOutcome:
        device = device or resolve_device(self.settings.gpu)
        task = entry_task(self.cls, self.spec, self.settings, device)
        params = self.params(point)
        try:
            return _run_trial(self.cls, params, self.loader, self.spec, self.validation_folds, task,
                              task.selection(self.spec.meta.validation_metric), self.features, device, self.paths,
                              on_validation, amp=self.settings.amp)
        except TrainingDivergedError as error:  # recorded as failed; the study goes on
            outcome = self.unfinished(point, "failed", str(error))
            log.warning("%s: trial failed and is recorded as such: %s", outcome.name, outcome.error)
            return outcome


def _run_trial(cls: type[Recommender], params: HyperParams, loader: str, spec: ModelSpec,
               validation_folds: list[Interactions], task: Task, selection: Selection,
               features: FeatureProvider, device: torch.device, paths: ResultPaths | None,
               on_validation: ValidationHook | None = None, *, amp: bool = False) -> TrialOutcome:
    name = cls.report_name(params, loader)
    watched = watched_values(task, selection, spec)
    # Feature-reading metrics (VisDiv: t-SNE per user) select nothing and cost far more than the others,
    # so they are left out here and computed for the selected configuration only (with_feature_metrics).
    plain_metrics = task.trial_metrics()
    losses, validations, trainings, tests = [], [], [], []
    for fold, data in enumerate(validation_folds):
        inputs = features(cls, loader, data)
        model = build_model(cls, params, data.n_users, data.n_items, inputs)
        part = "validation" if data.validation is not None else "test"

        def validate(m: Recommender, data: Interactions = data, inputs: Mapping = inputs) -> dict[str, float]:
            values = task.validate(m, data, watched, inputs=inputs)
            if on_validation is not None:
                on_validation(values)
            return values

        checkpoint = history = None
        if paths is not None:
            suffix = f"_fold={fold}" if len(validation_folds) > 1 else ""
            history = paths.weights / safe_file_name(name + suffix) / HISTORY_FILE  # the report's curves
            if spec.meta.save_weights or spec.meta.restore:
                checkpoint = history.parent
        config = TrainingConfig(validation_rate=spec.meta.validation_rate, early_stopping=spec.early_stopping,
                                device=device, checkpoint_dir=checkpoint, restore=spec.meta.restore,
                                progress=True, description=name, selection=selection.key, history_path=history,
                                verbose=spec.meta.verbose, amp=amp, optimizer=spec.meta.optimizer)
        training = train(model, data, config, validate, features=inputs)
        trainings.append(training)
        if spec.meta.optimize_internal_loss:  # Elliot's get_loss: the lowest epoch loss is the trial's loss
            losses.append(min((r.loss for r in training.history), default=float("inf")))
        else:
            losses.append(-(training.best_value if training.best_value is not None else float("-inf")))
        validations.append(task.evaluate(model, data, part, metrics=plain_metrics, inputs=inputs).values)
        tests.append(task.evaluate(model, data, "test", metrics=plain_metrics, inputs=inputs))
        best = float("nan") if training.best_value is None else training.best_value
        log.info("%s: best %s = %.5f at epoch %s", name, selection.key, best, training.best_epoch)
    test = tests[-1]
    if len(tests) > 1:  # Elliot averages metrics over validation folds (np.average)
        test = EvaluationResult(values=_average([t.values for t in tests]), per_user=tests[-1].per_user,
                                recommendations=tests[-1].recommendations)
    artifacts = model.describe()
    if artifacts:
        artifacts["feature_names"] = _column_names(features, validation_folds[-1], loader)
    lists = None
    if tests[-1].recommendations is not None:
        user_ids, item_ids = tests[-1].recommendations.public_ids(validation_folds[-1])
        lists = PublicLists(user_ids, item_ids, tests[-1].recommendations.scores)
    return TrialOutcome(name=name, params=params, loss=float(np.mean(losses)),
                        best_iteration=trainings[-1].best_epoch, validation=_average(validations),
                        test=test, training=trainings, recommendations=lists, artifacts=artifacts)


def _column_names(features: FeatureProvider, data: Interactions, loader: str) -> list[str] | None:
    """The names of the visual feature columns the model read (attribute names), when they have names."""
    store = getattr(features, "store", None)
    if store is None:
        return None
    try:
        names = store(data).column_names(loader, "visual_features")
    except ValueError:
        return None
    return list(names) if names is not None else None


def with_feature_metrics(trial: TrialOutcome, data: Interactions, evaluation: Evaluation,
                         features: FeatureProvider) -> TrialOutcome:
    """``trial`` with the feature-reading metrics (VisDiv) added to its test values, computed on its
    saved test lists (those of ``data``, the last validation fold's split) without scoring again.

    A deviation from Elliot, which computes every metric for every trial: VisDiv is not one of
    Elliot's metrics, and a per-user t-SNE for each grid point would dominate a study's run time.
    The trial tables therefore leave VisDiv empty for configurations that were not selected.
    """
    readers = [m for m in build_metrics(evaluation) if m.needs_features]
    if not readers or trial.test.recommendations is None:
        return trial
    extra = evaluate_lists(trial.test.recommendations, data, "test", evaluation, readers,
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
