"""Valid Elliot configs (the fork's and main Elliot's dialects) become the expected typed objects."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from elliot_visual.config import ConfigError, load_experiment, resolve_config_path
from elliot_visual.config.schema import Experiment, ModelSpec
from elliot_visual.config.search_space import Dimension, parse_dimension

pytestmark = pytest.mark.usefixtures("fake_registries")

# The shape of the fork's baselines_amazon_baby_resnet50.yml: fixed split, VisualLoader dict form,
# grids written as YAML lists, tuples written as strings, Elliot's `1e-5` (a string in YAML 1.1).
FORK_CONFIG = """
experiment:
  data_config:
    strategy: fixed
    dataloader: VisualLoader
    train_path: ../data/{0}/trainingset.tsv
    validation_path: ../data/{0}/validationset.tsv
    test_path: ../data/{0}/testset.tsv
    side_information:
      visual_features: ../data/{0}/original/cnn_features_resnet50_avg_pool/
      visual_pca_features: ../data/{0}/original/cnn_features_resnet50_avg_pool_pca128/
      visual_feat_map_features: ../data/{0}/original/cnn_features_resnet50_conv5_block3_out/
      item_mapping: ../data/{0}/visual_feats.tsv
  dataset: amazon_baby_resnet50
  top_k: 100
  evaluation:
    cutoffs: [ 10, 50, 100 ]
    simple_metrics: [ Precision, Recall, AUC, HR, nDCG ]
    relevance_threshold: 1
    paired_ttest: True
  gpu: -1
  models:
    VBPR:
      meta:
        hyper_opt_alg: grid
        validation_rate: 15
        save_recs: True
        validation_metric: AUC
        restore_epoch: -1
      lr: [ 0.0001, 0.001, 0.01 ]
      epochs: 300
      factors: [ 32, 64, 128 ]
      factors_d: 20
      batch_size: 256
      l_w: [ 0.00001, 0.001, 0 ]
      l_b: 0
      l_e: 1e-5
    ACF:
      meta:
        validation_rate: 15
        validation_metric: recall@50
      lr: [ 1e-4, 1e-3 ]
      epochs: 300
      factors: 64
      batch_size: 256
      layers_component: (64, 1)
      layers_item: [ (64, 1), (128, 1) ]
    VNPR:
      epochs: 30
      mf_factors: 32
      mlp_hidden_size: (128, 64, 1)
      prob_keep_dropout: [ 0.4, 0.6 ]
"""

MAIN_CONFIG = """
experiment:
  dataset: baby
  data_config:
    strategy: dataset
    dataset_path: ../data/{0}/dataset.tsv
    side_information:
      - dataloader: VisualAttribute
        visual_features: ../data/{0}/features/resnet50/
        images_src_folder: ../data/{0}/images/
        output_image_size: (224,224)
  prefiltering:
    - strategy: global_threshold
      threshold: 4
    - strategy: iterative_k_core
      core: 5
  splitting:
    save_on_disk: True
    save_folder: ../data/{0}/splits/
    test_splitting:
      strategy: temporal_hold_out
      test_ratio: 0.2
    validation_splitting:
      strategy: random_subsampling
      leave_n_out: 1
  top_k: 20
  negative_sampling:
    strategy: fixed
    files:
      - ../data/{0}/negative.tsv
  evaluation:
    cutoffs: 10
    simple_metrics: [ ndcg, RECALL ]
    complex_metrics:
      - metric: reo
        clustering_name: ItemPopularity
        clustering_file: ../data/{0}/i_pop.tsv
  path_output_rec_result: /tmp/elliot_visual_absolute/{0}/recs
  external_models_path: ../external/models/__init__.py
  models:
    external.VBPR:
      meta:
        hyper_max_evals: 5
        hyper_opt_alg: tpe
      lr: [ loguniform, -10, -1 ]
      factors: [ quniform, 8, 32, 1 ]
      epochs: 10
      early_stopping:
        patience: 3
    MostPop:
      meta:
        verbose: True
      seed: 7
"""


@pytest.fixture
def fork(write_config: Callable[[str, str], Path]) -> Experiment:
    return load_experiment(write_config(FORK_CONFIG, "baselines_amazon_baby_resnet50.yml"))


@pytest.fixture
def main(write_config: Callable[[str, str], Path]) -> Experiment:
    return load_experiment(write_config(MAIN_CONFIG, "baby.yml"))


def _spec(exp: Experiment, key: str) -> ModelSpec:
    return next(spec for spec in exp.models if spec.key == key)


def test_fork_paths_substitute_dataset_and_resolve_against_config_folder(fork: Experiment, config_dir: Path) -> None:
    data = config_dir.parent / "data" / "amazon_baby_resnet50"
    assert fork.data_config.train_path == data / "trainingset.tsv"
    assert fork.data_config.validation_path == data / "validationset.tsv"
    assert fork.data_config.test_path == data / "testset.tsv"
    assert fork.config_path == config_dir / "baselines_amazon_baby_resnet50.yml"


def test_fork_side_information_dict_becomes_one_visual_loader_entry(fork: Experiment, config_dir: Path) -> None:
    data = config_dir.parent / "data" / "amazon_baby_resnet50"
    [side] = fork.data_config.side_information
    assert side.dataloader == "VisualLoader"
    extra = side.model_extra
    assert extra["visual_features"] == data / "original" / "cnn_features_resnet50_avg_pool"
    assert extra["visual_feat_map_features"] == data / "original" / "cnn_features_resnet50_conv5_block3_out"
    assert extra["item_mapping"] == data / "visual_feats.tsv"


def test_result_folders_default_to_results_next_to_the_config_folder(fork: Experiment, config_dir: Path) -> None:
    results = config_dir.parent / "results" / "amazon_baby_resnet50"
    assert fork.path_output_rec_result == results / "recs"
    assert fork.path_output_rec_weight == results / "weights"
    assert fork.path_output_rec_performance == results / "performance"
    assert fork.path_output_figures == results / "figures"


def test_fork_evaluation_block(fork: Experiment) -> None:
    assert fork.top_k == 100
    assert fork.evaluation.cutoffs == [10, 50, 100]
    assert fork.evaluation.simple_metrics == ["Precision", "Recall", "AUC", "HR", "nDCG"]
    assert fork.evaluation.relevance_threshold == 1 and fork.evaluation.paired_ttest is True


def test_lists_are_searched_raw_and_scalars_are_fixed_and_cast(fork: Experiment) -> None:
    vbpr = _spec(fork, "VBPR")
    assert vbpr.search == {"lr": [0.0001, 0.001, 0.01], "factors": [32, 64, 128], "l_w": [0.00001, 0.001, 0]}
    assert vbpr.params == {"epochs": 300, "factors_d": 20, "batch_size": 256, "l_b": 0.0, "l_e": 1e-05}
    assert isinstance(vbpr.params["l_e"], float) and isinstance(vbpr.params["l_b"], float)
    assert vbpr.is_tuned and not vbpr.external and vbpr.name == "VBPR"


def test_tuple_strings_become_tuples_and_survive_in_searched_lists(fork: Experiment) -> None:
    acf = _spec(fork, "ACF")
    assert acf.params["layers_component"] == (64, 1)
    assert acf.search["lr"] == ["1e-4", "1e-3"]  # YAML 1.1 strings: a choice over strings, as in Elliot
    assert parse_dimension("layers_item", acf.search["layers_item"]).args == ((64, 1), (128, 1))
    assert _spec(fork, "VNPR").params["mlp_hidden_size"] == (128, 64, 1)


def test_meta_is_read_apart_and_validation_metric_normalised(fork: Experiment) -> None:
    vbpr, acf, vnpr = (_spec(fork, k) for k in ("VBPR", "ACF", "VNPR"))
    assert vbpr.meta.hyper_opt_alg == "grid" and vbpr.meta.validation_rate == 15
    assert vbpr.meta.save_recs is True and vbpr.meta.restore_epoch == -1
    assert vbpr.meta.validation_metric == "AUC@10"      # no cutoff: the first one, as Elliot does
    assert acf.meta.validation_metric == "Recall@50"    # registered spelling kept
    assert vnpr.meta.validation_metric == "Precision@10"  # default: first simple metric @ first cutoff
    assert "meta" not in vbpr.params and "meta" not in vbpr.search


def test_raw_experiment_mapping_is_kept(fork: Experiment) -> None:
    assert fork.raw["models"]["VBPR"]["l_e"] == "1e-5"


def test_main_side_information_list_and_prefiltering_list(main: Experiment, config_dir: Path) -> None:
    data = config_dir.parent / "data" / "baby"
    [side] = main.data_config.side_information
    assert side.dataloader == "VisualAttribute"
    assert side.model_extra["images_src_folder"] == data / "images"
    assert side.model_extra["output_image_size"] == "(224,224)"  # not a path: left for its loader
    assert [(p.strategy, p.model_extra) for p in main.prefiltering] == [
        ("global_threshold", {"threshold": 4}), ("iterative_k_core", {"core": 5})]
    assert main.data_config.dataset_path == data / "dataset.tsv"


def test_main_splitting_and_top_level_negative_sampling(main: Experiment, config_dir: Path) -> None:
    data = config_dir.parent / "data" / "baby"
    assert main.splitting is not None and main.splitting.save_folder == data / "splits"
    assert main.splitting.test_splitting.strategy == "temporal_hold_out"
    assert main.splitting.test_splitting.model_extra == {"test_ratio": 0.2}
    assert main.splitting.validation_splitting is not None
    assert main.splitting.validation_splitting.model_extra == {"leave_n_out": 1}
    sampling = main.evaluation.negative_sampling
    assert sampling is not None and sampling.strategy == "fixed" and sampling.files == [data / "negative.tsv"]


def test_main_metrics_are_case_insensitive_and_cutoff_scalar_is_a_list(main: Experiment, config_dir: Path) -> None:
    assert main.evaluation.cutoffs == [10]
    assert main.evaluation.simple_metrics == ["nDCG", "Recall"]
    [complex_metric] = main.evaluation.complex_metrics
    assert complex_metric.metric == "REO"
    assert complex_metric.model_extra["clustering_file"] == config_dir.parent / "data" / "baby" / "i_pop.tsv"
    assert complex_metric.model_extra["clustering_name"] == "ItemPopularity"


def test_absolute_paths_are_kept_and_given_result_paths_substituted(main: Experiment, config_dir: Path) -> None:
    assert main.path_output_rec_result == Path("/tmp/elliot_visual_absolute/baby/recs")
    assert main.path_output_rec_weight == config_dir.parent / "results" / "baby" / "weights"
    assert main.external_models_path == config_dir.parent / "external" / "models" / "__init__.py"


def test_external_prefix_names_our_model_and_distributions_are_searched(main: Experiment) -> None:
    vbpr = _spec(main, "external.VBPR")
    assert vbpr.external and vbpr.name == "VBPR"
    assert vbpr.search == {"lr": ["loguniform", -10, -1], "factors": ["quniform", 8, 32, 1]}
    assert parse_dimension("lr", vbpr.search["lr"]) == Dimension("lr", "loguniform", (-10, -1))
    assert vbpr.meta.hyper_max_evals == 5 and vbpr.meta.hyper_opt_alg == "tpe"


def test_early_stopping_monitors_the_validation_metric_unless_told(main: Experiment) -> None:
    stopping = _spec(main, "external.VBPR").early_stopping
    assert stopping is not None and stopping.patience == 3
    assert stopping.monitor == "nDCG@10"


def test_common_elliot_keys_are_dropped_for_models_that_do_not_declare_them(main: Experiment) -> None:
    most_pop = _spec(main, "MostPop")
    assert most_pop.params == {} and most_pop.search == {} and most_pop.meta.verbose is True


def test_model_path_hyperparameters_resolve_against_the_config_folder(
        write_config: Callable[[str, str], Path], config_dir: Path) -> None:
    text = MAIN_CONFIG.replace("    MostPop:\n      meta:\n        verbose: True\n      seed: 7\n",
                               "    ProxyRecommender:\n      path: ../recs/{0}_bprmf.tsv\n")
    exp = load_experiment(write_config(text, "proxy.yml"))
    # A hyperparameter declared as a Path is treated like every other path of the config.
    assert _spec(exp, "ProxyRecommender").params["path"] == config_dir.parent / "recs" / "baby_bprmf.tsv"


def test_resolve_config_path_reads_elliot_short_names(config_dir: Path,
                                                      write_config: Callable[[str, str], Path]) -> None:
    written = write_config(FORK_CONFIG, "baby.yml")
    assert resolve_config_path("baby", config_dir) == written
    assert resolve_config_path(str(written), config_dir / "elsewhere") == written
    assert resolve_config_path(str(config_dir / "baby"), config_dir / "elsewhere") == written
    with pytest.raises(ConfigError, match=r"config 'babby' not found.*available in .*: baby"):
        resolve_config_path("babby", config_dir)


def test_relative_config_path_resolves_against_its_own_folder(
        write_config: Callable[[str, str], Path], config_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(FORK_CONFIG, "baby.yml")
    monkeypatch.chdir(tmp_path)
    exp = load_experiment(os.path.join("config_files", "baby.yml"))
    assert exp.data_config.train_path == tmp_path / "data" / "amazon_baby_resnet50" / "trainingset.tsv"


def test_extraction_blocks_fill_their_own_dataset_and_anchor_paths(
        write_config: Callable[[str, str], Path], config_dir: Path) -> None:
    text = FORK_CONFIG + """
  extraction:
    - images: ../data/{0}/images
      backbone: resnet50
      layers: [avgpool, layer4.2]
      output: ../data/{0}/features
    - dataset: boys_girls
      images: ../data/{0}/images
      backbone: resnet50
"""
    first, second = load_experiment(write_config(text, "extract.yml")).extraction
    data = config_dir.parent / "data"
    assert first.model_extra == {"images": data / "amazon_baby_resnet50" / "images", "backbone": "resnet50",
                                 "layers": ["avgpool", "layer4.2"],
                                 "output": data / "amazon_baby_resnet50" / "features"}
    assert second.model_extra["images"] == data / "boys_girls" / "images"
