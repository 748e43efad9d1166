"""``elliot-visual visdiv``: VisDiv values and visual-profile pictures from saved recommendation files.

Nothing is retrained. The config gives the data (split as the run split it), the side information
and the ``VisDiv`` entries of ``evaluation.complex_metrics``; the recommendations are Elliot's
``recs/<model name>.tsv`` files (headerless ``user \\t item \\t score``, items in rank order). As in
an evaluation, the users are those with a test row; their positives are their train items.

Written (``<stamp>`` as Elliot's file names):

The values are computed by the evaluator a run uses (``evaluate_lists`` with the VisDiv entries)
and written by the run's report writers:

* ``performance/rec_cutoff_<k>_relthreshold_<t>_<stamp>.tsv``: Elliot's performance table, one row
  per model, one column per VisDiv entry (as a run writes it);
* ``performance/visdiv_<stamp>.tsv``: one row per model and cutoff, one column per VisDiv entry
  (``model \\t cutoff \\t VisDiv[global] ...``);
* ``performance/visdiv_per_user_<stamp>.tsv``: ``model \\t cutoff \\t metric \\t user \\t value``
  for every user with a value (for significance tests, and to pick users to draw);
* ``performance/stat_<test>_visdiv_cutoff_<k>_relthreshold_<t>_<stamp>.tsv`` when ``paired_ttest``
  / ``wilcoxon_test`` is on (Elliot's headerless ``modelA \\t modelB \\t metric \\t p`` rows);
* ``figures/visdiv_<entry>_at<k>_user<u>_<model>.png``: one user's profile under one model, and
  ``figures/visdiv_user<u>_grid.png``: that user under every model (columns) and VisDiv entry
  (rows, e.g. one per backbone's features).

The maps are computed by :mod:`elliot_visual.evaluation.visual_profiles` and drawn by
:func:`elliot_visual.reports.figures.write_profile_figures`, the path the experiment runner takes
after a run (for each model entry's best configuration); this module adds reading the saved lists
and the tables.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from elliot_visual.config import load_experiment
from elliot_visual.config.schema import Evaluation
from elliot_visual.data.interactions import Interactions
from elliot_visual.data.loading import prepare_data
from elliot_visual.evaluation.evaluator import EvaluationResult, evaluate_lists
from elliot_visual.evaluation.metrics.visdiv import VisDiv, VisDivEngine, evaluation_features
from elliot_visual.evaluation.ranking import TopK
from elliot_visual.evaluation.significance import compare_models
from elliot_visual.experiment import result_paths
from elliot_visual.evaluation.visual_profiles import ItemFeatures, engine_for, visdiv_entries, visual_profiles
from elliot_visual.features.store import load_side_information
from elliot_visual.reports.elliot_format import ResultRow, write_performance, write_significance
from elliot_visual.reports.figures import write_profile_figures
from elliot_visual.reports.visdiv import write_visdiv_tables
from elliot_visual.storage import ResultPaths, timestamp_suffix, write_text

log = logging.getLogger(__name__)


@dataclass
class VisDivOutputs:
    """What :func:`visdiv_report` computed and wrote."""

    table: Path
    per_user: Path
    values: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    performance: list[Path] = field(default_factory=list)
    significance: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------
def run_visdiv(config_path: Path, recs: list[Path] | None = None) -> Path:
    """Compute VisDiv and draw the pictures for saved recommendations; returns the values table."""
    exp = load_experiment(config_path)
    folds = prepare_data(exp.data, verbose=False)
    if len(folds) > 1 or len(folds[0]) > 1:
        log.warning("the config yields %d test folds x %d validation folds; VisDiv uses the first (the train "
                    "part the first fold's models were trained on)", len(folds), len(folds[0]))
    data = folds[0][0]
    if not exp.data_config.side_information:
        raise ValueError(f"{config_path}: VisDiv needs item visual features, but data_config.side_information "
                         "is empty; declare the loader that reads them (e.g. '- dataloader: VisualAttribute')")
    store, data = load_side_information(
        exp.data_config.side_information, data,
        drop_items_without_features=exp.data_config.drop_items_without_features,
        cold_items=getattr(exp.data_config, "cold_items", "held_out"),
        base_dir=exp.data.base_dir, dataset=exp.dataset)
    files = list(recs) if recs else sorted(Path(exp.path_output_rec_result).glob("*.tsv"))
    if not files:
        raise FileNotFoundError(f"no recommendation files in {exp.path_output_rec_result}; run the models with "
                                "meta.save_recs: True, or pass files with --recs")
    length = max(max(exp.evaluation.cutoffs, default=exp.top_k), exp.top_k)
    lists = {path.stem: read_recommendations(path, data, length) for path in files}
    return visdiv_report(exp.evaluation, result_paths(exp), data, store, lists).table


# --------------------------------------------------------------------------------------------
# Reading saved lists
# --------------------------------------------------------------------------------------------
def read_recommendations(path: Path, data: Interactions, k: int) -> TopK:
    """Elliot's ``recs/<model>.tsv`` as a :class:`TopK` over every user of ``data``.

    Rows ``user \\t item \\t score`` in rank order; the first ``k`` items per user are kept. Users of
    the file unknown to the data are ignored (logged); items unknown to the catalogue are an
    error naming them. Users absent from the file get an empty list (``-1``).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"recommendation file {path} does not exist")
    frame = pd.read_csv(path, sep="\t", header=None, dtype={0: str, 1: str}, keep_default_na=False,
                        usecols=[0, 1, 2], names=["user", "item", "score"], quoting=3)
    users = frame["user"].map(data.user_index)
    unknown_users = frame.loc[users.isna(), "user"].unique()
    if unknown_users.size:
        log.warning("%s: %d users are not in the data's train set and are ignored (first: %s)", path,
                    unknown_users.size, ", ".join(unknown_users[:5]))
    frame = frame.assign(u=users).loc[users.notna()]
    items = frame["item"].map(data.item_index)
    if items.isna().any():
        unknown = frame.loc[items.isna(), "item"].unique()
        raise ValueError(f"{path}: {unknown.size} recommended items are not in the dataset's catalogue, so they "
                         f"have no features (first: {', '.join(map(str, unknown[:10]))}); check that the file "
                         "belongs to this config's dataset and side information")
    frame = frame.assign(i=items.astype(np.int64), u=frame["u"].astype(np.int64))
    frame["rank"] = frame.groupby("u", sort=False).cumcount()
    frame = frame[frame["rank"] < k]
    matrix = np.full((data.n_users, k), -1, dtype=np.int64)
    scores = np.full((data.n_users, k), -np.inf, dtype=np.float32)
    at = (frame["u"].to_numpy(), frame["rank"].to_numpy())
    matrix[at] = frame["i"].to_numpy()
    scores[at] = pd.to_numeric(frame["score"], errors="coerce").to_numpy()
    return TopK(users=np.arange(data.n_users, dtype=np.int64), items=matrix, scores=scores)


# --------------------------------------------------------------------------------------------
# Computing and writing
# --------------------------------------------------------------------------------------------
def visdiv_metrics(evaluation: Evaluation) -> list[VisDiv]:
    """The config's ``VisDiv`` entries, constructed; a default one when the config names none."""
    metrics = visdiv_entries(evaluation)
    if not metrics:
        log.info("no VisDiv entry in evaluation.complex_metrics; using the defaults (projection: global)")
        metrics = [VisDiv()]
    return metrics


def visdiv_report(evaluation: Evaluation, paths: ResultPaths, data: Interactions, store: ItemFeatures,
                  recommendations: Mapping[str, TopK], stamp: str | None = None) -> VisDivOutputs:
    """VisDiv of every model at every cutoff of every entry, per-user values, tests and pictures.

    The values come from the evaluator a run uses (:func:`evaluate_lists` on the saved lists, the
    test part's users) and go out through the run's writers: Elliot's ``rec_cutoff_<k>`` tables
    and ``stat_<test>_visdiv_cutoff_<k>`` tables, plus the VisDiv tables of :mod:`.reports.visdiv`.
    """
    stamp = stamp or timestamp_suffix()
    metrics = visdiv_metrics(evaluation)
    features = evaluation_features(metrics, store)
    cutoffs = sorted({k for m in metrics for k in (m.options.cutoffs or evaluation.cutoffs)})
    for model, top in recommendations.items():
        if max(cutoffs) > top.k:
            raise ValueError(f"cutoff {max(cutoffs)} exceeds the {top.k} recommendations kept for {model}")
    results = {model: evaluate_lists(top, data, "test", evaluation, metrics, features, cutoffs=cutoffs,
                                     per_user=True)
               for model, top in recommendations.items()}
    applies = {k: [m.column(k) for m in metrics if m.applies_to(k)] for k in cutoffs}
    values = {model: {k: {c: result.values[k][c] for c in applies[k]} for k in cutoffs if applies[k]}
              for model, result in results.items()}
    per_user = {model: {k: {c: result.per_user[k][c] for c in applies[k]} for k in cutoffs if applies[k]}
                for model, result in results.items()}
    for model, by_k in values.items():
        for k, row in by_k.items():
            for column, value in row.items():
                log.info("%s %s@%d = %.5f", model, column, k, value)
    columns = list(dict.fromkeys(c for k in cutoffs for c in applies[k]))
    table, per_user_file = write_visdiv_tables(paths, stamp, columns, values, per_user)
    outputs = VisDivOutputs(table=table, per_user=per_user_file, values=values)
    threshold = evaluation.relevance_threshold
    for k in cutoffs:
        if applies[k]:
            rows = [ResultRow(model, values[model][k]) for model in values]
            outputs.performance += write_performance(paths, k, threshold, stamp, rows)
    if len(recommendations) > 1:
        restricted = {model: EvaluationResult(values[model], results[model].recommendations, per_user[model])
                      for model in results}
        for test, by_cutoff in compare_models(restricted, evaluation).items():
            for k, rows in by_cutoff.items():
                outputs.significance.append(write_significance(paths, test, k, threshold, stamp, rows,
                                                               label="visdiv"))
    # Beside the run's own pictures, never over them: figures/offline_<time>/, with short model names.
    outputs.figures = visdiv_figures(evaluation, paths, data, recommendations, metrics,
                                     [engine_for(m, store, data) for m in metrics],
                                     folder=paths.figures / f"offline_{stamp}", short_names=True)
    return outputs


def visdiv_figures(evaluation: Evaluation, paths: ResultPaths, data: Interactions,
                   recommendations: Mapping[str, TopK], metrics: Sequence[VisDiv] | None = None,
                   engines: Sequence[VisDivEngine] | None = None, store: ItemFeatures | None = None,
                   folder: Path | None = None, short_names: bool = False) -> list[Path]:
    """Profile pictures of the configured (or sampled) users under every model, and their grids
    (columns: models; rows: VisDiv entries), in ``folder`` (default: the figures folder). With
    ``short_names`` file names use the model family (``VBPR``, ``VBPR-2``...) instead of the full
    report name; ``models.tsv`` in the folder maps each short name to the full one.
    See :mod:`elliot_visual.evaluation.visual_profiles`."""
    metrics = list(metrics) if metrics is not None else visdiv_metrics(evaluation)
    if engines is None:
        if store is None:
            raise ValueError("visdiv_figures needs the feature store (store=...) or prepared engines")
        engines = [engine_for(m, store, data) for m in metrics]
    profiles = visual_profiles(data, recommendations, metrics, engines, evaluation.cutoffs)
    target = Path(folder) if folder is not None else paths.figures
    written = []
    if short_names:
        short = short_model_names(list(recommendations))
        profiles = [replace(p, model=short[p.model]) if p.model in short else p for p in profiles]
        written.append(write_text(target / "models.tsv", "short\tmodel\n" + "".join(
            f"{s}\t{m}\n" for m, s in short.items())))
    return write_profile_figures(profiles, target, columns=len(recommendations)) + written


def short_model_names(models: Sequence[str]) -> dict[str, str]:
    """``VBPR_e=20_bs=64...`` -> ``VBPR``; a family seen again gets ``-2``, ``-3``..."""
    out: dict[str, str] = {}
    counts: dict[str, int] = {}
    for model in models:
        family = model.split("_")[0] or model
        counts[family] = counts.get(family, 0) + 1
        out[model] = family if counts[family] == 1 else f"{family}-{counts[family]}"
    return out


__all__ = ["run_visdiv", "read_recommendations", "visdiv_report", "visdiv_figures",
           "visdiv_metrics", "engine_for"]
