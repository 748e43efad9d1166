"""Every bad config ends in one ConfigError naming the file, the YAML key path, the bad value and the fix."""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from elliot_visual.config import ConfigError, load_experiment

pytestmark = pytest.mark.usefixtures("fake_registries")

BASE: dict[str, Any] = {"experiment": {
    "dataset": "toy",
    "data_config": {"strategy": "dataset", "dataset_path": "../data/{0}/dataset.tsv",
                    "side_information": [{"dataloader": "VisualAttribute", "visual_features": "../data/{0}/f/"}]},
    "prefiltering": {"strategy": "iterative_k_core", "core": 2},
    "splitting": {"test_splitting": {"strategy": "temporal_hold_out", "test_ratio": 0.2}},
    "top_k": 10,
    "evaluation": {"cutoffs": [5, 10], "simple_metrics": ["Recall", "nDCG"]},
    "models": {
        "VBPR": {"meta": {"hyper_opt_alg": "grid", "validation_rate": 1, "validation_metric": "nDCG@10"},
                 "epochs": 2, "lr": [0.001, 0.01], "factors": 8},
        "MostPop": {},
    },
}}

DELETE = object()


def mutated(changes: dict[str, Any]) -> dict[str, Any]:
    """BASE with each dotted key set to its value (or removed for DELETE); ints index lists."""
    config = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("/")
        node: Any = config
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return config


# (id, changes to BASE, substrings the message must contain)
CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("misspelt_model", {"experiment/models/VBRP": {"factors": 8}},
     ["unknown model 'VBRP' at experiment.models.VBRP", "did you mean 'VBPR'?", "known: ACF, DeepStyle"]),
    ("misspelt_external_model", {"experiment/models/external.DeepStile": {}},
     ["unknown model 'DeepStile' at experiment.models.external.DeepStile", "did you mean 'DeepStyle'?"]),
    ("misspelt_metric", {"experiment/evaluation/simple_metrics": ["Recall", "nDCG", "Recal"]},
     ["unknown metric 'Recal' at experiment.evaluation.simple_metrics[2]", "did you mean 'Recall'?",
      "known: ACLT, APLT"]),
    ("misspelt_complex_metric", {"experiment/evaluation/complex_metrics": [{"metric": "REOO"}]},
     ["unknown metric 'REOO' at experiment.evaluation.complex_metrics[0].metric", "did you mean 'REO'?"]),
    ("unknown_hyperparameter", {"experiment/models/VBPR/fators": 64},
     ["unknown VBPR hyperparameter 'fators' at experiment.models.VBPR.fators", "did you mean 'factors'?",
      "known: seed, epochs, batch_size, factors, factors_d, lr"]),
    ("bad_value_type", {"experiment/models/VBPR/factors": "many"},
     ["invalid value 'many' at experiment.models.VBPR.factors", "valid integer"]),
    ("value_out_of_range", {"experiment/models/VBPR/factors": 0},
     ["invalid value 0 at experiment.models.VBPR.factors", "greater than or equal to 1"]),
    ("bad_value_in_searched_list", {"experiment/models/VBPR/lr": [0.001, "fast"]},
     ["invalid value 'fast' at experiment.models.VBPR.lr[1]", "valid number"]),
    ("bad_tuple", {"experiment/models/ACF": {"layers_item": "(64, x)"}},
     ["invalid value '(64, x)' at experiment.models.ACF.layers_item", "expected a tuple such as (64, 1)"]),
    ("distribution_argument_count", {"experiment/models/VBPR/lr": ["loguniform", -10]},
     ["invalid search space ['loguniform', -10] at experiment.models.VBPR.lr",
      "loguniform takes 2 argument(s), got 1", "write [loguniform, low, high (of the log)]"]),
    ("distribution_empty_range", {"experiment/models/VBPR/lr": ["uniform", 0.1, 0.01],
                                  "experiment/models/VBPR/meta/hyper_max_evals": 3},
     ["at experiment.models.VBPR.lr", "uniform needs low < high, got [0.1, 0.01]"]),
    ("distribution_wrong_type_for_param", {"experiment/models/VBPR/factors": ["uniform", 0.5, 10],
                                           "experiment/models/VBPR/meta/hyper_max_evals": 3},
     ["uniform produces values such as 0.5, which are invalid at experiment.models.VBPR.factors",
      "valid integer"]),
    ("continuous_search_without_max_evals", {"experiment/models/VBPR/lr": ["loguniform", -10, -1]},
     ["missing hyper_max_evals at experiment.models.VBPR.meta.hyper_max_evals", "lr: loguniform",
      "set meta.hyper_max_evals"]),
    ("unknown_prefilter", {"experiment/prefiltering/strategy": "iterative_kcore"},
     ["unknown prefiltering strategy 'iterative_kcore' at experiment.prefiltering.strategy",
      "did you mean 'iterative_k_core'?", "known: global_threshold, iterative_k_core, user_k_core"]),
    ("unknown_prefilter_in_list", {"experiment/prefiltering": [{"strategy": "global_threshold", "threshold": 4},
                                                              {"strategy": "user_kcore", "core": 3}]},
     ["unknown prefiltering strategy 'user_kcore' at experiment.prefiltering[1].strategy",
      "did you mean 'user_k_core'?"]),
    ("missing_prefilter_option", {"experiment/prefiltering/core": DELETE},
     ["strategy 'iterative_k_core' needs option 'core' at experiment.prefiltering", "its options: core"]),
    ("unknown_splitter", {"experiment/splitting/test_splitting/strategy": "temporal_holdout"},
     ["unknown splitting strategy 'temporal_holdout' at experiment.splitting.test_splitting.strategy",
      "did you mean 'temporal_hold_out'?", "known: random_subsampling, temporal_hold_out"]),
    ("unknown_split_option", {"experiment/splitting/validation_splitting": {"strategy": "random_subsampling",
                                                                           "test_ration": 0.1}},
     ["unknown random_subsampling option 'test_ration' at experiment.splitting.validation_splitting.test_ration",
      "did you mean 'test_ratio'?", "known: folds, test_ratio, leave_n_out"]),
    ("unknown_hyper_opt_alg", {"experiment/models/VBPR/meta/hyper_opt_alg": "bayes"},
     ["unknown hyper_opt_alg 'bayes' at experiment.models.VBPR.meta.hyper_opt_alg",
      "known: anneal, atpe, grid, mix, rand, tpe"]),
    ("validation_metric_not_configured", {"experiment/models/VBPR/meta/validation_metric": "MAP@10"},
     ["validation metric 'MAP@10' names metric 'MAP', which is not in experiment.evaluation.simple_metrics "
      "at experiment.models.VBPR.meta.validation_metric", "configured: Recall, nDCG"]),
    ("validation_cutoff_not_configured", {"experiment/models/VBPR/meta/validation_metric": "Recall@20"},
     ["validation metric 'Recall@20' uses cutoff 20, which is not in experiment.evaluation.cutoffs "
      "at experiment.models.VBPR.meta.validation_metric", "configured cutoffs: 5, 10"]),
    ("validation_metric_format", {"experiment/models/VBPR/meta/validation_metric": "Recall@ten"},
     ["invalid validation metric 'Recall@ten' at experiment.models.VBPR.meta.validation_metric",
      "Metric@cutoff"]),
    ("early_stopping_monitor_not_configured", {"experiment/models/VBPR/early_stopping": {"monitor": "HR@5"}},
     ["early_stopping monitor 'HR@5' names metric 'HR'", "at experiment.models.VBPR.early_stopping.monitor"]),
    ("cutoff_above_top_k", {"experiment/evaluation/cutoffs": [5, 50]},
     ["cutoff 50 exceeds top_k 10 at experiment.evaluation.cutoffs[1]", "raise top_k to 50"]),
    ("cutoff_above_default_top_k", {"experiment/top_k": DELETE, "experiment/evaluation/cutoffs": 20},
     ["cutoff 20 exceeds top_k 10 at experiment.evaluation.cutoffs[0]"]),
    ("bad_top_k", {"experiment/top_k": "ten"}, ["invalid value 'ten' at experiment.top_k", "integer >= 1"]),
    ("missing_path_for_fixed_strategy", {"experiment/data_config": {"strategy": "fixed", "train_path": "a.tsv"}},
     ["strategy 'fixed' needs test_path at experiment.data_config"]),
    ("missing_path_for_dataset_strategy", {"experiment/data_config/dataset_path": DELETE},
     ["strategy 'dataset' needs dataset_path at experiment.data_config"]),
    ("unknown_data_strategy", {"experiment/data_config/strategy": "fixd"},
     ["invalid value 'fixd' at experiment.data_config.strategy", "'dataset', 'fixed' or 'hierarchy'"]),
    ("dataset_strategy_without_splitting", {"experiment/splitting": DELETE},
     ["missing 'splitting' block at experiment.splitting", "needs splitting.test_splitting"]),
    ("save_on_disk_without_folder", {"experiment/splitting/save_on_disk": True},
     ["save_on_disk: True needs save_folder at experiment.splitting"]),
    ("missing_dataset", {"experiment/dataset": DELETE},
     ["missing required key at experiment.dataset", "replaces {0}"]),
    ("missing_data_config", {"experiment/data_config": DELETE},
     ["missing required key at experiment.data_config"]),
    ("no_models", {"experiment/models": {}}, ["no models to run at experiment.models"]),
    ("unknown_top_level_key", {"experiment/top_kk": 10},
     ["unknown key 'top_kk' at experiment.top_kk", "did you mean 'top_k'?"]),
    ("unknown_meta_key", {"experiment/models/VBPR/meta/hyper_max_eval": 3},
     ["unknown key 'hyper_max_eval' at experiment.models.VBPR.meta.hyper_max_eval",
      "did you mean 'hyper_max_evals'?"]),
    ("unknown_evaluation_key", {"experiment/evaluation/cutoff": 5},
     ["unknown key 'cutoff' at experiment.evaluation.cutoff", "did you mean 'cutoffs'?"]),
    ("unknown_feature_loader", {"experiment/data_config/side_information/0/dataloader": "VisualLoadr"},
     ["unknown feature loader 'VisualLoadr' at experiment.data_config.side_information[0].dataloader",
      "did you mean 'VisualLoader'?"]),
    ("side_information_mapping_without_loader", {"experiment/data_config/side_information": {"visual_features": "f/"}},
     ["side_information given as a mapping but no loader named at experiment.data_config.side_information",
      "set data_config.dataloader"]),
    ("top_level_negative_sampling_bad_key", {"experiment/negative_sampling": {"strategy": "random", "num_item": 9}},
     ["unknown key 'num_item' at experiment.negative_sampling.num_item", "did you mean 'num_items'?"]),
    ("negative_sampling_bad_strategy", {"experiment/evaluation/negative_sampling": {"strategy": "uniform"}},
     ["invalid value 'uniform' at experiment.evaluation.negative_sampling.strategy", "'random' or 'fixed'"]),
    ("validation_rate_after_last_epoch", {"experiment/models/VBPR/meta/validation_rate": 15},
     ["validation_rate 15 is later than the last epoch (epochs: 2) at experiment.models.VBPR.meta.validation_rate"]),
    ("extraction_block_unknown_key", {"experiment/extraction": [{"images": "../img", "backbone": "resnet50",
                                                                 "batchsize": 4}]},
     ["key 'batchsize': Extra inputs are not permitted at experiment.extraction[0]"]),
    ("model_body_not_a_mapping", {"experiment/models/VBPR": [1, 2]},
     ["expected a mapping of hyperparameters, got [1, 2] at experiment.models.VBPR"]),
]


@pytest.mark.parametrize(("changes", "expected"), [(c, e) for _, c, e in CASES], ids=[i for i, _, _ in CASES])
def test_bad_config_is_reported_with_key_path_value_and_fix(
        changes: dict[str, Any], expected: list[str], write_config: Callable[[Any, str], Path]) -> None:
    path = write_config(mutated(changes), "bad.yml")
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for part in expected:
        assert part in message, f"{part!r} not in:\n{message}"


def test_base_config_of_the_table_is_valid(write_config: Callable[[Any, str], Path]) -> None:
    exp = load_experiment(write_config(BASE, "base.yml"))
    assert [spec.key for spec in exp.models] == ["VBPR", "MostPop"]


def test_several_problems_are_reported_together(write_config: Callable[[Any, str], Path]) -> None:
    path = write_config(mutated({"experiment/evaluation/simple_metrics": ["Recal", "nDCG"],
                                 "experiment/models/VBPR/fators": 3}), "two.yml")
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert "2 problems in the config" in str(info.value)
    assert [p.at for p in info.value.problems] == ["experiment.evaluation.simple_metrics[0]",
                                                   "experiment.models.VBPR.fators"]


@pytest.mark.parametrize(("text", "expected"), [
    ("experiment:\n  dataset: toy\n  top_k: [10\n", ["invalid YAML at line 4", "expected ',' or ']'"]),
    ("experiment:\n  dataset: toy\n   data_config: {}\n", ["invalid YAML at line 3"]),
    ("experiment:\n  dataset: a\n  dataset: b\n", ["invalid YAML at line 3", "key 'dataset' appears twice"]),
    ("experiments:\n  dataset: toy\n", ["no top-level 'experiment:' key (found ['experiments'])"]),
    ("", ["no top-level 'experiment:' key (found NoneType)"]),
    ("experiment: toy\n", ["expected a mapping, got 'toy' at experiment"]),
], ids=["unclosed_list", "bad_indent", "duplicate_key", "misspelt_root", "empty_file", "root_not_mapping"])
def test_unreadable_yaml_is_a_config_error(text: str, expected: list[str],
                                           write_config: Callable[[Any, str], Path]) -> None:
    path = write_config(text, "broken.yml")
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert str(info.value).startswith(f"{path}: ")
    for part in expected:
        assert part in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothere\.yml: config file not found"):
        load_experiment(tmp_path / "nothere.yml")
