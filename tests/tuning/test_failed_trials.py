"""A diverging configuration is a failed trial, not a lost study."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from elliot_visual import run_experiment
from tests.test_api_and_cli import _config, _write_data


def test_a_diverging_grid_point_is_recorded_as_failed_and_the_study_goes_on(tmp_path: Path, caplog) -> None:
    _write_data(tmp_path)
    grid = {"epochs": 3, "batch_size": 8, "factors": 4, "lr": [1e6, 0.05], "seed": 1}
    diverging = {"epochs": 3, "batch_size": 8, "factors": 4, "lr": 1e7, "seed": 1}
    with caplog.at_level("INFO", logger="elliot_visual"):
        summary = run_experiment(_config(MostPop={}, BPRMF=grid, **{"external.BPRMF": diverging}), base_dir=tmp_path)
    outcome = summary.outcome("BPRMF")
    failed, ok = outcome.trials
    assert "training diverged at epoch 1" in failed.failed and "exploding" in failed.failed
    assert outcome.best is ok and ok.params.lr == 0.05 and failed.loss == float("inf")
    # the entry whose only configuration diverged is left out; the others are reported
    assert [o.spec.key for o in summary.outcomes] == ["MostPop", "BPRMF"]
    assert "external.BPRMF left out of the reports" in caplog.text
    performance = tmp_path / "out" / "performance"
    [trials] = performance.glob("rec_BPRMF_cutoff_5_*.tsv")
    table = pd.read_csv(trials, sep="\t")
    assert list(table.columns) == ["model", "Recall", "nDCG", "ARP", "failed"]
    assert table["failed"].isna().tolist() == [False, True] and table["Recall"].isna().tolist() == [True, False]
    assert table["model"].tolist() == [failed.name, ok.name] and table["failed"][0] == failed.failed
    assert "BPRMF: trial 1 of 2, elapsed" in caplog.text and "BPRMF: trial 2 of 2, elapsed" in caplog.text
    assert "remaining about" in caplog.text
