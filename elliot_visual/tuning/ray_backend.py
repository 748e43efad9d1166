"""The Ray Tune backend of ``tuning/``: one ``models:`` entry's trials as Tune trials.

Chosen by ``experiment.ray`` (:class:`~elliot_visual.config.schema.RayConfig`). Every trial calls
the same :class:`~elliot_visual.tuning.tune.TrialRunner` as the local backend, so training,
validation, test evaluation, selection and the report files are the same; only where trials run
changes. An entry without a search space is a single trial and runs in the driver as before.
Elliot's search forms map to Ray:

- ``grid``: the points the local grid evaluates
  (:func:`~elliot_visual.tuning.search.grid_search_points`), enumerated by Ray's basic variant
  generator as ``tune.grid_search`` over their positions, so the trial order, and with it
  Elliot's "first on ties", is the local one;
- ``tpe``, ``atpe``, ``mix``, ``rand``, ``anneal``: Ray's ``HyperOptSearch`` over the same
  hyperopt space, seeded with ``random_seed``, running the same hyperopt ``suggest`` as the local
  search (with concurrent trials the suggestions see fewer finished trials, so the sequence
  differs from a serial run, as with any parallel TPE).

Each validation event is reported to Tune as it happens (``loss`` = minus the best validation
value so far, the quantity Elliot selects on), so ``ray.scheduler: {name: asha}`` can stop weak
trials; a stopped trial is recorded as ``stopped`` and never selected (its test metrics were
never computed). The split data, features and config reach the workers once per node through
``tune.with_parameters`` (Ray's object store), not once per trial.

Fault tolerance: an exception in a trial (a NaN loss, out of memory, a killed worker) makes Tune
mark it errored; it is recorded as ``failed`` with its error and the study goes on. Tune's
experiment state lives in ``<ray.storage_path>/<study>``, where ``<study>`` names the entry, the
fold and a fingerprint of its search; a rerun of the same config restores it
(``Tuner.restore``) and runs only the trials that had not finished. Each finished trial's outcome
is also written (atomically) to ``<study>/outcomes/<point hash>.pkl`` before Tune hears that it
ended, so a trial that Tune's last state snapshot (taken at most every 10 s) still lists as
running is not trained again either. These files are pickles, like Tune's own state: resume only
from a storage folder you trust.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import pickle
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from elliot_visual import storage
from elliot_visual.config.schema import ModelSpec
from elliot_visual.config.search_space import Dimension, grid_size, hyperopt_space
from elliot_visual.training.loop import resolve_device, set_cpu_threads
from elliot_visual.tuning.search import HYPEROPT_SUGGESTERS, grid_search_points, plain

if TYPE_CHECKING:  # tune.py calls this module: no import back at run time
    from elliot_visual.tuning.tune import TrialOutcome, TrialRunner, TuningSettings

log = logging.getLogger(__name__)

LOSS = "loss"  # what Tune minimises: minus the best validation value so far
OUTCOMES = "outcomes"


def ray_search(run_point: TrialRunner, dimensions: list[Dimension], spec: ModelSpec, settings: TuningSettings,
               study: str) -> list[TrialOutcome]:
    """Run the trials of ``spec``'s search space on Ray Tune; the outcomes in trial order."""
    from elliot_visual.cluster import connect_ray

    ray = settings.ray
    algorithm = spec.meta.hyper_opt_alg
    max_evals = _max_evals(dimensions, spec)
    points = grid_search_points(dimensions, max_evals, settings.random_seed) if algorithm == "grid" else None
    # Tune's TensorBoard logger renames every 'Recall@10' key with a warning per trial and event.
    logging.getLogger("tensorboardX.summary").setLevel(logging.ERROR)
    name = f"{storage.safe_file_name(study)}_{_fingerprint(spec, dimensions, points, max_evals, settings, run_point)}"
    study_dir = Path(ray.storage_path) / name
    connect_ray(ray)
    from ray import tune

    trainable = tune.with_resources(
        tune.with_parameters(_trainable, run_point=run_point, points=points, threads=settings.threads,
                             outcomes=str(study_dir / OUTCOMES), selection=run_point.selection().key,
                             gpu=0 if ray.gpus > 0 else -1),
        {"cpu": ray.cpus, "gpu": ray.gpus})
    if ray.resume and tune.Tuner.can_restore(str(study_dir)):
        log.info("%s: resuming the Ray Tune study in %s", spec.key, study_dir)
        tuner = tune.Tuner.restore(str(study_dir), trainable, resume_unfinished=True, resume_errored=False)
    else:
        if study_dir.exists() and not ray.resume:
            log.info("%s: ray.resume is false; starting %s afresh", spec.key, study_dir)
            shutil.rmtree(study_dir)
        # with resume and no state to restore (killed before Tune's first snapshot), finished
        # trials are still found in outcomes/
        tuner = _new_tuner(tune, trainable, dimensions, points, algorithm, max_evals, settings, name)
    results = tuner.fit()
    return _outcomes(results, run_point, points, dimensions, study_dir / OUTCOMES, run_point.selection().key)


def _max_evals(dimensions: list[Dimension], spec: ModelSpec) -> int:
    """``meta.hyper_max_evals``, or the grid size (what the local search does)."""
    if spec.meta.hyper_max_evals is not None:
        return spec.meta.hyper_max_evals
    size = grid_size(dimensions)
    if size is None:
        raise ValueError(f"{spec.key}: the search space has continuous dimensions, so its size is unknown: "
                         "set meta.hyper_max_evals to the number of trials")
    return size


def _fingerprint(spec: ModelSpec, dimensions: list[Dimension], points: list[dict[str, Any]] | None,
                 max_evals: int, settings: TuningSettings, run_point: TrialRunner) -> str:
    """A hash of what defines the study: a changed grid, seed, evaluation or split (its rows, not
    only its sizes) starts a new one instead of reusing stale trials."""
    text = json.dumps({"spec": spec.model_dump(mode="json"), "dimensions": repr(dimensions), "points": repr(points),
                       "max_evals": max_evals, "seed": settings.random_seed, "loader": run_point.loader,
                       "evaluation": settings.evaluation.model_dump(mode="json"), "top_k": settings.top_k},
                      sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode())
    for data in run_point.validation_folds:
        for part in (data.train, data.validation, data.test):
            arrays = () if part is None else (part.indptr, part.indices) if hasattr(part, "indptr") \
                else (part.users, part.items)
            for array in arrays:
                digest.update(np.ascontiguousarray(array).tobytes())
        digest.update("\0".join(map(str, data.item_ids)).encode())
    return digest.hexdigest()[:12]


def _new_tuner(tune: Any, trainable: Any, dimensions: list[Dimension], points: list[dict[str, Any]] | None,
               algorithm: str, max_evals: int, settings: TuningSettings, name: str) -> Any:
    ray = settings.ray
    scheduler = None
    if ray.scheduler is not None:
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(time_attr="training_iteration", grace_period=ray.scheduler.grace_period,
                                  reduction_factor=ray.scheduler.reduction_factor)
    if points is not None:
        param_space, search_alg, samples = {"index": tune.grid_search(list(range(len(points))))}, None, 1
    else:
        from ray.tune.search.hyperopt import HyperOptSearch

        search_alg = HyperOptSearch(space=hyperopt_space(dimensions), metric=LOSS, mode="min",
                                    random_state_seed=settings.random_seed)
        search_alg.algo = HYPEROPT_SUGGESTERS[algorithm]()  # Elliot's algorithm name, hyperopt's suggest
        param_space, samples = None, max_evals
    return tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(metric=LOSS, mode="min", search_alg=search_alg, scheduler=scheduler,
                                    num_samples=samples, max_concurrent_trials=ray.max_concurrent_trials,
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str(ray.storage_path), verbose=1,
                                  failure_config=tune.FailureConfig(max_failures=0)))


def _point_key(point: dict[str, Any]) -> str:
    return hashlib.sha256(repr(sorted(point.items())).encode()).hexdigest()[:16]


def _trainable(config: dict[str, Any], *, run_point: TrialRunner, points: list[dict[str, Any]] | None,
               threads: int | None, outcomes: str, selection: str, gpu: int) -> None:
    """One Tune trial: the point's training and evaluation, validation events reported as they come.
    ``gpu`` is 0 when the trial holds GPUs (Ray makes only those visible, numbered from 0), else -1."""
    from ray import tune

    set_cpu_threads(threads)
    point = points[config["index"]] if points is not None else {k: plain(v) for k, v in config.items()}
    record = Path(outcomes) / f"{_point_key(point)}.pkl"
    if record.is_file():  # finished before the driver was killed: report it, do not train again
        outcome = pickle.loads(record.read_bytes())
        tune.report({LOSS: outcome.loss, "finished": True})
        return
    best = -math.inf

    def on_validation(values: dict[str, float]) -> None:
        nonlocal best
        value = values[selection]
        if not math.isnan(value):
            best = max(best, value)
        tune.report({LOSS: -best, **values})

    outcome = run_point(point, on_validation, device=resolve_device(gpu))
    storage.write_bytes(record, pickle.dumps(outcome))
    tune.report({LOSS: outcome.loss, "finished": True})


def _outcomes(results: Any, run_point: TrialRunner, points: list[dict[str, Any]] | None,
              dimensions: list[Dimension], outcomes: Path, selection: str) -> list[TrialOutcome]:
    """Tune's results as TrialOutcomes, in the local backend's order (grid) or trial order (hyperopt)."""
    found: list[tuple[int, TrialOutcome]] = []
    for order in range(len(results)):
        result = results[order]
        if points is not None:
            index = int(result.config["index"])
            point = points[index]
        else:
            index = order
            point = {d.name: plain(result.config[d.name]) for d in dimensions}
        record = outcomes / f"{_point_key(point)}.pkl"
        if record.is_file():
            outcome = pickle.loads(record.read_bytes())
        elif result.error is not None:
            outcome = run_point.unfinished(point, "failed", _error_text(result.error))
        else:
            events = int((result.metrics or {}).get("training_iteration", 0))
            best = -float((result.metrics or {}).get(LOSS, math.inf))
            outcome = run_point.unfinished(point, "stopped", f"stopped by the scheduler after {events} "
                                           f"validation event(s), best {selection} {best:.5f}")
        if outcome.status != "ok":
            log.warning("trial %s %s: %s", outcome.name, outcome.status, outcome.error)
        found.append((index, outcome))
    return [outcome for _, outcome in sorted(found, key=lambda pair: pair[0])]


def _error_text(error: BaseException) -> str:
    """``Type: message`` of the exception a trial raised (Ray wraps it with the worker's traceback)."""
    cause = getattr(error, "cause", None) or error
    text = str(cause).strip()
    if "Traceback" in text:  # no original exception to unwrap: the traceback's last line names it
        return text.splitlines()[-1]
    return f"{type(cause).__name__}: {text}"
