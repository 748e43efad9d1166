"""The one training loop: epochs, batches, device, AMP, validation, early stopping, checkpoints.

Every gradient model trains here; a model file only says how to compute ``loss(batch)``. The loop
never evaluates by itself: the caller passes ``validate(model) -> float`` (higher is better), which
keeps ``training`` independent of ``evaluation``. As in Elliot, the reported model is the one of the
best validation event (first on ties); its weights are kept in memory and restored at the end.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import dataclasses
import io
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn

from elliot_visual.config.schema import EarlyStopping
from elliot_visual.progress import progress
from elliot_visual.registry import SAMPLERS
from elliot_visual.storage import write_bytes
from elliot_visual.training.history import EpochRecord, write_history
from elliot_visual.training.optimizers import OptimizerName, build_optimizer

if TYPE_CHECKING:  # annotations only: the loop itself imports no model or data module, so that
    # fine-tuning in extraction/ can use it without a circle through models/ and features/
    from elliot_visual.data.interactions import Interactions
    from elliot_visual.models.base import Recommender

log = logging.getLogger(__name__)


@dataclass
class TrainingConfig:
    """How to train, separate from what to train (the model's hyperparameters)."""

    validation_rate: int = 1
    early_stopping: EarlyStopping | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    checkpoint_dir: Path | None = None
    restore: bool = False
    amp: bool = False  # bfloat16 autocast on CUDA; off as in Elliot, which trains in float32
    optimizer: OptimizerName = "adam"  # see training.optimizers
    progress: bool = True
    description: str = ""
    selection: str | None = None  # key of the selection value when ``validate`` returns a mapping
    # Replaces Elliot's early-stopping rule when set: monitored values so far -> stop now?
    stop_rule: Callable[[list[float]], bool] | None = None
    history_path: Path | None = None  # per-epoch history TSV (training/history.py), rewritten each epoch
    verbose: bool = False  # Elliot's meta.verbose: one INFO line per epoch (else DEBUG, the log file only)
    # Called with each epoch's record after its gradient steps, before validation (the Elliot adapter
    # hands the epoch's loss to Elliot's evaluate this way).
    on_epoch: Callable[["EpochRecord"], None] | None = None
    # A batch loss over this many times the first batch's (floored at 1) means training diverged.
    divergence_factor: float = 1e4


@dataclass
class TrainingResult:
    """What happened: the per-epoch history and the best validation event."""

    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    stopped_early: bool = False
    restored: bool = False
    history_path: Path | None = None  # where the history TSV was written (TrainingConfig.history_path)

    @property
    def validations(self) -> list[EpochRecord]:
        return [r for r in self.history if r.validation is not None]


class BatchSource(Protocol):
    """What the loop draws batches from: a registered sampler, or any object with ``epoch()``."""

    def epoch(self) -> Iterable[Any]: ...


class TrainingDivergedError(ValueError):
    """Training diverged: the loss became NaN/inf, or finite but exploding (see ``divergence_factor``).

    A ``ValueError`` because a hyperparameter value (usually ``lr``) caused it; the tuner records
    the trial as failed with :attr:`reason` and goes on with the study.
    """

    def __init__(self, description: str, epoch: int, loss: float, reason: str) -> None:
        self.description, self.epoch, self.loss, self.reason = description, epoch, loss, reason
        when = f" at epoch {epoch}" if epoch else ""
        super().__init__(f"{description}: training diverged{when}: {reason}; lower lr or raise the regularisation")


class NonFiniteLossError(TrainingDivergedError):
    """The loss became NaN or infinity; the message names the model and the epoch."""


class CheckpointError(ValueError):
    """A checkpoint that must not be restored: stale (other data, split or parameters) or unsafe."""


def set_cpu_threads(threads: int | None) -> None:
    """Hold torch's intra-op CPU pool to ``threads`` (None leaves torch's default).

    Why: on a shared machine, idle-spinning worker threads make the tiny matrix products of small
    models many times slower (the demo: 117 s with torch's default of 2 threads against 41 s with
    one, measured side by side on a loaded 2-core machine; a VBPR step: 6 ms against 340 ms,
    ``benchmarks/train_step.py``), hence the config's default of one thread.
    """
    if threads is not None:
        torch.set_num_threads(int(threads))


def resolve_device(gpu: int) -> torch.device:
    """Elliot's ``gpu`` key: -1 is the CPU, ``n >= 0`` CUDA device n when CUDA is available."""
    if gpu >= 0 and torch.cuda.is_available():
        if gpu >= torch.cuda.device_count():
            raise ValueError(f"gpu: {gpu} but only {torch.cuda.device_count()} CUDA device(s) exist")
        return torch.device(f"cuda:{gpu}")
    if gpu >= 0:
        log.warning("gpu: %d requested but CUDA is not available; training on the CPU", gpu)
    return torch.device("cpu")


def should_stop(rule: EarlyStopping | None, observations: list[float]) -> bool:
    """Elliot's early-stopping rule: the last ``patience`` consecutive changes all got worse.

    With ``rule: since_best`` (the VRS fork's hard-coded rule) it stops instead once ``patience``
    events followed the best one (the first of equal bests) without beating it by more than
    ``min_delta`` / ``rel_delta`` (``baseline`` belongs to Elliot's rule only).

    ``observations`` are the monitored values at each validation event. Worse means lower for a
    ``max`` monitor (metrics) and higher for ``min`` (loss), beyond ``min_delta`` / ``rel_delta``;
    a ``baseline`` also counts any observation not beating it as worse.
    """
    if rule is None or rule.patience <= 0 or len(observations) <= rule.patience:
        return False
    mode = rule.mode if rule.mode != "auto" else ("min" if rule.monitor == "loss" else "max")
    sign = 1.0 if mode == "max" else -1.0
    if rule.rule == "since_best":  # the fork's: `patience` events since the best, none beating it
        best, best_at = sign * observations[0], 0
        for n, value in enumerate(observations[1:], start=1):
            if sign * value - best > max(rule.min_delta, abs(best) * rule.rel_delta):
                best, best_at = sign * value, n
        return len(observations) - 1 - best_at >= rule.patience
    recent = [sign * v for v in observations[-(rule.patience + 1):]]
    for before, after in zip(recent, recent[1:]):
        improvement = after - before
        margin = max(rule.min_delta, abs(before) * rule.rel_delta)
        beats_baseline = rule.baseline is None or after > sign * rule.baseline
        if improvement > margin and beats_baseline:
            return False
    return True


def build_sampler(model: Recommender, data: Interactions, features: Mapping[str, torch.Tensor] | None = None) -> Any:
    """The registered sampler the model asks for, built from ``data``, seeded by the model's seed,
    with the sampler options its ``Params`` declare (``negatives``, ``negatives_from``, ...)."""
    sampler_cls = SAMPLERS.get(model.sampler)
    params = model.params
    return sampler_cls(data, int(getattr(params, "batch_size", -1)), seed=int(getattr(params, "seed", 42)),
                       options=sampler_cls.Options.pick(params), features=features or {})


def train(model: Recommender, data: Interactions, config: TrainingConfig,
          validate: Callable[[Recommender], float | Mapping[str, float]] | None = None,
          features: Mapping[str, torch.Tensor] | None = None) -> TrainingResult:
    """Train ``model`` (see :func:`train_stage`, stage by stage when it declares ``training_stages``)
    with deterministic CPU kernels (:func:`reproducible`)."""
    with reproducible(config.device):
        return _train_stages(model, data, config, validate, features)


@contextlib.contextmanager
def reproducible(device: torch.device) -> Iterator[None]:
    """Deterministic kernels while training on the CPU, so the same seed gives bit-identical weights.

    Why: with more than one CPU thread, the backward of an indexed lookup with repeated indices
    (``table[items]``, which ACF does over every user's item set) accumulates in a thread-dependent
    order; torch's deterministic mode sorts instead. On CUDA this is left off: atomic adds in
    embedding backward make GPU runs reproducible only up to float rounding (not measured here:
    no GPU), and deterministic CUDA kernels would need ``CUBLAS_WORKSPACE_CONFIG``.
    """
    if device.type != "cpu":
        yield
        return
    enabled, warn_only = torch.are_deterministic_algorithms_enabled(), \
        torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _train_stages(model: Recommender, data: Interactions, config: TrainingConfig,
          validate: Callable[[Recommender], float | Mapping[str, float]] | None = None,
          features: Mapping[str, torch.Tensor] | None = None) -> TrainingResult:
    """Train ``model`` (see :func:`train_stage`), stage after stage when it declares ``training_stages``.

    Each stage (e.g. ImgRec-EtE's frozen backbone, then joint fine-tuning) is entered, trained with
    its own epochs, optimizer and early-stopping patience, and ends on its best weights, from which
    the next stage starts; the run keeps the best validation event over all stages (its epochs are
    numbered on, and each record names its stage). Checkpoints go to ``<checkpoint_dir>/<stage>``.
    """
    stages = model.training_stages() if model.is_gradient_model() else ()
    if not stages:
        return train_stage(model, data, config, validate, features)
    result, best_state, offset = TrainingResult(), None, 0
    for stage in stages:
        stage.enter()
        rule = config.early_stopping if stage.patience is None else EarlyStopping(monitor="validation", mode="max",
                                                                                  patience=stage.patience)
        part = train_stage(model, data, dataclasses.replace(
            config, early_stopping=rule, description=f"{config.description or model.family} [{stage.name}]",
            checkpoint_dir=None if config.checkpoint_dir is None else config.checkpoint_dir / stage.name),
            validate, features, epochs=stage.epochs)
        for record in part.history:
            result.history.append(dataclasses.replace(record, epoch=record.epoch + offset, stage=stage.name))
        result.stopped_early, result.restored = part.stopped_early, result.restored or part.restored
        if part.best_value is not None and (result.best_value is None or part.best_value > result.best_value):
            result.best_value = part.best_value
            result.best_epoch = None if part.best_epoch is None else part.best_epoch + offset
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        offset = result.history[-1].epoch if result.history else offset
    if best_state is not None:
        model.load_state_dict(best_state)
    if result.best_epoch is None and result.history:
        result.best_epoch = result.history[-1].epoch
    model.eval()
    return result


def train_stage(model: Recommender, data: Interactions, config: TrainingConfig,
                validate: Callable[[Recommender], float | Mapping[str, float]] | None = None,
                features: Mapping[str, torch.Tensor] | None = None, epochs: int | None = None) -> TrainingResult:
    """Train ``model`` on ``data.train``; validate every ``validation_rate`` epochs; keep the best.

    ``features`` are the model's feature tensors, for samplers whose batches need them (the user-set
    sampler's label targets). After each epoch's gradient steps the model's ``between_epochs``
    hook runs (a non-gradient step such as TVBPR's re-segmentation), then validation.

    ``validate`` returns the selection value, or a mapping holding it under ``config.selection``
    and the early-stopping monitor under its own name (``nDCG@10``) when that differs.
    Closed-form models (``fit``) are fitted once and validated once. With ``config.checkpoint_dir``
    the best weights go to ``best-weights.pt`` and the resumable state to ``last.pt`` at every
    validation event; with ``config.restore`` a finished run is restored without training and an
    interrupted one resumes from its last state.
    """
    model.to(config.device)
    result = TrainingResult(history_path=config.history_path)
    if not model.is_gradient_model():
        started = time.perf_counter()
        model.fit(data)
        model.to(config.device)
        record = EpochRecord(1, 0.0)
        if validate is not None:
            record.validation, record.monitored, record.metrics = _validate(model, validate, config)
            result.best_epoch, result.best_value = 1, record.validation
        record.seconds = time.perf_counter() - started
        result.history.append(record)
        if config.history_path is not None:
            write_history(config.history_path, result.history, result.best_epoch)
        return result

    epochs = int(model.params.epochs if epochs is None else epochs)
    if epochs < config.validation_rate:
        raise ValueError(f"{model.family}: epochs ({epochs}) < validation_rate ({config.validation_rate}), "
                         "so the model would never be validated")
    return run_epochs(model, build_sampler(model, data, features), epochs, config, validate,
                      between_epochs=lambda epoch: model.between_epochs(data, epoch),
                      fingerprint=checkpoint_fingerprint(model, data, features))


def run_epochs(model: nn.Module, sampler: BatchSource, epochs: int, config: TrainingConfig,
               validate: Callable[[Any], float | Mapping[str, float]] | None = None,
               between_epochs: Callable[[int], None] | None = None,
               fingerprint: str | None = None) -> TrainingResult:
    """The epoch loop every trainable network shares (recommenders, fine-tuned backbones).

    ``model`` is any ``nn.Module`` with ``loss(batch) -> Tensor``; its optimizer is
    ``config.optimizer`` at its ``params.lr`` (``training.optimizers``), or the module's own
    ``configure_optimizer()`` when it has one (a fine-tuned backbone's per-layer learning rates); it may also define
    ``trainable_parameters()``, the only parameters trained: every other one is frozen while the
    loop runs and the flags are restored afterwards. Mode switches go through the module's own
    ``train()``/``eval()`` (a network keeping batch-norm statistics frozen overrides ``train``).
    ``sampler.epoch()`` yields the batches of one epoch (each with ``.to(device)``);
    ``between_epochs(epoch)`` runs after each epoch's gradient steps, before validation, under
    ``torch.no_grad()`` (a recommender's ``between_epochs`` hook). ``fingerprint`` identifies what
    the weights depend on; a checkpoint with another one is refused (``CheckpointError``).
    A NaN/inf or exploding loss raises :class:`TrainingDivergedError`; ``last.pt`` is written after
    every epoch with every RNG state, so a resumed run ends bit-identical to an uninterrupted one.
    """
    name = config.description or getattr(model, "family", "") or type(model).__name__
    model.to(config.device)
    result = TrainingResult(history_path=config.history_path)
    generators = getattr(model, "generator_states", dict)
    with _frozen_except(model):
        optimizer = build_optimizer(model, config.optimizer)
        start_epoch, best_state = 1, None
        state = _load_checkpoint(config, fingerprint) if config.restore else None
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if hasattr(sampler, "rng") and state.get("sampler_rng") is not None:
                sampler.rng.bit_generator.state = state["sampler_rng"]
            _set_rng_state(state.get("rng"))
            if hasattr(model, "load_generator_states"):
                model.load_generator_states(state.get("generators", {}))
            result.history = [EpochRecord(**r) for r in state["history"]]
            result.best_epoch, result.best_value = state["best_epoch"], state["best_value"]
            result.stopped_early = bool(state.get("stopped_early", False))
            best_state = state["best_model"]
            start_epoch = epochs + 1 if result.stopped_early else state["epoch"] + 1
            result.restored = True
            log.info("%s: resumed from epoch %d", name, state["epoch"])

        use_amp = config.amp and config.device.type == "cuda"
        monitor_loss = config.early_stopping is not None and config.early_stopping.monitor == "loss"
        bar = progress(desc=name, total=epochs, initial=start_epoch - 1, unit="epoch",
                       enabled=config.progress, logger=log, mininterval=1.0)
        # The first batch's loss, before any update, is the scale an exploding loss is measured against.
        reference = state.get("divergence_reference") if state is not None else None
        for epoch in range(start_epoch, epochs + 1):
            started = time.perf_counter()
            model.train()
            total = 0.0
            for batch in sampler.epoch():
                batch = batch.to(config.device)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
                    loss = model.loss(batch)
                value = float(loss.detach())
                if not math.isfinite(value):
                    bar.close()
                    raise NonFiniteLossError(name, epoch, value, f"the loss became {value}")
                if reference is None:
                    reference = max(abs(value), 1.0)
                elif abs(value) > config.divergence_factor * reference:
                    bar.close()
                    raise TrainingDivergedError(name, epoch, value, _exploding(value, reference, config))
                loss.backward()
                optimizer.step()
                total += value
            if between_epochs is not None:
                with torch.no_grad():
                    between_epochs(epoch)
            record = EpochRecord(epoch, total)
            result.history.append(record)
            if config.on_epoch is not None:
                config.on_epoch(record)
            validating = validate is not None and epoch % config.validation_rate == 0
            if validating:
                record.validation, record.monitored, record.metrics = _validate(model, validate, config)
            record.seconds = time.perf_counter() - started
            if validating:
                if result.best_value is None or record.validation > result.best_value:
                    result.best_epoch, result.best_value = epoch, record.validation
                    best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
                    if config.checkpoint_dir is not None:
                        _save(config.checkpoint_dir / "best-weights.pt", best_state)
                observed = [r.loss if monitor_loss else r.monitored for r in result.validations]
                result.stopped_early = bool(config.stop_rule(observed) if config.stop_rule
                                            else should_stop(config.early_stopping, observed))
                if config.early_stopping is not None and config.early_stopping.verbose:
                    log.info("%s: early stopping watches %s = %s (patience %d): %s", name,
                             config.early_stopping.monitor, _short(observed[-(config.early_stopping.patience + 1):]),
                             config.early_stopping.patience, "stop" if result.stopped_early else "go on")
            log.log(logging.INFO if config.verbose else logging.DEBUG, "%s: epoch %d/%d loss %.6g%s", name,
                    epoch, epochs, total, "" if record.validation is None else
                    f" {config.selection or 'validation'} {record.validation:.6g}")
            if config.checkpoint_dir is not None:
                _save(config.checkpoint_dir / "last.pt", {
                    "fingerprint": fingerprint, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "epoch": epoch, "history": [r.__dict__ for r in result.history],
                    "best_epoch": result.best_epoch, "best_value": result.best_value, "best_model": best_state,
                    "stopped_early": result.stopped_early, "divergence_reference": reference, "rng": _rng_state(),
                    "generators": generators(),
                    "sampler_rng": getattr(getattr(sampler, "rng", None), "bit_generator", None)
                    and sampler.rng.bit_generator.state})
            if config.history_path is not None:
                write_history(config.history_path, result.history, result.best_epoch)
            bar.set_postfix(loss=f"{total:.4f}")
            bar.update(1)
            if result.stopped_early:
                log.info("%s: early stop at epoch %d", name, epoch)
                break
        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        else:
            result.best_epoch = result.history[-1].epoch if result.history else None
        if config.history_path is not None and result.history:
            write_history(config.history_path, result.history, result.best_epoch)
        model.eval()
    return result


@contextlib.contextmanager
def _frozen_except(model: nn.Module) -> Iterator[None]:
    """While training: only ``model.trainable_parameters()`` (when defined) require gradients."""
    chosen = getattr(model, "trainable_parameters", None)
    if chosen is None:
        yield
        return
    flags = [(p, p.requires_grad) for p in model.parameters()]
    keep = {id(p) for p in chosen()}
    for parameter, _ in flags:
        parameter.requires_grad_(id(parameter) in keep)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def _validate(model: Recommender, validate: Callable[[Recommender], float | Mapping[str, float]],
              config: TrainingConfig) -> tuple[float, float, dict[str, float]]:
    """(selection value, early-stopping monitored value, every value); NaN counts as the worst value."""
    model.eval()
    with torch.inference_mode():
        outcome = validate(model)
    model.train()
    if isinstance(outcome, Mapping):
        value = float(outcome[config.selection])
        monitor = config.early_stopping.monitor if config.early_stopping is not None else config.selection
        monitored = float(outcome.get(monitor, value))
        values = {str(k): float(v) for k, v in outcome.items()}
    else:
        value = monitored = float(outcome)
        values = {config.selection or "validation": value}
    return (float("-inf") if math.isnan(value) else value), monitored, values


def _exploding(value: float, reference: float, config: TrainingConfig) -> str:
    return (f"a batch loss of {value:.4g} is over {config.divergence_factor:g} times the first batch's loss "
            f"({reference:.4g}, floored at 1): the loss is exploding while still finite")


def _short(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.5g}" for v in values) + "]"


def checkpoint_fingerprint(model: Recommender, data: Interactions,
                           features: Mapping[str, torch.Tensor] | None = None) -> str:
    """A hash of what a checkpoint's weights depend on: the split (ids, train, validation, test), the
    model family, its hyperparameters (``epochs`` aside, so a finished run may be extended), its
    feature buffers and the feature tensors it is trained with. A checkpoint whose fingerprint differs is refused instead of silently restored."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(model.family.encode())
    params = model.params.model_dump(mode="json") if hasattr(model.params, "model_dump") else dict(vars(model.params))
    params.pop("epochs", None)
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    for ids in (data.user_ids, data.item_ids):
        digest.update("\x1f".join(map(str, ids)).encode())
    for array in (data.train.indptr, data.train.indices, data.train.data):
        digest.update(np.ascontiguousarray(array).tobytes())
    for part in (data.validation, data.test):
        if part is None:
            digest.update(b"none")
            continue
        for array in (part.users, part.items, part.ratings):
            digest.update(np.ascontiguousarray(array).tobytes())
    tensors = [*sorted(model.named_buffers()), *sorted((features or {}).items())]
    for name, tensor in tensors:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _rng_state() -> dict[str, Any]:
    """Every global generator training may draw from (dropout: torch; legacy code: NumPy, ``random``),
    as plain types so that the checkpoint loads with ``weights_only=True``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": [name, keys.tolist(), pos, has_gauss, cached],
                             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any] | None) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"].cpu())
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(tuple(v if not isinstance(v, list) else tuple(v) for v in state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# The only non-tensor types a checkpoint holds beyond what ``weights_only`` already allows (dicts,
# lists, tuples, numbers, strings, tensors): none today; extend here, never with a callable.
SAFE_CHECKPOINT_GLOBALS: list[Any] = []


def _save(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getvalue())


def load_checkpoint_file(path: Path, device: torch.device | str = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``: a tampered file cannot run code; a refusal names the file."""
    try:
        with torch.serialization.safe_globals(SAFE_CHECKPOINT_GLOBALS):
            return torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"{path}: unreadable checkpoint ({error}); delete it or set meta.restore: false") from None
    except Exception as error:  # noqa: BLE001  the weights-only unpickler's refusal (pickle.UnpicklingError)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: refused to load: it holds objects outside the checkpoint allow-list "
                              f"({first}); it was not written by this package or was tampered with; delete it "
                              "or set meta.restore: false") from None


def _load_checkpoint(config: TrainingConfig, fingerprint: str) -> dict | None:
    if config.checkpoint_dir is None:
        return None
    path = config.checkpoint_dir / "last.pt"
    if not path.exists():
        return None
    state = load_checkpoint_file(path, config.device)
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        raise CheckpointError(f"{path}: the checkpoint was made with other data, split, hyperparameters or "
                              "features than this run's, so restoring it would report wrong numbers; delete "
                              "it (or its folder) to retrain, or set meta.restore: false")
    return state
