"""The ImageNet-transfer study of del Rio et al. (RecSys KTL 2018): its two tables from a run's outcomes.

"Do Better ImageNet Models Transfer Better... for Image Recommendation?": the model entries of the
``transactions`` task (:mod:`elliot_visual.evaluation.tasks.transactions`, the per-transaction
rolling protocol) are tuned and evaluated by the ordinary runner; a ``loader`` list compares
feature sets, one row each. This module turns those rows into the study's tables
(:mod:`elliot_visual.reports.transfer_tables`):

* backbones: frozen feature sets beside their backbone's ImageNet top-1 / top-5, read from the
  weights' own metadata (torchvision's) or, for weights that carry none (timm, Keras,
  EfficientNet-Lite), from ``evaluation.transactions.imagenet_accuracy`` in the config, each
  figure with its source; Spearman's rank correlation of accuracy with each metric under it;
* fine-tuning: feature sets written by ``finetune`` blocks (their ``metadata.json`` says mode
  and tasks) beside the frozen row of the same backbone.

A feature set's backbone is read from the ``metadata.json`` extraction writes beside it.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from elliot_visual.config.schema import Evaluation, ImageNetFigures, Transactions
from elliot_visual.reports.transfer_tables import (BackboneRow, FinetuneRow, RankCorrelation,
                                                   write_transfer_tables)
from elliot_visual.storage import ResultPaths, timestamp_suffix

if TYPE_CHECKING:
    from elliot_visual.features.store import SplitFeatures
    from elliot_visual.tuning.tune import ModelOutcome

log = logging.getLogger(__name__)
FEATURE_KIND = "visual_features"
TASK = "transactions"


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
    """One evaluated model entry: its report name, family, feature set and test values."""

    name: str
    family: str
    loader: str | None
    provenance: Provenance | None
    values: dict[int, dict[str, float]]


def check_accuracy_keys(options: Transactions) -> None:
    """Every key of ``evaluation.transactions.imagenet_accuracy`` must name a registered backbone
    (checked before any work)."""
    from elliot_visual.extraction.catalogue import get_backbone

    for name in options.imagenet_accuracy:
        try:
            get_backbone(name)
        except KeyError as error:
            raise ValueError(f"evaluation.transactions.imagenet_accuracy.{name}: {error}") from None


def study_entries(outcomes: "list[ModelOutcome]", features: "SplitFeatures", data: Any) -> list[StudyEntry]:
    """The outcomes of the ``transactions`` task, each with the provenance of its feature set."""
    entries = []
    store = features.store(data) if features.namespaces else None
    for outcome in outcomes:
        if outcome.task != TASK:
            continue
        provenance = feature_provenance(store, outcome.loader) if outcome.loader and store else None
        entries.append(StudyEntry(outcome.best.name, outcome.family, outcome.loader, provenance,
                                  outcome.best.test.values))
    return entries


def write_transfer_study(evaluation: Evaluation, outcomes: "list[ModelOutcome]", features: "SplitFeatures",
                         data: Any, paths: ResultPaths) -> list[Path]:
    """Both tables at every cutoff, for the run's ``transactions`` entries (none: nothing written)."""
    entries = study_entries(outcomes, features, data)
    if not entries:
        return []
    configured = (evaluation.transactions or Transactions()).imagenet_accuracy
    stamp = timestamp_suffix()
    files: list[Path] = []
    for k in sorted(entries[0].values):
        columns = list(entries[0].values[k])
        backbones = backbone_rows(entries, k, configured)
        files += write_transfer_tables(paths, k, stamp, columns, backbones, rank_correlations(backbones, columns),
                                       finetune_rows(entries, k))
    return files


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
    from elliot_visual.extraction.catalogue import get_backbone

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
