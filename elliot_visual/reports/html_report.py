"""``results/<dataset>/report.html``: one self-contained page per run, rebuilt from the results folder.

Everything on the page is read from files the run wrote — Elliot's performance and significance
TSVs, the summary (Table-1) TSVs, each trial's ``history.tsv``, the figures and ``run.json`` — so
``elliot-visual report RESULTS_FOLDER`` rebuilds the same page later, and the page shows exactly
what the TSVs hold. Images are inlined as ``data:`` URIs, styles and the table-sorting script are
inline: the file works offline and can be mailed. Rendering is a Jinja2 template
(``templates/report.html.j2``, autoescaped).

Sections: the study's Table-1 layout (rows model x backbone, a column per metric at each cutoff,
the best value of a column bold and the runner-up underlined, paired-test marks against a
baseline), sampled-protocol columns as mean ± std, the trial tables of tuned families (sortable),
training curves of each selected configuration, the VisDiv profile figures, trend figures when a
temporal model drew them, the config as run with seeds, versions and timings, and links to every
TSV summarised.
"""
from __future__ import annotations

import base64
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import markupsafe
import numpy as np
import pandas as pd

from elliot_visual.reports.figures import TrainingCurve, training_curves_png
from elliot_visual.reports.run_record import read_run_record, results_folder, run_record, write_run_record
from elliot_visual.reports.summary import column_direction, ranked_columns
from elliot_visual.storage import ResultPaths, safe_file_name, write_text

if TYPE_CHECKING:
    from elliot_visual.config.schema import Experiment
    from elliot_visual.tuning.tune import ModelOutcome

REPORT_FILE = "report.html"
SIGNIFICANCE_LEVEL = 0.05
TESTS = {"paired_ttest": ("*", "paired t-test"), "wilcoxon_test": ("†", "Wilcoxon signed-rank test")}
BASELINE_DEFAULT = "BPRMF"


@dataclass
class Cell:
    """One table cell: the TSV's exact text (``raw``), what the page shows, and its marks."""

    raw: str
    text: str
    rank: str = ""           # "best", "second" or ""
    marks: str = ""          # significance marks against the baseline
    title: str = ""          # hover text: p-values


@dataclass
class Table:
    """A rendered table: column headers and rows of cells, with the row labels first."""

    id: str
    caption: str
    labels: list[str]
    columns: list[str]
    rows: list[tuple[list[str], list[Cell]]] = field(default_factory=list)
    sampled: bool = False
    groups: list[tuple[str, int]] = field(default_factory=list)  # header row above the columns: (label, span)
    highlight: int | None = None  # row of the significance baseline


def _format(raw: str, digits: int = 4) -> str:
    """A TSV number for reading: 4 decimals, integers (coverage counts) without them, NaN blank."""
    if raw == "":
        return ""
    value = float(raw)
    if math.isnan(value):
        return ""
    return f"{value:.0f}" if value.is_integer() and abs(value) >= 1 else f"{value:.{digits}f}"


def _read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def _perf_file(folder: Path, prefix: str, cutoff: int, threshold: Any, stamp: str) -> Path:
    return folder / f"{prefix}cutoff_{cutoff}_relthreshold_{threshold}_{stamp}.tsv"


# Text columns a trial table may carry beside the metrics (why a trial failed or was stopped).
STATUS_COLUMNS = ("failed", "stopped")


def _metric_columns(frame: pd.DataFrame, skip: Sequence[str]) -> list[str]:
    return [c for c in frame.columns if c not in skip and c not in STATUS_COLUMNS and not c.endswith("_std")]


def _significance(folder: Path, cutoff: int, threshold: Any, stamp: str) -> dict[str, dict[tuple[str, str, str], float]]:
    """test -> (model, other, metric) -> p, from the run's ``stat_*`` files at one cutoff."""
    found: dict[str, dict[tuple[str, str, str], float]] = {}
    for test in TESTS:
        path = _perf_file(folder, f"stat_{test}_", cutoff, threshold, stamp)
        if not path.is_file():
            continue
        rows = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) == 4:
                rows[(parts[0], parts[1], parts[2])] = float(parts[3]) if parts[3] else float("nan")
        found[test] = rows
    return found


def _rank(table: Table, higher_is_better: Sequence[bool | None]) -> None:
    """Mark each column's best cells ``best`` and the runner-up's ``second`` (summary.ranked_columns)."""
    for column, better in enumerate(higher_is_better):
        values = [float(cells[column].raw) if cells[column].raw not in ("", "nan") else None
                  for _, cells in table.rows]
        for (_, cells), rank in zip(table.rows, ranked_columns(values, better)):
            cells[column].rank = rank


def _cells(row: pd.Series, column: str) -> Cell:
    raw = row.get(column, "")
    std = row.get(f"{column}_std")
    text = _format(raw)
    if std is not None and raw != "" and std != "":
        text = f"{text} ± {_format(std)}"
    return Cell(raw=raw, text=text)


CAPTIONS = {"ranking": "full ranking of the catalogue", "sampled": "sampled protocol: the held-out item against "
            "sampled negatives, mean ± std over seeded trials", "multilabel": "multilabel task: a user's items -> labels"}


def result_groups(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(report table, task) pairs in the run's order: models evaluated differently never share a
    column (a sampled AUC is not comparable with a full-ranking one)."""
    return list(dict.fromkeys((m.get("table", "rec"), m.get("task", "ranking")) for m in record["models"]))


def results_table(record: dict[str, Any], performance: Path, table_name: str = "rec", task: str = "ranking",
                  baseline: str | None = None, alone: bool = True) -> tuple[Table, str | None]:
    """One task's rows from its Elliot files (``<table>_cutoff_<k>_...tsv``): rows model x backbone in
    the run's order, columns metric@cutoff; the ranking task's is the study's Table 1 (``alone``: the
    run's only group, captioned plainly)."""
    stamp, threshold = record["stamp"], record["relevance_threshold"]
    models = [m for m in record["models"] if (m.get("table", "rec"), m.get("task", "ranking")) == (table_name, task)]
    caption = "Test results of each model's selected configuration"
    if not alone or table_name != "rec":
        caption += f" — {CAPTIONS.get(task, task)}"
    first = table_name == "rec" and (alone or task == "ranking")
    table = Table("table-one" if first else f"table-{safe_file_name(table_name)}-{safe_file_name(task)}", caption,
                  ["model", "backbone"], [])
    rows: list[tuple[list[str], list[Cell]]] = [([m["family"], m["backbone"]], []) for m in models]
    better: list[bool | None] = []
    chosen = _baseline(models, baseline)
    for cutoff in record["cutoffs"]:
        path = _perf_file(performance, f"{table_name}_", cutoff, threshold, stamp)
        frame = _read_tsv(path)
        frame = frame[frame["model"].isin({m["model"] for m in models})].reset_index(drop=True)
        if frame["model"].tolist() != [m["model"] for m in models]:
            raise ValueError(f"{path}: its rows are not the {len(models)} models run.json lists for the "
                             f"'{table_name}' table; rerun the experiment")
        significance = _significance(performance, cutoff, threshold, stamp)
        columns = _metric_columns(frame, ("model",))
        table.groups.append((f"cutoff {cutoff}", len(columns)))
        for column in columns:
            table.columns.append(f"{column}@{cutoff}")
            table.sampled |= f"{column}_std" in frame.columns
            better.append(column_direction(column))
            for index, (_, row) in enumerate(frame.iterrows()):
                cell = _cells(row, column)
                if chosen is not None and index != chosen:
                    _mark(cell, models[index]["model"], models[chosen]["model"], column, significance,
                          float(frame.iloc[chosen][column] or "nan"))
                rows[index][1].append(cell)
    table.rows, table.highlight = rows, chosen
    _rank(table, better)
    return table, models[chosen]["model"] if chosen is not None else None


def _baseline(models: list[dict[str, Any]], wanted: str | None) -> int | None:
    """Row of the baseline: ``wanted`` (a family, entry key or model name), else BPRMF, else none."""
    for candidate in ([wanted] if wanted else [BASELINE_DEFAULT]):
        for index, model in enumerate(models):
            if candidate in (model["family"], model["key"], model["model"]):
                return index
    if wanted and models:
        known = ", ".join(m["family"] for m in models)
        raise ValueError(f"baseline {wanted!r} is not a model of this run (models: {known})")
    return None


def _mark(cell: Cell, model: str, baseline: str, metric: str,
          significance: dict[str, dict[tuple[str, str, str], float]], baseline_value: float) -> None:
    """Significance marks of ``model`` against ``baseline`` on ``metric`` (p < 0.05, either test)."""
    notes = []
    for test, rows in significance.items():
        p = rows.get((model, baseline, metric))
        if p is None:
            continue
        notes.append(f"{TESTS[test][1]}: p = {p:.3g}" if not math.isnan(p) else f"{TESTS[test][1]}: p undefined")
        if not math.isnan(p) and p < SIGNIFICANCE_LEVEL:
            cell.marks += TESTS[test][0]
    if notes:
        value = float(cell.raw) if cell.raw else float("nan")
        direction = "above" if value > baseline_value else "below" if value < baseline_value else "equal to"
        cell.title = f"{direction} the baseline; " + "; ".join(notes)
        if cell.marks:  # the direction first, so a mark never reads as "better" when it means "worse"
            cell.marks = {"above": "▲", "below": "▼"}.get(direction, "") + cell.marks


def trial_tables(record: dict[str, Any], performance: Path) -> list[Table]:
    """One sortable table per tuned family: every trial, a column per metric@cutoff."""
    stamp, threshold = record["stamp"], record["relevance_threshold"]
    selected = {t["name"] for m in record["models"] for t in m["trials"] if t["selected"]}
    tables = []
    families = list(dict.fromkeys((m["family"], m.get("table", "rec")) for m in record["models"]))
    for family, table_name in families:
        frames = {k: _perf_file(performance, f"{table_name}_{family}_", k, threshold, stamp) for k in record["cutoffs"]}
        if not all(p.is_file() for p in frames.values()):
            continue
        read = {k: _read_tsv(p) for k, p in frames.items()}
        first = read[record["cutoffs"][0]]
        table = Table(f"trials-{safe_file_name(family)}", f"{family}: every trial (click a header to sort)",
                      ["configuration"], [])
        table.rows = [([name + (" (selected)" if name in selected else "")], []) for name in first["model"]]
        for k, frame in read.items():
            # 'error' (a failed or stopped trial's reason) is text in the TSV, not a metric
            table.groups.append((f"cutoff {k}", len(_metric_columns(frame, ("model", "error")))))
            for column in _metric_columns(frame, ("model", "error")):
                table.columns.append(f"{column}@{k}")
                table.sampled |= f"{column}_std" in frame.columns
                for index, (_, row) in enumerate(frame.iterrows()):
                    table.rows[index][1].append(_cells(row, column))
        _rank(table, [column_direction(c) for c in table.columns])
        tables.append(table)
    return tables


def _data_uri(png: Path | bytes) -> str:
    data = png if isinstance(png, bytes) else png.read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def training_curves(record: dict[str, Any], root: Path) -> list[dict[str, str]]:
    """Per model entry, its selected trial's curves drawn from its ``history.tsv``."""
    curves = []
    for model in record["models"]:
        trial = next((t for t in model["trials"] if t["selected"]), None)
        if trial is None or not trial["history"]:
            continue
        history_file = root / trial["history"][-1]
        if not history_file.is_file():
            continue
        frame = pd.read_csv(history_file, sep="\t")
        if len(frame) < 2:  # fitted in closed form (MostPop, VisRank): one validation, no curve to draw
            continue
        metric = model["validation_metric"]
        metrics = [c for c in frame.columns if c not in ("epoch", "loss", "seconds", "best")]
        if metric not in frame.columns:
            metric = metrics[0] if metrics else ""
        validated = frame[frame[metric].notna()] if metric else frame.iloc[0:0]
        best = frame.loc[frame["best"] == 1, "epoch"]
        curve = TrainingCurve(title=model["model"], epochs=frame["epoch"].to_numpy(), loss=frame["loss"].to_numpy(),
                              metric=metric, validation_epochs=validated["epoch"].to_numpy(),
                              validation=validated[metric].to_numpy() if metric else np.zeros(0),
                              best_epoch=int(best.iloc[0]) if len(best) else None)
        curves.append({"model": model["model"], "family": model["family"], "image": _data_uri(training_curves_png(curve)),
                       "history": trial["history"][-1], "epochs": str(len(frame)),
                       "seconds": f"{frame['seconds'].sum():.1f}"})
    return curves


def figure_sections(figures: Path) -> dict[str, list[dict[str, str]]]:
    """VisDiv grids (per-user pictures), trend figures, and any other figure of the run."""
    sections: dict[str, list[dict[str, str]]] = {"visdiv": [], "visdiv_single": [], "trends": [], "other": []}
    if not figures.is_dir():
        return sections
    for path in sorted(figures.glob("*.png")):
        name = path.name
        if name.startswith("visdiv_") and name.endswith("_grid.png"):
            sections["visdiv"].append({"name": name, "image": _data_uri(path)})
        elif name.startswith("visdiv_"):
            sections["visdiv_single"].append({"name": name})
        elif "trend" in name:
            sections["trends"].append({"name": name, "image": _data_uri(path)})
        else:
            sections["other"].append({"name": name, "image": _data_uri(path)})
    return sections


def _break_at_underscores(text: str) -> markupsafe.Markup:
    """Elliot's long model names, escaped, allowed to wrap after each ``_`` (never inside a value)."""
    return markupsafe.escape(text).replace("_", markupsafe.Markup("_<wbr>"))


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.PackageLoader("elliot_visual.reports", "templates"),
                                     autoescape=jinja2.select_autoescape(["html", "j2"]),
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters["wrappable"] = _break_at_underscores
    return environment


def render_report(folder: str | os.PathLike, baseline: str | None = None) -> str:
    """The page's HTML for the run in ``folder`` (its ``run.json`` and the files it names)."""
    root = Path(folder)
    record = read_run_record(root)
    performance = root / record["folders"]["performance"]
    figures = root / record["folders"]["figures"]
    groups = result_groups(record)
    built = [results_table(record, performance, name, task, baseline, alone=len(groups) == 1)
             for name, task in groups]
    first = next((i for i, (t, _) in enumerate(built) if t.id == "table-one"), None)
    table, baseline_name = built[first] if first is not None else (None, None)
    if baseline_name is None:  # the baseline (BPRMF) may sit in another group
        baseline_name = next((b for _, b in built if b is not None), None)
    others = [t for i, (t, _) in enumerate(built) if i != first]
    links = [f for f in record["files"] if f.endswith(".tsv") and (root / f).is_file()]
    histories = [h for m in record["models"] for t in m["trials"] for h in t["history"]]
    template = _environment().get_template("report.html.j2")
    return template.render(record=record, table=table, others=others, baseline=baseline_name, tests=TESTS,
                           level=SIGNIFICANCE_LEVEL, trials=trial_tables(record, performance),
                           curves=training_curves(record, root), figures=figure_sections(figures),
                           links=links, histories=histories)


def write_html_report(folder: str | os.PathLike, baseline: str | None = None) -> Path:
    """Write ``report.html`` into the results ``folder`` (atomically) and return its path."""
    return write_text(Path(folder) / REPORT_FILE, render_report(folder, baseline))


def write_run_page(exp: "Experiment", outcomes: "Sequence[ModelOutcome]", paths: ResultPaths,
                   files: Sequence[Path], stamp: str, started: float | None) -> list[Path]:
    """After the Elliot files (``files``, written with ``stamp``): ``run.json``, then ``report.html``.

    Takes the whole experiment, being the record of it (the config as run, its seed and path)."""
    record = write_run_record(run_record(exp, outcomes, paths, stamp, files, started, time.time()), paths)
    return [record, write_html_report(results_folder(paths))]


def main_report(argv: Sequence[str]) -> int:
    """``elliot-visual report RESULTS_FOLDER [--baseline MODEL]``: rebuild the run's report.html."""
    import argparse

    parser = argparse.ArgumentParser(prog="elliot-visual report",
                                     description="Rebuild results/<dataset>/report.html from a run's result files")
    parser.add_argument("results", help="the run's results folder, e.g. results/demo")
    parser.add_argument("--baseline", default=None,
                        help=f"model the significance marks compare against (default: {BASELINE_DEFAULT} if present)")
    args = parser.parse_args(argv)
    print(write_html_report(args.results, args.baseline))
    return 0
