"""The runner end to end, from the entry points a user types: files, names, config forms, errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from elliot_visual.cli import main
from elliot_visual.data.synthetic import write_planted_dataset

REPO = Path(__file__).resolve().parents[1]

CONFIG = """\
experiment:
  dataset: mini
  data_config:
    strategy: dataset
    dataset_path: ../data/{0}/dataset.tsv
    side_information:
      - dataloader: FeatureVectors
        name: VisualAttributes
        path: ../data/{0}/visual_features.npy
        item_ids_file: ../data/{0}/item_ids.txt
  splitting:
    test_splitting:
      strategy: temporal_hold_out
      leave_n_out: 1
    validation_splitting:
      strategy: temporal_hold_out
      leave_n_out: 1
  top_k: 10
  evaluation:
    cutoffs: [5, 10]
    simple_metrics: [Recall, nDCG, AUC, ItemCoverage]
    complex_metrics:
      - metric: VisDiv
        projection: global
        perplexity: 10
        figure_sample: 1
    paired_ttest: True
  gpu: -1
  models:
    MostPop:
      meta:
        save_recs: True
    BPRMF:
      meta:
        hyper_opt_alg: grid
        validation_metric: Recall@10
        save_recs: True
      epochs: 3
      batch_size: 128
      factors: 8
      lr: [0.01, 0.05]
      seed: 7
    VBPR:
      meta:
        save_recs: True
      epochs: 2
      batch_size: 128
      factors: 8
      factors_d: 4
      lr: 0.01
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder laid out as a user's: config_files/mini.yml and data/mini/ (a small planted dataset)."""
    write_planted_dataset(tmp_path / "data" / "mini", n_users=40, n_items=60, n_styles=4, feature_dim=8,
                          interactions_per_user=8, seed=3)
    (tmp_path / "config_files").mkdir()
    (tmp_path / "config_files" / "mini.yml").write_text(CONFIG)
    return tmp_path


def _performance(folder: Path, cutoff: int) -> pd.DataFrame:
    (table,) = folder.glob(f"rec_cutoff_{cutoff}_relthreshold_0_*.tsv")
    return pd.read_csv(table, sep="\t")


def test_run_by_config_name_writes_elliots_report_files(project: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(project)
    assert main(["run", "mini"]) == 0                      # Elliot's form: a name under config_files/
    results = project / "results" / "mini"
    for cutoff in (5, 10):
        table = _performance(results / "performance", cutoff)
        assert list(table.columns) == ["model", "Recall", "nDCG", "AUC", "ItemCoverage", "VisDiv[global]"]
        assert [name.split("_")[0] for name in table["model"]] == ["MostPop", "BPRMF", "VBPR"]
        assert table[["Recall", "nDCG", "AUC"]].apply(lambda c: c.between(0, 1)).all().all()
        assert (table["VisDiv[global]"] > 0).all()
    bprmf = _performance(results / "performance", 10)["model"][1]
    assert bprmf.startswith("BPRMF_seed=7_e=3_bs=128_factors=8_lr=")
    trials = list((results / "performance").glob("rec_BPRMF_cutoff_10_relthreshold_0_*.tsv"))
    grid = pd.read_csv(trials[0], sep="\t")
    assert len(trials) == 1 and len(grid) == 2                      # one row per grid point
    # VisDiv (a t-SNE per evaluation) is computed for the selected configuration only.
    assert grid["VisDiv[global]"].notna().tolist() == [name == bprmf for name in grid["model"]]
    (best,) = (results / "performance").glob("bestmodelparams_cutoff_5_relthreshold_0_*.json")
    header, *entries = json.loads(best.read_text())
    assert header == {"default_validation_metric": "Recall", "default_validation_cutoff": 5, "rel_threshold": 0}
    assert [e["recommender"] for e in entries] == list(_performance(results / "performance", 5)["model"])
    (ttest,) = (results / "performance").glob("stat_paired_ttest_cutoff_10_relthreshold_0_*.tsv")
    assert len(ttest.read_text().splitlines()) > 0
    recs = {p.stem for p in (results / "recs").glob("*.tsv")}
    assert {n for n in recs if n.startswith("BPRMF")} and "MostPop" in recs
    first = pd.read_csv(results / "recs" / "MostPop.tsv", sep="\t", header=None)
    assert first.groupby(0).size().max() == 10                        # top_k items per user
    assert "performance tables" in capsys.readouterr().out
    pictures = sorted(p.name for p in (results / "figures").glob("*.png"))
    assert len(pictures) == 4 and sum("grid" in name for name in pictures) == 1   # 3 models + their grid


def test_same_config_and_seed_give_the_same_numbers(project: Path, monkeypatch) -> None:
    monkeypatch.chdir(project)
    assert main(["run", "config_files/mini.yml"]) == 0
    first = _performance(project / "results" / "mini" / "performance", 10)
    for table in (project / "results" / "mini" / "performance").glob("*"):
        table.unlink()
    assert main(["run", "config_files/mini.yml"]) == 0
    pd.testing.assert_frame_equal(first, _performance(project / "results" / "mini" / "performance", 10))


def _start(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "start_experiments.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_start_experiments_without_config_runs_the_demo_config(tmp_path: Path) -> None:
    done = _start([], tmp_path)                      # no demo config here: the error names the default
    assert done.returncode == 2
    assert "config_files/demo.yml" in done.stderr and "Traceback" not in done.stderr


def test_a_misspelt_model_fails_before_any_work_with_the_closest_name(project: Path) -> None:
    config = project / "config_files" / "mini.yml"
    config.write_text(config.read_text().replace("    VBPR:", "    VPBR:"))
    done = _start(["--config", "mini"], project)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "experiment.models.VPBR" in done.stderr and "VBPR" in done.stderr
    assert not (project / "results").exists()        # failed before writing anything


def test_missing_dataset_names_the_file_and_how_to_make_it(project: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(project)
    (project / "data" / "mini" / "dataset.tsv").unlink()
    assert main(["run", "mini"]) == 2
    err = capsys.readouterr().err
    assert "dataset.tsv" in err and "Traceback" not in err
