"""``elliot-visual visdiv``: VisDiv values and visual-profile pictures from saved recommendation files.

Nothing is retrained. The config gives the data (split as the run split it), the side information
and the ``VisDiv`` entries of ``evaluation.complex_metrics``; the recommendations are Elliot's
``recs/<model name>.tsv`` files (headerless ``user \\t item \\t score``, items in rank order). As in
an evaluation, the users are those with a test row; their positives are their train items.

Written (``<stamp>`` as Elliot's file names):

* ``performance/visdiv_<stamp>.tsv``: one row per model and cutoff, one column per VisDiv entry
  (``model \\t cutoff \\t VisDiv[global] ...``);
* ``performance/visdiv_per_user_<stamp>.tsv``: ``model \\t cutoff \\t metric \\t user \\t value``
  for every user with a value (for significance tests, and to pick users to draw);
* ``performance/stat_<test>_visdiv_cutoff_<k>_<stamp>.tsv`` when ``paired_ttest`` /
  ``wilcoxon_test`` is on (Elliot's headerless ``modelA \\t modelB \\t metric \\t p`` rows);
* ``figures/visdiv_<entry>_at<k>_user<u>_<model>.png``: one user's profile under one model, and
  ``figures/visdiv_user<u>_grid.png``: that user under every model (columns) and VisDiv entry
  (rows, e.g. one per backbone's features).

The maps are computed by :mod:`elliot_visual.evaluation.visual_profiles` and drawn by
:func:`elliot_visual.reports.figures.write_profile_figures`, the path the experiment runner takes
after a run (for each model entry's best configuration); this module adds reading the saved lists
and the tables.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from elliot_visual.config import load_experiment
from elliot_visual.config.schema import Experiment
from elliot_visual.data.interactions import Interactions
from elliot_visual.data.loading import prepare_data
from elliot_visual.evaluation.metrics.visdiv import VisDiv, VisDivEngine
from elliot_visual.evaluation.ranking import TopK
from elliot_visual.evaluation.significance import requested_tests, significance_table
from elliot_visual.evaluation.visual_profiles import (ItemFeatures, engine_for, evaluated_lists, visdiv_entries,
                                                      visual_profiles)
from elliot_visual.features.store import load_side_information
from elliot_visual.reports.elliot_format import significance_table as significance_text
from elliot_visual.reports.figures import write_profile_figures
from elliot_visual.storage import timestamp_suffix, write_text

log = logging.getLogger(__name__)


@dataclass
class VisDivOutputs:
    """What :func:`visdiv_report` computed and wrote."""

    table: Path
    per_user: Path
    values: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    significance: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------
def main_visdiv(argv: Sequence[str]) -> int:
    """``elliot-visual visdiv --config PATH [--recs FILE ...]``."""
    parser = argparse.ArgumentParser(prog="elliot-visual visdiv",
                                     description="VisDiv and visual-profile pictures from saved recommendation "
                                                 "files (no retraining)")
    parser.add_argument("--config", required=True, help="the experiment's YAML config")
    parser.add_argument("--recs", nargs="+", type=Path, default=None,
                        help="recommendation TSVs (default: every .tsv in the config's recs folder)")
    args = parser.parse_args(list(argv))
    from elliot_visual.config import resolve_config_path

    table = run_visdiv(resolve_config_path(args.config), args.recs)
    print(table.read_text(encoding="utf-8"), end="")
    print("Wrote", table)
    return 0


def run_visdiv(config_path: Path, recs: list[Path] | None = None) -> Path:
    """Compute VisDiv and draw the pictures for saved recommendations; returns the values table."""
    exp = load_experiment(config_path)
    folds = prepare_data(exp, verbose=False)
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
        base_dir=Path(exp.config_path).parent, dataset=exp.dataset)
    files = list(recs) if recs else sorted(Path(exp.path_output_rec_result).glob("*.tsv"))
    if not files:
        raise FileNotFoundError(f"no recommendation files in {exp.path_output_rec_result}; run the models with "
                                "meta.save_recs: True, or pass files with --recs")
    length = max(max(exp.evaluation.cutoffs, default=exp.top_k), exp.top_k)
    lists = {path.stem: read_recommendations(path, data, length) for path in files}
    return visdiv_report(exp, data, store, lists).table


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
def visdiv_metrics(exp: Experiment) -> list[VisDiv]:
    """The config's ``VisDiv`` entries, constructed; a default one when the config names none."""
    metrics = visdiv_entries(exp.evaluation)
    if not metrics:
        log.info("no VisDiv entry in evaluation.complex_metrics; using the defaults (projection: global)")
        metrics = [VisDiv()]
    return metrics


def visdiv_report(exp: Experiment, data: Interactions, store: ItemFeatures, recommendations: Mapping[str, TopK],
                  stamp: str | None = None) -> VisDivOutputs:
    """VisDiv of every model at every cutoff of every entry, per-user values, tests and pictures."""
    stamp = stamp or timestamp_suffix()
    performance = Path(exp.path_output_rec_performance)
    metrics = visdiv_metrics(exp)
    engines = [engine_for(m, store, data) for m in metrics]
    cutoffs = sorted({k for m in metrics for k in (m.options.cutoffs or exp.evaluation.cutoffs)})
    values: dict[str, dict[int, dict[str, float]]] = {}
    per_user_rows: list[tuple[str, int, str, str, float]] = []
    per_user: dict[int, dict[str, dict[str, dict[str, float]]]] = {}
    for model, top in recommendations.items():
        users, positives, items = evaluated_lists(data, top)
        user_ids = data.user_ids[users]
        for k in cutoffs:
            if k > items.shape[1]:
                raise ValueError(f"cutoff {k} exceeds the {items.shape[1]} recommendations kept for {model}")
            for metric, engine in zip(metrics, engines):
                if not metric.applies_to(k):
                    continue
                column = metric.column(k)
                result = engine.compute(positives, items, k)
                values.setdefault(model, {}).setdefault(k, {})[column] = result.value
                kept = ~np.isnan(result.per_user)
                by_user = dict(zip(user_ids[kept].tolist(), result.per_user[kept].tolist()))
                per_user.setdefault(k, {}).setdefault(model, {})[column] = by_user
                per_user_rows += [(model, k, column, u, v) for u, v in by_user.items()]
                log.info("%s %s@%d = %.5f", model, column, k, result.value)
    columns = list(dict.fromkeys(m.column(k) for k in cutoffs for m in metrics if m.applies_to(k)))
    lines = ["\t".join(["model", "cutoff", *columns])]
    for model, by_k in values.items():
        for k, row in by_k.items():
            lines.append("\t".join([model, str(k), *(repr(float(row[c])) if c in row else "" for c in columns)]))
    table = write_text(performance / f"visdiv_{stamp}.tsv", "\n".join(lines) + "\n")
    per_user_text = "model\tcutoff\tmetric\tuser\tvalue\n" + "".join(
        f"{m}\t{k}\t{c}\t{u}\t{float(v)!r}\n" for m, k, c, u, v in per_user_rows)
    per_user_file = write_text(performance / f"visdiv_per_user_{stamp}.tsv", per_user_text)
    outputs = VisDivOutputs(table=table, per_user=per_user_file, values=values)
    if len(recommendations) > 1:
        for test in requested_tests(exp.evaluation):
            for k, by_model in per_user.items():
                rows = significance_table(by_model, test)
                name = f"stat_{test}_visdiv_cutoff_{k}_{stamp}.tsv"
                outputs.significance.append(write_text(performance / name, significance_text(rows)))
    outputs.figures = visdiv_figures(exp, data, recommendations, metrics, engines)
    return outputs


def visdiv_figures(exp: Experiment, data: Interactions, recommendations: Mapping[str, TopK],
                   metrics: Sequence[VisDiv] | None = None, engines: Sequence[VisDivEngine] | None = None,
                   store: ItemFeatures | None = None) -> list[Path]:
    """Profile pictures of the configured (or sampled) users under every model, and their grids
    (columns: models; rows: VisDiv entries). See :mod:`elliot_visual.evaluation.visual_profiles`."""
    metrics = list(metrics) if metrics is not None else visdiv_metrics(exp)
    if engines is None:
        if store is None:
            raise ValueError("visdiv_figures needs the feature store (store=...) or prepared engines")
        engines = [engine_for(m, store, data) for m in metrics]
    profiles = visual_profiles(data, recommendations, metrics, engines, exp.evaluation.cutoffs)
    return write_profile_figures(profiles, exp.path_output_figures, columns=len(recommendations))


__all__ = ["main_visdiv", "run_visdiv", "read_recommendations", "visdiv_report", "visdiv_figures",
           "visdiv_metrics", "engine_for"]
