"""The ImageNet-transfer study of del Rio et al. (RecSys KTL 2018), run from one config.

"Do Better ImageNet Models Transfer Better... for Image Recommendation?": every model entry is
evaluated under the per-transaction rolling protocol (``evaluation.transactions``,
:mod:`elliot_visual.evaluation.transactions`); a ``loader`` list compares feature sets, one row
each. The rows become the study's two tables (:mod:`elliot_visual.reports.transfer_tables`):

* backbones — frozen feature sets beside their backbone's ImageNet top-1 / top-5, read from the
  weights' own metadata (torchvision's) or, for weights that carry none (timm, Keras,
  EfficientNet-Lite), from ``evaluation.transactions.imagenet_accuracy`` in the config, each
  figure with its source; Spearman's rank correlation of accuracy with each metric under it;
* fine-tuning — feature sets written by ``finetune`` blocks (their ``metadata.json`` says mode
  and tasks) beside the frozen row of the same backbone.

The protocol rolls over every purchase, so the configured split only fixes the catalogue;
nothing is selected on validation (VisRank and Random have no hyperparameter to tune), so a
searched hyperparameter other than ``loader`` is refused. This runner is the transaction task's
until the tasks seam (issue 10) lets the tuner ask a task for its evaluation.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from elliot_visual.config.schema import Experiment, ImageNetFigures, ModelSpec
from elliot_visual.data.loading import check_inputs_exist, prepare_data
from elliot_visual.evaluation.evaluator import build_metrics
from elliot_visual.evaluation.metrics.base import Metric
from elliot_visual.evaluation.transactions import TransactionView, evaluate_transactions, transaction_view
from elliot_visual.features.store import SplitFeatures, side_information_provider
from elliot_visual.models.base import build_model
from elliot_visual.registry import MODELS
from elliot_visual.reports.elliot_format import ResultRow, write_performance
from elliot_visual.reports.transfer_tables import (BackboneRow, FinetuneRow, RankCorrelation,
                                                   write_transfer_tables)
from elliot_visual.storage import timestamp_suffix
from elliot_visual.training.loop import resolve_device, set_cpu_threads
from elliot_visual.tuning.tune import comparison_variants

log = logging.getLogger(__name__)
FEATURE_KIND = "visual_features"


@dataclass(frozen=True)
class Provenance:
    """Where a feature set comes from: its backbone (registry name), backend, weights tag and,
    for a fine-tuned extractor, the ``finetune`` record of its ``metadata.json``."""

    backbone: str
    backend: str
    weights: dict[str, Any]
    finetune: dict[str, Any] | None


@dataclass(frozen=True)
class StudyEntry:
    """One evaluated model entry: its report name, family, feature set and metric values."""

    name: str
    family: str
    loader: str | None
    provenance: Provenance | None
    values: dict[int, dict[str, float]]
    n_transactions: int


@dataclass
class TransferSummary:
    """What a study run produced (the runner's ``RunSummary`` shape: ``files`` among them)."""

    experiment: Experiment
    entries: list[StudyEntry]
    backbones: dict[int, list[BackboneRow]]
    correlations: dict[int, list[RankCorrelation]]
    finetuned: dict[int, list[FinetuneRow]]
    files: list[Path]
    outcomes: tuple = ()


def run_transfer_study(exp: Experiment) -> TransferSummary:
    """Extract / fine-tune what is missing, evaluate every entry per transaction, write both tables."""
    from elliot_visual.experiment import result_paths, run_extraction_blocks

    options = exp.evaluation.transactions
    if options is None:
        raise ValueError(f"{exp.config_path}: the transfer study needs evaluation.transactions "
                         "(window, one_of_a_kind)")
    variants = [variant for spec in exp.models for variant in comparison_variants(spec)]
    for variant in variants:                                   # fail before any extraction
        check_entry(variant)
    check_accuracy_keys(options.imagenet_accuracy)
    check_inputs_exist(exp)
    set_cpu_threads(exp.threads)
    run_extraction_blocks(exp)
    paths = result_paths(exp).create()
    folds, features = side_information_provider(exp, prepare_data(exp))
    view = transaction_view(folds[0][0], options)
    log.info("%s: %d transactions evaluated (%d skipped), one_of_a_kind=%s, window=%gs", exp.dataset,
             view.profiles.n_users, view.skipped, options.one_of_a_kind, options.window)
    metrics = build_metrics(exp.evaluation)
    cutoffs = list(exp.evaluation.cutoffs) or [exp.top_k]
    entries = [evaluate_entry(variant, view, features, metrics, cutoffs, exp) for variant in variants]
    columns = [m.column(cutoffs[0]) for m in metrics]
    stamp = timestamp_suffix()
    files: list[Path] = []
    backbones, correlations, finetuned = {}, {}, {}
    for k in cutoffs:
        files += write_performance(paths, k, exp.evaluation.relevance_threshold, stamp,
                                   [ResultRow(e.name, e.values[k]) for e in entries])
        backbones[k] = backbone_rows(entries, k, options.imagenet_accuracy)
        correlations[k] = rank_correlations(backbones[k], columns)
        finetuned[k] = finetune_rows(entries, k)
        files += write_transfer_tables(paths, k, stamp, columns, backbones[k], correlations[k], finetuned[k])
    return TransferSummary(exp, entries, backbones, correlations, finetuned, files)


def check_entry(spec: ModelSpec) -> None:
    """Refuse an entry the protocol cannot serve: a searched hyperparameter, a gradient-trained model."""
    cls = MODELS.get(spec.name)
    if spec.search:
        raise ValueError(f"models.{spec.key}: {', '.join(spec.search)} searched, but the transactions protocol "
                         "selects nothing on validation; give one value each (a list under 'loader' compares)")
    if cls.is_gradient_model():
        raise ValueError(f"models.{spec.key}: {cls.family} trains through loss(batch); the transactions protocol "
                         "serves profile-based models with fit(data) (VisRank, Random)")


def check_accuracy_keys(configured: dict[str, ImageNetFigures]) -> None:
    """Every key of ``evaluation.transactions.imagenet_accuracy`` must name a registered backbone."""
    from elliot_visual.extraction.backbones import get_backbone

    for name in configured:
        try:
            get_backbone(name)
        except KeyError as error:
            raise ValueError(f"evaluation.transactions.imagenet_accuracy.{name}: {error}") from None


def evaluate_entry(spec: ModelSpec, view: TransactionView, features: SplitFeatures, metrics: list[Metric],
                   cutoffs: list[int], exp: Experiment) -> StudyEntry:
    """Build ``spec``'s model for the rolling profiles and evaluate it per transaction."""
    cls = MODELS.get(spec.name)
    params = cls.Params(**spec.params)
    model = build_model(cls, params, view.profiles.n_users, view.profiles.n_items,
                        features(cls, params, view.profiles))
    result = evaluate_transactions(model.to(resolve_device(exp.gpu)), view, metrics, cutoffs, exp.top_k,
                                   device=resolve_device(exp.gpu))
    name = cls.report_name(params)
    loader = getattr(params, "loader", None) if cls.needs else None
    provenance = feature_provenance(features.store(view.profiles), loader) if loader else None
    first = cutoffs[0]
    log.info("%s: %s", name, ", ".join(f"{c}@{first} {v:.4f}" for c, v in result.values[first].items()))
    return StudyEntry(name, cls.family, loader, provenance, result.values, result.n_transactions)


def feature_provenance(store: Any, loader: str) -> Provenance | None:
    """The ``metadata.json`` that extraction / fine-tuning wrote beside the loader's features."""
    origin = Path(store.source(loader, FEATURE_KIND).origin)
    for folder in (origin, origin.parent):
        meta_file = folder / "metadata.json"
        if meta_file.is_file():
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            return Provenance(meta.get("backbone", loader), meta.get("backend", "torch"),
                              meta.get("weights") or {}, meta.get("finetune"))
    log.warning("side information '%s' (%s) has no metadata.json: its backbone is unknown to the tables",
                loader, origin)
    return None


def imagenet_accuracy(provenance: Provenance, configured: dict[str, ImageNetFigures]
                      ) -> tuple[float | None, float | None, str]:
    """(top-1, top-5, source): the weights' own metadata first, then the config's figures."""
    from elliot_visual.extraction.backbones import get_backbone

    if provenance.weights.get("kind") == "pretrained":
        backbone = get_backbone(provenance.backbone, provenance.backend)
        found = backbone.imagenet_accuracy(provenance.weights.get("tag"))
        if found is not None:
            if provenance.backbone in configured:
                log.warning("evaluation.transactions.imagenet_accuracy.%s ignored: the weights' metadata "
                            "give %.3f (%s)", provenance.backbone, found.top1, found.source)
            return found.top1, found.top5, found.source
    given = configured.get(provenance.backbone)
    if given is not None:
        return given.top1, given.top5, f"config: {given.source}"
    return None, None, f"not in the weights' metadata ({provenance.weights.get('kind', 'unknown')} weights)"


def backbone_rows(entries: list[StudyEntry], k: int, configured: dict[str, ImageNetFigures]) -> list[BackboneRow]:
    """Table 1: models without visual input, then every frozen feature set (fine-tuned ones go to Table 2)."""
    rows = []
    for entry in entries:
        if entry.provenance is not None and entry.provenance.finetune is not None:
            continue
        if entry.provenance is None:
            rows.append(BackboneRow(entry.family, entry.loader or "-", None, None, "", entry.values[k]))
            continue
        top1, top5, source = imagenet_accuracy(entry.provenance, configured)
        rows.append(BackboneRow(entry.family, entry.loader, top1, top5, source, entry.values[k]))
    return rows


def rank_correlations(rows: list[BackboneRow], columns: list[str]) -> list[RankCorrelation]:
    """Spearman's rho of ImageNet top-1 (and top-5) with each metric, per model, over >= 3 backbones."""
    from scipy.stats import spearmanr

    out = []
    for model in dict.fromkeys(r.model for r in rows):
        for label, attribute in (("top-1", "top1"), ("top-5", "top5")):
            known = [r for r in rows if r.model == model and getattr(r, attribute) is not None]
            if len(known) < 3:
                continue
            accuracy = np.array([getattr(r, attribute) for r in known], dtype=np.float64)
            for column in columns:
                values = np.array([r.values.get(column, np.nan) for r in known], dtype=np.float64)
                rho, p_value = spearmanr(accuracy, values)
                out.append(RankCorrelation(f"{label} ({model})", column, float(rho), float(p_value), len(known)))
    return out


def finetune_rows(entries: list[StudyEntry], k: int) -> list[FinetuneRow]:
    """Table 2: per fine-tuned backbone, its frozen row (when evaluated), then each fine-tuned extractor."""
    tuned = [e for e in entries if e.provenance is not None and e.provenance.finetune is not None]
    rows = []
    for model, backbone in dict.fromkeys((e.family, e.provenance.backbone) for e in tuned):
        frozen = [e for e in entries if e.family == model and e.provenance is not None
                  and e.provenance.finetune is None and e.provenance.backbone == backbone]
        rows += [FinetuneRow(model, backbone, "frozen", "-", e.values[k]) for e in frozen[:1]]
        for entry in tuned:
            if (entry.family, entry.provenance.backbone) == (model, backbone):
                record = entry.provenance.finetune
                rows.append(FinetuneRow(model, backbone, str(record.get("mode")), describe_tasks(record),
                                        entry.values[k]))
    return rows


def describe_tasks(record: dict[str, Any]) -> str:
    """``style (CE, w=1) + year (MAE, w=0.5)`` from a fine-tuning record's tasks."""
    parts = []
    for task in record.get("tasks", []):
        loss = "CE" if task.get("kind") == "categorical" else "MAE"
        parts.append(f"{task.get('column')} ({loss}, w={float(task.get('weight', 1.0)):g})")
    return " + ".join(parts) or "-"
