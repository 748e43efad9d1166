"""The loader against the real registries: Elliot's names resolve and strategy options match their code."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from elliot_visual.config import ConfigError, load_experiment
from elliot_visual.registry import MODELS

CONFIG = """
experiment:
  dataset: movielens
  data_config:
    strategy: dataset
    dataset_path: ../data/{0}/dataset.tsv
  prefiltering:
    - strategy: global_threshold
      threshold: 3
    - strategy: iterative_k_core
      core: 5
  splitting:
    test_splitting:
      strategy: temporal_hold_out
      test_ratio: 0.2
    validation_splitting:
      strategy: random_subsampling
      leave_n_out: 1
  top_k: 20
  evaluation:
    cutoffs: [10, 20]
    simple_metrics: [nDCG, recall, AUC]
  models:
    BPRMF:
      meta:
        hyper_opt_alg: grid
        validation_metric: Recall@20
      epochs: 2
      batch_size: 64
      factors: [8, 16]
      lr: [0.001, 1e-2]
      l_w: 1e-5
    MostPop: {}
    Random:
      seed: 3
"""


def test_elliot_baseline_config_loads_with_the_real_catalogue(write_config: Callable[[str, str], Path]) -> None:
    exp = load_experiment(write_config(CONFIG, "movielens.yml"))
    assert exp.evaluation.simple_metrics == ["nDCG", "Recall", "AUC"]
    assert [p.strategy for p in exp.prefiltering] == ["global_threshold", "iterative_k_core"]
    bprmf = exp.models[0]
    assert bprmf.params == {"epochs": 2, "batch_size": 64, "l_w": 1e-05}
    assert bprmf.search == {"factors": [8, 16], "lr": [0.001, "1e-2"]}
    assert bprmf.meta.validation_metric == "Recall@20"
    assert exp.models[2].params == {"seed": 3}
    # How a trial builds its params: a choice string and a quniform float are cast by Params.
    params = MODELS.get("BPRMF").Params(**{**bprmf.params, "factors": 16.0, "lr": "1e-2"})
    assert params.lr == 0.01 and params.factors == 16 and type(params.factors) is int


def test_real_strategy_options_are_checked(write_config: Callable[[str, str], Path]) -> None:
    text = CONFIG.replace("      core: 5\n", "      cores: 5\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(write_config(text, "typo.yml"))
    assert "unknown iterative_k_core option 'cores' at experiment.prefiltering[1].cores" in str(info.value)
    assert "did you mean 'core'?" in str(info.value)
