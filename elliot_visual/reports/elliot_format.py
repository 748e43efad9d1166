"""Elliot's report files, same names, columns and number formatting; every file written atomically.

``performance/rec_cutoff_<k>_relthreshold_<t>_<ts>.tsv``  one row per model entry (best configuration)
``performance/rec_<Family>_cutoff_<k>_relthreshold_<t>_<ts>.tsv``  every trial of a tuned entry
``performance/bestmodelparams_cutoff_<k0>_relthreshold_<t>_<ts>.json``
``performance/stat_paired_ttest_cutoff_<k>_...tsv`` / ``stat_wilcoxon_test_...tsv``  (when enabled)
``performance/triplets_rec_cutoff_<k>_...tsv``  (when ``print_results_as_triplets``)
``recs/<model name>.tsv``  headerless ``user \\t item \\t score``
``figures/visdiv_*.png``  visual-profile pictures, when the run computed profiles (reports/figures.py)
(the runner writes ``performance/manifest_<ts>.json`` after every file, see experiment.py)

Numbers are printed as pandas prints floats (``repr``: ``0.08499999999999998``, ``22.0``) and NaN
as an empty field, which is what Elliot's ``DataFrame.to_csv`` produces.
"""
from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from elliot_visual.reports.numbers import format_number, format_threshold
from elliot_visual.reports.summary import SummaryRow, write_summary
from elliot_visual.storage import (ResultPaths, atomic_write, safe_file_name, timestamp_suffix, write_json, write_text)

if TYPE_CHECKING:
    from elliot_visual.config.schema import Evaluation
    from elliot_visual.evaluation.visual_profiles import ProfileMap
    from elliot_visual.tuning.tune import ModelOutcome


@dataclass(frozen=True)
class ResultRow:
    """One line of a performance table: a model name and its metric values at one cutoff (a trial
    that failed or was stopped has only its reason, under ``failed`` / ``stopped``)."""

    model: str
    values: dict[str, float]


def performance_table(rows: Sequence[ResultRow]) -> str:
    """The TSV text: header ``model`` + metric columns (first row's order), one line per row."""
    columns: list[str] = []
    for row in rows:
        for name in row.values:
            if name not in columns:
                columns.append(name)
    for status in ("failed", "stopped"):  # why a trial has no metrics (tuning/tune.py), after the metrics
        if status in columns:
            columns = [c for c in columns if c != status] + [status]
    lines = ["\t".join(["model", *columns])]
    for row in rows:
        lines.append("\t".join([row.model, *(format_number(row.values.get(c)) for c in columns)]))
    return "\n".join(lines) + "\n"


def triplets_table(rows: Sequence[ResultRow]) -> str:
    """Long format ``model \\t metric \\t value`` with a header, as Elliot's triplets files."""
    lines = ["model\tmetric\tvalue"]
    for row in rows:
        lines.extend(f"{row.model}\t{metric}\t{format_number(v)}" for metric, v in row.values.items())
    return "\n".join(lines) + "\n"


def significance_table(rows: Iterable[tuple[str, str, str, float]]) -> str:
    """Headerless ``modelA \\t modelB \\t metric \\t p`` lines (both orderings supplied by the caller)."""
    return "".join(f"{a}\t{b}\t{m}\t{float(p)!r}\n" for a, b, m, p in rows)


def write_performance(paths: ResultPaths, cutoff: int, threshold: float | int, stamp: str,
                      rows: Sequence[ResultRow], family: str | None = None, triplets: bool = False,
                      table: str = "rec") -> list[Path]:
    """Write one cutoff's performance table (and its triplets twin when asked); ``table`` is the
    task's report family (``rec`` for the ranking tasks, as Elliot names it)."""
    prefix = f"{table}_{family}_" if family else f"{table}_"
    name = f"{prefix}cutoff_{cutoff}_relthreshold_{format_threshold(threshold)}_{stamp}.tsv"
    written = [write_text(paths.performance / name, performance_table(rows))]
    if triplets:
        written.append(write_text(paths.performance / f"triplets_{name}", triplets_table(rows)))
    return written


def write_best_params(paths: ResultPaths, cutoff: int, threshold: float | int, stamp: str,
                      default_metric: str, entries: list[dict[str, Any]]) -> Path:
    """``bestmodelparams_...json``: Elliot's header object, then one ``{meta, recommender, configuration}`` each."""
    header = {"default_validation_metric": default_metric, "default_validation_cutoff": cutoff,
              "rel_threshold": threshold}
    name = f"bestmodelparams_cutoff_{cutoff}_relthreshold_{format_threshold(threshold)}_{stamp}.json"
    return write_json(paths.performance / name, [header, *entries])


def write_significance(paths: ResultPaths, test: str, cutoff: int, threshold: float | int, stamp: str,
                       rows: Iterable[tuple[str, str, str, float]], label: str = "") -> Path:
    """``stat_paired_ttest_...tsv`` or ``stat_wilcoxon_test_...tsv`` (``stat_<test>_<label>_cutoff_...``
    with a ``label``, e.g. ``visdiv`` for the offline command's tests)."""
    infix = f"{label}_" if label else ""
    name = f"stat_{test}_{infix}cutoff_{cutoff}_relthreshold_{format_threshold(threshold)}_{stamp}.tsv"
    return write_text(paths.performance / name, significance_table(rows))


def write_recommendations(paths: ResultPaths, model_name: str, user_ids: np.ndarray,
                          item_ids: np.ndarray, scores: np.ndarray) -> Path:
    """``recs/<model name>.tsv``: ``user \\t item \\t score`` per line, users in order, items by rank.

    ``item_ids`` is (n_users, k) of public ids (``None`` where a user had fewer candidates).
    """
    target = paths.recs / f"{safe_file_name(model_name)}.tsv"
    buffer = io.StringIO()
    for user, items, values in zip(user_ids, item_ids, scores):
        for item, value in zip(items, values):
            if item is None or (isinstance(item, float) and math.isnan(item)):
                continue
            buffer.write(f"{user}\t{item}\t{float(value)!r}\n")
    with atomic_write(target, "w") as handle:
        handle.write(buffer.getvalue())
    return target


def write_reports(evaluation: "Evaluation", outcomes: "Sequence[ModelOutcome]",
                  significance: dict[str, dict[int, list[tuple[str, str, str, float]]]],
                  paths: ResultPaths, stamp: str | None = None, profiles: "Sequence[ProfileMap]" = (),
                  *, triplets: bool = False) -> list[Path]:
    """Every Elliot report file of one run, and its figures; returns the paths written.

    ``evaluation`` is the experiment's section (cutoffs, threshold, metrics); ``triplets`` its
    ``print_results_as_triplets``.

    ``significance`` maps ``paired_ttest`` / ``wilcoxon_test`` to per-cutoff rows; ``profiles``
    are the VisDiv maps computed after tuning (a grid per user: one row per model family, one
    column per backbone when every entry reads one).
    """
    stamp = stamp or timestamp_suffix()
    threshold = evaluation.relevance_threshold
    written: list[Path] = []
    tables = list(dict.fromkeys(o.table for o in outcomes)) or ["rec"]  # each task's rows go to its own table
    for cutoff in evaluation.cutoffs:
        rows: list[ResultRow] = []
        for table in tables:
            rows = [ResultRow(o.best.name, o.best.test.values[cutoff]) for o in outcomes if o.table == table]
            written += write_performance(paths, cutoff, threshold, stamp, rows,
                                         triplets=triplets, table=table)
            trial_rows: dict[str, list[ResultRow]] = {}  # one file per family: a loader list gives several outcomes
            for outcome in outcomes:
                if outcome.spec.is_tuned and outcome.table == table:
                    trial_rows.setdefault(outcome.family, []).extend(
                        ResultRow(t.name, t.test.values[cutoff]) for t in outcome.trials)
            for family, family_rows in trial_rows.items():
                written += write_performance(paths, cutoff, threshold, stamp, family_rows, family=family,
                                             triplets=triplets, table=table)
        ranked = [o for o in outcomes if o.table == "rec"]
        summary = [SummaryRow(o.family, o.loader or "-", o.best.test.values[cutoff]) for o in ranked]
        columns = list(ranked[0].best.test.values[cutoff]) if ranked else []
        written += write_summary(paths, cutoff, threshold, stamp, summary, columns) if ranked else []
        for test, per_cutoff in significance.items():
            if cutoff in per_cutoff:
                written.append(write_significance(paths, test, cutoff, threshold, stamp, per_cutoff[cutoff]))
    first_metric = evaluation.simple_metrics[0] if evaluation.simple_metrics else ""
    entries = [{"meta": o.spec.meta.model_dump(exclude_none=True),
                "recommender": o.best.name,
                "configuration": {**o.best.params.model_dump(mode="json"),
                                  **({"loader": o.loader} if o.loader is not None else {}), "name": o.best.name,
                                  **({"best_iteration": o.best.best_iteration}
                                     if o.best.best_iteration is not None else {})}}
               for o in outcomes]
    written.append(write_best_params(paths, evaluation.cutoffs[0], threshold, stamp, first_metric, entries))
    for outcome in outcomes:
        if outcome.spec.meta.save_recs:
            for trial in outcome.trials:
                recs = trial.recommendations
                if recs is None:  # a task that ranks no item (multilabel), a failed or stopped trial
                    continue
                written.append(write_recommendations(paths, trial.name, recs.user_ids, recs.item_ids,
                                                     recs.scores))
    for outcome in outcomes:
        artifacts = outcome.best.artifacts
        if "preference" in artifacts:  # a temporal model's learned trends
            from elliot_visual.reports.trends import write_trend_figures

            written += write_trend_figures(outcome.best.name, artifacts, paths.figures,
                                           artifacts.get("feature_names"), outcome.spec.meta.trend_features)
    from elliot_visual.reports.label_curves import write_label_curves

    written += write_label_curves(outcomes, paths.figures, stamp)  # multilabel entries: P/R/F1 against k
    if profiles:
        from elliot_visual.reports.figures import write_profile_figures

        backbones = [o.loader for o in outcomes]
        columns = len(set(backbones)) if all(backbones) and len(set(backbones)) > 1 else None
        written += write_profile_figures(profiles, paths.figures, columns=columns)
    return written
