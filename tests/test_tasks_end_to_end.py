"""The new seams from the config a user writes: a model entry selected on the sampled protocol, and
a multilabel study with a user-level split, each through ``elliot-visual run``."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from elliot_visual.cli import main
from elliot_visual.config import load_experiment
from elliot_visual.config.errors import ConfigError
from elliot_visual.data.synthetic import write_planted_dataset

SAMPLED = """\
experiment:
  dataset: mini
  data_config:
    strategy: dataset
    dataset_path: ../data/{0}/dataset.tsv
    side_information:
      - dataloader: FeatureVectors
        path: ../data/{0}/visual_features.npy
        item_ids_file: ../data/{0}/item_ids.txt
  splitting:
    test_splitting: {strategy: temporal_hold_out, leave_n_out: 1}
    validation_splitting: {strategy: temporal_hold_out, leave_n_out: 1}
  top_k: 10
  threads: 1
  evaluation:
    cutoffs: [10]
    simple_metrics: [AUC, Recall]
    negative_sampling: {strategy: random, num_items: 30, trials: 3, seed: 5}
  models:
    MostPop:
      meta: {task: ranking}
    VBPR:
      meta: {task: sampled, validation_metric: AUC@10, hyper_opt_alg: grid}
      epochs: 3
      batch_size: 64
      factors: 8
      factors_d: 4
      lr: [0.0005, 0.02]
"""

MULTILABEL = """\
experiment:
  dataset: mini
  data_config:
    strategy: dataset
    dataset_path: ../data/{0}/dataset.tsv
    side_information:
      - dataloader: ItemLabels
        path: ../data/{0}/item_labels.tsv
  splitting:
    test_splitting: {strategy: random_users, test_ratio: 0.3}
    validation_splitting: {strategy: random_users, test_ratio: 0.3}
  evaluation:
    cutoffs: [1, 2]
    simple_metrics: [F1, Precision, Recall]
  models:
    CategoryPop:
      meta: {validation_metric: F1@2, hyper_opt_alg: grid}
      scope: [global, user]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_planted_dataset(tmp_path / "data" / "mini", n_users=60, n_items=60, n_styles=4, feature_dim=8,
                          interactions_per_user=8, seed=3)
    (tmp_path / "config_files").mkdir()
    return tmp_path


def _table(folder: Path, pattern: str) -> pd.DataFrame:
    (path,) = folder.glob(pattern)
    return pd.read_csv(path, sep="\t")


def test_a_model_entry_can_be_selected_on_sampled_auc_beside_a_full_ranking_entry(project, monkeypatch):
    (project / "config_files" / "sampled.yml").write_text(SAMPLED)
    monkeypatch.chdir(project)
    assert main(["run", "sampled"]) == 0
    performance = project / "results" / "mini" / "performance"
    table = _table(performance, "rec_cutoff_10_relthreshold_0_*.tsv").set_index("model")
    mostpop, vbpr = table.index
    assert vbpr.startswith("VBPR_") and vbpr.endswith("_load=VisualAttributes")
    # The sampled entry reports mean and std over its 3 trials; the full-ranking entry has no std.
    assert table.loc[vbpr, ["AUC_std", "Recall_std"]].notna().all() and table.loc[vbpr, "AUC_std"] > 0
    assert pd.isna(table.loc[mostpop, "AUC_std"])
    # With 30 negatives Recall@10 is about a third of the candidates for a random model, far above
    # the full-ranking Recall@10 of the same planted data.
    assert table.loc[vbpr, "Recall"] > table.loc[mostpop, "Recall"]
    trials = _table(performance, "rec_VBPR_cutoff_10_relthreshold_0_*.tsv")
    assert len(trials) == 2 and trials["AUC_std"].notna().all()


def test_a_multilabel_study_runs_on_a_user_level_split_and_finds_the_planted_styles(project, monkeypatch):
    (project / "config_files" / "labels.yml").write_text(MULTILABEL)
    monkeypatch.chdir(project)
    assert main(["run", "labels"]) == 0
    performance = project / "results" / "mini" / "performance"
    assert not list(performance.glob("rec_cutoff_*"))               # no item ranking: its own table
    best = _table(performance, "multilabel_cutoff_2_relthreshold_0_*.tsv")
    assert best["model"].tolist() == ["CategoryPop_scope=user"]     # selected on validation F1@2
    trials = _table(performance, "multilabel_CategoryPop_cutoff_2_relthreshold_0_*.tsv").set_index("model")
    # Each user's set is drawn from her one or two planted styles: her own label counts find them,
    # the catalogue's popularity cannot.
    assert trials.loc["CategoryPop_scope=user", "F1"] > trials.loc["CategoryPop_scope=global", "F1"] + 0.1
    at_one = _table(performance, "multilabel_CategoryPop_cutoff_1_relthreshold_0_*.tsv").set_index("model")
    assert at_one.loc["CategoryPop_scope=user", "Precision"] == 1.0    # her top label is one of her items' labels
    assert at_one.loc["CategoryPop_scope=global", "Precision"] < 0.8
    assert not (project / "results" / "mini" / "recs").exists() or \
        not list((project / "results" / "mini" / "recs").glob("*.tsv"))


def test_task_and_loader_keys_are_checked_at_the_door(project):
    bad = MULTILABEL.replace("meta: {validation_metric: F1@2, hyper_opt_alg: grid}",
                             "meta: {task: ranking}")
    (project / "config_files" / "bad.yml").write_text(bad)
    with pytest.raises(ConfigError, match="CategoryPop does not serve the 'ranking' task"):
        load_experiment(project / "config_files" / "bad.yml")
    typo = SAMPLED.replace("meta: {task: ranking}", "meta: {task: rankin}")
    (project / "config_files" / "typo.yml").write_text(typo)
    with pytest.raises(ConfigError, match="unknown task 'rankin' at experiment.models.MostPop.meta.task; did you mean 'ranking'"):
        load_experiment(project / "config_files" / "typo.yml")
    loader = SAMPLED.replace("meta: {task: ranking}", "meta: {task: ranking}\n      loader: resnet50")
    (project / "config_files" / "loader.yml").write_text(loader)
    with pytest.raises(ConfigError, match="MostPop reads no side information, so 'loader' would do nothing"):
        load_experiment(project / "config_files" / "loader.yml")
