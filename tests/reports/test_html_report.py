"""report.html: Table-1 cells are the TSV values (checked in headless Chromium), marks and ranks
follow the rules, sampled columns read mean ± std, and ``elliot-visual report`` rebuilds the page."""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest
from browser import chromium, screenshot

from elliot_visual.cli import main
from elliot_visual.reports.html_report import REPORT_FILE, render_report
from elliot_visual.reports.summary import ranked_columns

STAMP = "2026_01_02_03_04_05"


def _one(folder: Path, pattern: str) -> Path:
    (found,) = folder.glob(pattern)
    return found


def test_ranked_columns_mark_best_and_runner_up_with_ties() -> None:
    assert ranked_columns([0.2, 0.5, 0.5, 0.3, None, float("nan")]) == ["", "best", "best", "second", "", ""]
    assert ranked_columns([0.2, 0.1]) == ["best", "second"]
    assert ranked_columns([0.2, 0.1], higher_is_better=None) == ["", ""]          # no direction (VisDiv)
    assert ranked_columns([0.2, 0.1, 0.3], higher_is_better=False) == ["second", "best", ""]   # lower is better (ARP)


def _hand_made_run(root: Path) -> Path:
    """A results folder written by hand: two sampled-protocol models and one paired-test file."""
    (root / "performance").mkdir(parents=True)
    models = [("BPRMF", "-", "BPRMF_lr=0$1"), ("VBPR", "resnet50", "VBPR_lr=0$1_load=resnet50"),
              ("DVBPR", "-", "DVBPR_lr=0$2")]
    record = {"dataset": "toy", "stamp": STAMP, "config_path": str(root / "toy.yml"), "config_text": "experiment: {}\n",
              "random_seed": 42, "versions": {"python": "3.11"}, "started": None, "finished": "2026-01-02T03:04:05",
              "seconds": None, "cutoffs": [100], "relevance_threshold": 0,
              "folders": {"recs": "recs", "weights": "weights", "performance": "performance", "figures": "figures"},
              "models": [{"key": f, "family": f, "model": n, "backbone": b, "validation_metric": "AUC@100", "seed": 42,
                          "save_weights": False, "trials": [{"name": n, "selected": True, "loss": -0.7,
                                                              "best_iteration": 3, "seconds": 1.5, "epochs": 3,
                                                              "history": []}]} for f, b, n in models],
              "files": [f"performance/rec_cutoff_100_relthreshold_0_{STAMP}.tsv"]}
    (root / "run.json").write_text(json.dumps(record))
    (root / "performance" / f"rec_cutoff_100_relthreshold_0_{STAMP}.tsv").write_text(
        "model\tAUC\tAUC_std\n"
        "BPRMF_lr=0$1\t0.6278\t0.0021\n"
        "VBPR_lr=0$1_load=resnet50\t0.7479\t0.0012\n"
        "DVBPR_lr=0$2\t0.7964\t0.003\n")
    (root / "performance" / f"stat_paired_ttest_cutoff_100_relthreshold_0_{STAMP}.tsv").write_text(
        "BPRMF_lr=0$1\tVBPR_lr=0$1_load=resnet50\tAUC\t0.2\nVBPR_lr=0$1_load=resnet50\tBPRMF_lr=0$1\tAUC\t0.2\n"
        "BPRMF_lr=0$1\tDVBPR_lr=0$2\tAUC\t0.001\nDVBPR_lr=0$2\tBPRMF_lr=0$1\tAUC\t0.001\n")
    return root


def _cells(html: str) -> list[str]:
    return re.findall(r'<td class="num ?([a-z]*)" data-column="AUC@100" data-value="([^"]*)"(?: title="([^"]*)")?>'
                      r'<span class="value">([^<]*)</span>(?:<sup class="sig">([^<]*)</sup>)?', html)


def test_sampled_cells_read_mean_plus_minus_std_with_ranks_and_marks(tmp_path: Path) -> None:
    html = render_report(_hand_made_run(tmp_path))
    assert _cells(html) == [
        ("", "0.6278", "", "0.6278 ± 0.0021", ""),
        ("second", "0.7479", "above the baseline; paired t-test: p = 0.2", "0.7479 ± 0.0012", ""),
        ("best", "0.7964", "above the baseline; paired t-test: p = 0.001", "0.7964 ± 0.0030", "▲*"),
    ]
    assert '<tr class="baseline-row">' in html and "sampled-protocol means ± standard deviations" in html


def test_baseline_can_be_chosen_and_an_unknown_one_is_named(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    folder = _hand_made_run(tmp_path)
    html = render_report(folder, baseline="DVBPR")
    assert [c[4] for c in _cells(html)] == ["▼*", "", ""]
    assert main(["report", str(folder), "--baseline", "ItemKNN"]) == 2
    assert "baseline 'ItemKNN' is not a model of this run (models: BPRMF, VBPR, DVBPR)" in capsys.readouterr().err


def test_report_command_rebuilds_the_same_page(attribute_run: Path, tmp_path: Path) -> None:
    written = (attribute_run / REPORT_FILE).read_bytes()
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(attribute_run, copy)
    (copy / REPORT_FILE).unlink()
    assert main(["report", str(copy)]) == 0
    rebuilt = (copy / REPORT_FILE).read_bytes()
    assert rebuilt == written.replace(str(attribute_run).encode(), str(copy).encode())


def test_a_folder_without_a_run_record_is_named(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert main(["report", str(tmp_path)]) == 2
    assert "has no run.json" in capsys.readouterr().err


def test_report_in_chromium_shows_the_tsv_values_best_bold_runner_up_underlined(attribute_run: Path) -> None:
    performance = attribute_run / "performance"
    with chromium(1400, 1000) as driver:
        driver.get((attribute_run / REPORT_FILE).as_uri())
        for cutoff in (5, 10):
            summary = pd.read_csv(_one(performance, f"summary_cutoff_{cutoff}_*.tsv"), sep="\t", dtype=str)
            elliot = pd.read_csv(_one(performance, f"rec_cutoff_{cutoff}_*.tsv"), sep="\t")
            for metric in ("Recall", "nDCG", "AUC"):
                cells = driver.find_elements("css selector", f'#table-one td[data-column="{metric}@{cutoff}"]')
                raw = [c.get_attribute("data-value") for c in cells]
                assert raw == summary[metric].tolist()
                assert [float(v) for v in raw] == elliot[metric].tolist()        # Elliot's own table agrees
                assert [c.find_element("css selector", ".value").text for c in cells] == \
                    [f"{float(v):.4f}" for v in raw]
                weights = [int(driver.execute_script("return getComputedStyle(arguments[0]).fontWeight", c))
                           for c in cells]
                underline = [driver.execute_script(
                    "return getComputedStyle(arguments[0].querySelector('.value')).textDecorationLine", c)
                    for c in cells]
                values = [float(v) for v in raw]
                best = max(values)
                second = max([v for v in values if v < best], default=None)
                assert [w >= 700 for w in weights] == [v == best for v in values]
                assert ["underline" in u for u in underline] == [v == second for v in values]
        table = driver.find_element("id", "trials-BPRMF")
        header = table.find_element("css selector", 'thead tr:last-child th[data-column="Recall@10"]')
        column = [float(c.get_attribute("data-value")) for c in
                  table.find_elements("css selector", 'td[data-column="Recall@10"]')]
        header.click()
        ascending = [float(c.get_attribute("data-value")) for c in
                     table.find_elements("css selector", 'td[data-column="Recall@10"]')]
        header.click()
        descending = [float(c.get_attribute("data-value")) for c in
                      table.find_elements("css selector", 'td[data-column="Recall@10"]')]
        assert ascending == sorted(column) and descending == sorted(column, reverse=True)
        images = driver.find_elements("css selector", "img")
        assert len(images) >= 2 and all(i.get_attribute("src").startswith("data:image/png;base64,") for i in images)
        assert all(driver.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images)
        assert not driver.find_elements("css selector", "script[src], link[href]")     # self-contained
        links = [a.get_attribute("href") for a in driver.find_elements("css selector", "a[href]")
                 if not a.get_attribute("href").split("#")[0].endswith(REPORT_FILE)]
        assert links and all(Path(unquote(href.removeprefix("file://"))).is_file() for href in links)
        screenshot(driver, "report_attrs")


def test_run_record_holds_config_seeds_versions_timings_and_histories(attribute_run: Path) -> None:
    record = json.loads((attribute_run / "run.json").read_text())
    assert record["config_text"] == Path(record["config_path"]).read_text()
    assert record["random_seed"] == 42 and {"python", "torch", "elliot_visual"} <= set(record["versions"])
    assert record["seconds"] > 0 and record["started"] < record["finished"]
    vbpr = next(m for m in record["models"] if m["family"] == "VBPR")
    (trial,) = vbpr["trials"]
    history = pd.read_csv(attribute_run / trial["history"][0], sep="\t")
    assert len(history) == trial["epochs"] == 40 and history["seconds"].sum() == pytest.approx(trial["seconds"])
    assert history.loc[history["best"] == 1, "epoch"].tolist() == [trial["best_iteration"]]
    assert history["AUC@10"].notna().tolist() == [e % 5 == 0 for e in history["epoch"]]


def test_visdiv_grids_and_trend_figures_are_inlined_in_their_sections(tmp_path: Path) -> None:
    folder = _hand_made_run(tmp_path)
    (folder / "figures").mkdir()
    pictures = {"visdiv_user7_grid.png": b"\x89PNG grid", "visdiv_VisDiv_at10_user7_VBPR.png": b"\x89PNG one",
                "trend_feature_influence.png": b"\x89PNG trend"}
    for name, data in pictures.items():
        (folder / "figures" / name).write_bytes(data)
    html = render_report(folder)
    visdiv, trends = html.index('id="visdiv"'), html.index('id="trends"')
    import base64

    inline = {name: "data:image/png;base64," + base64.b64encode(data).decode() for name, data in pictures.items()}
    assert visdiv < html.index(inline["visdiv_user7_grid.png"]) < trends < html.index(inline["trend_feature_influence.png"])
    assert inline["visdiv_VisDiv_at10_user7_VBPR.png"] not in html          # single panels are linked, not inlined
    assert 'href="figures/visdiv_VisDiv_at10_user7_VBPR.png"' in html


def test_models_evaluated_by_different_tasks_never_share_a_column(tmp_path: Path) -> None:
    folder = _hand_made_run(tmp_path)
    record = json.loads((folder / "run.json").read_text())
    record["models"][0]["task"] = "ranking"
    for model in record["models"][1:]:
        model["task"] = "sampled"
    (folder / "run.json").write_text(json.dumps(record))
    html = render_report(folder)
    first, second = html.index('id="table-one"'), html.index('id="table-rec-sampled"')
    assert first < html.index('data-value="0.6278"') < second < html.index('data-value="0.7479"')
    assert "— full ranking of the catalogue" in html and "— sampled protocol" in html
    assert [c[0] for c in _cells(html)] == ["best", "second", "best"]       # ranked within each table
