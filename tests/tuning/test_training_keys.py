"""The training keys of a config reach the training loop: ``meta.optimizer``, ``amp``, ``threads``."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from elliot_visual.data.synthetic import write_planted_dataset
from elliot_visual.experiment import run_experiment
from elliot_visual.training import loop
from elliot_visual.tuning import tune

CONFIG = """\
experiment:
  dataset: mini
  data_config:
    strategy: dataset
    dataset_path: ../data/{0}/dataset.tsv
  splitting:
    test_splitting: {strategy: temporal_hold_out, leave_n_out: 1}
    validation_splitting: {strategy: temporal_hold_out, leave_n_out: 1}
  top_k: 5
  evaluation: {cutoffs: [5], simple_metrics: [Recall]}
  gpu: -1
  %(top)s
  models:
    BPRMF:
      meta: {validation_metric: Recall@5%(meta)s}
      epochs: 2
      batch_size: 64
      factors: 4
"""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    write_planted_dataset(tmp_path / "data" / "mini", n_users=20, n_items=30, n_styles=2, feature_dim=4,
                          interactions_per_user=6)
    (tmp_path / "config_files").mkdir()
    return tmp_path


def _run(project: Path, monkeypatch, top: str = "", meta: str = "") -> tuple[list, list, int]:
    """Run the config; return the TrainingConfigs the tuner built, the optimizers the loop built and
    the torch threads the run set."""
    path = project / "config_files" / "mini.yml"
    path.write_text(CONFIG % {"top": top, "meta": meta})
    configs, optimizers = [], []
    original_train, original_build = tune.train, loop.build_optimizer

    def recording_train(model, data, config, validate=None, **keywords):
        configs.append(config)
        return original_train(model, data, config, validate, **keywords)

    def recording_build(model, name="adam"):
        optimizers.append(original_build(model, name))
        return optimizers[-1]

    monkeypatch.setattr(tune, "train", recording_train)
    monkeypatch.setattr(loop, "build_optimizer", recording_build)
    threads = torch.get_num_threads()
    try:
        run_experiment(path)
        ran_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    return configs, optimizers, ran_threads


def test_defaults_are_elliots_dense_adam_in_float32_on_one_thread(project: Path, monkeypatch) -> None:
    configs, optimizers, threads = _run(project, monkeypatch)
    assert [c.optimizer for c in configs] == ["adam"] and not configs[0].amp
    assert type(optimizers[0]) is torch.optim.Adam and threads == 1


def test_meta_optimizer_lazy_adam_and_amp_reach_the_loop(project: Path, monkeypatch) -> None:
    configs, optimizers, _ = _run(project, monkeypatch, top="amp: true", meta=", optimizer: lazy_adam")
    assert configs[0].optimizer == "lazy_adam" and configs[0].amp
    assert type(optimizers[0]).__name__ == "LazyAdam"


def test_an_unknown_optimizer_is_a_config_error_naming_the_choices(project: Path, monkeypatch) -> None:
    with pytest.raises(Exception, match=r"optimizer.*'adam'.*'lazy_adam'"):
        _run(project, monkeypatch, meta=", optimizer: sgd")
