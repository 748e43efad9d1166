"""Elliot's report files, byte for byte against golden files written the way Elliot writes them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from elliot_visual.reports.elliot_format import (ResultRow, format_number, write_best_params, write_performance,
                                                 write_recommendations, write_significance)
from elliot_visual.storage import ResultPaths

GOLDEN = Path(__file__).parent / "golden"
STAMP = "2026_01_02_03_04_05"
BPRMF = "BPRMF_seed=42_e=10_bs=512_factors=10_lr=0$001_l_w=0$1_l_b=0$001"


@pytest.fixture()
def paths(tmp_path: Path) -> ResultPaths:
    return ResultPaths.under(tmp_path, "toy").create()


def test_performance_table_matches_elliot_layout(paths: ResultPaths) -> None:
    rows = [ResultRow(BPRMF, {"Recall": 0.08499999999999998, "nDCG": 0.1,
                              "ItemCoverage": 22, "AUC": float("nan")}),
            ResultRow("MostPop", {"Recall": 0.25, "nDCG": 1 / 3, "ItemCoverage": 3, "AUC": 0.5})]
    [written] = write_performance(paths, 10, 1, STAMP, rows)
    assert written.name == f"rec_cutoff_10_relthreshold_1_{STAMP}.tsv"
    assert written.read_text() == (GOLDEN / written.name).read_text()


def test_hyperparameter_study_and_triplets_file_names(paths: ResultPaths) -> None:
    rows = [ResultRow("BPRMF_a", {"Recall": 0.5}), ResultRow("BPRMF_b", {"Recall": 0.25})]
    written = write_performance(paths, 5, 0.5, STAMP, rows, family="BPRMF", triplets=True)
    assert [p.name for p in written] == [f"rec_BPRMF_cutoff_5_relthreshold_0.5_{STAMP}.tsv",
                                         f"triplets_rec_BPRMF_cutoff_5_relthreshold_0.5_{STAMP}.tsv"]
    assert written[1].read_text() == "model\tmetric\tvalue\nBPRMF_a\tRecall\t0.5\nBPRMF_b\tRecall\t0.25\n"


def test_significance_table_is_headerless_both_orders(paths: ResultPaths) -> None:
    rows = [("MostPop", "Random_seed=42", "Recall", 2.55e-05), ("Random_seed=42", "MostPop", "Recall", 2.55e-05)]
    written = write_significance(paths, "paired_ttest", 10, 1, STAMP, rows)
    assert written.read_text() == (GOLDEN / written.name).read_text()


def test_best_params_json_has_elliot_header_then_entries(paths: ResultPaths) -> None:
    entry = {"meta": {"save_recs": True}, "recommender": "MostPop", "configuration": {"name": "MostPop"}}
    written = write_best_params(paths, 10, 1, STAMP, "Recall", [entry])
    assert written.name == f"bestmodelparams_cutoff_10_relthreshold_1_{STAMP}.json"
    assert json.loads(written.read_text()) == [
        {"default_validation_metric": "Recall", "default_validation_cutoff": 10, "rel_threshold": 1}, entry]
    assert written.read_text().startswith('[\n    {\n        "default_validation_metric"')  # indent=4


def test_recommendation_file_lists_users_then_ranked_items(paths: ResultPaths) -> None:
    items = np.array([["i3", "i1"], ["i2", None]], dtype=object)
    scores = np.array([[0.75, 0.5], [-np.inf, 0.0]])
    written = write_recommendations(paths, "MostPop", np.array(["u1", "u2"], dtype=object), items, scores)
    assert written == paths.recs / "MostPop.tsv"
    assert written.read_text() == (GOLDEN / "recs_MostPop.tsv").read_text()


@pytest.mark.parametrize(("value", "text"), [(22, "22.0"), (0.1 + 0.2, "0.30000000000000004"),
                                             (float("nan"), ""), (np.float32(0.5), "0.5")])
def test_numbers_print_as_pandas_to_csv(value: float, text: str) -> None:
    assert format_number(value) == text
