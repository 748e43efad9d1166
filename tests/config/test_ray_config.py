"""The ``experiment.ray`` block: defaults, paths anchored like every other folder, errors naming the key."""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from elliot_visual.config import ConfigError, load_experiment

BASE: dict[str, Any] = {"experiment": {
    "dataset": "toy",
    "data_config": {"strategy": "dataset", "dataset_path": "../data/{0}/dataset.tsv"},
    "splitting": {"test_splitting": {"strategy": "temporal_hold_out", "test_ratio": 0.2}},
    "top_k": 10,
    "models": {"MostPop": {}},
}}


def with_ray(block: Any) -> dict[str, Any]:
    config = copy.deepcopy(BASE)
    config["experiment"]["ray"] = block
    return config


def test_without_the_block_trials_run_locally(write_config: Callable[[Any, str], Path]) -> None:
    assert load_experiment(write_config(BASE, "base.yml")).ray is None


def test_defaults_and_storage_beside_the_results(write_config: Callable[[Any, str], Path],
                                                  config_dir: Path) -> None:
    ray = load_experiment(write_config(with_ray({}), "ray.yml")).ray
    assert ray.address == "local"
    assert (ray.cpus, ray.gpus, ray.max_concurrent_trials, ray.resume) == (1.0, 0.0, None, True)
    assert ray.scheduler is None and ray.extraction is None
    assert ray.storage_path == (config_dir.parent / "results" / "toy" / "ray").resolve()


def test_folders_substitute_the_dataset_and_anchor_at_the_config(
        write_config: Callable[[Any, str], Path], config_dir: Path) -> None:
    ray = load_experiment(write_config(with_ray({
        "address": "auto", "max_concurrent_trials": 4, "cpus": 2, "gpus": 0.5,
        "storage_path": "../state/{0}", "temp_dir": "/tmp/r",
        "scheduler": {"name": "asha", "grace_period": 2},
        "extraction": {"actors": 2, "gpus": 1}}), "ray.yml")).ray
    assert ray.storage_path == (config_dir.parent / "state" / "toy").resolve()
    assert ray.temp_dir == Path("/tmp/r")
    assert (ray.address, ray.max_concurrent_trials, ray.cpus, ray.gpus) == ("auto", 4, 2.0, 0.5)
    assert (ray.scheduler.grace_period, ray.scheduler.reduction_factor) == (2, 2.0)
    assert (ray.extraction.actors, ray.extraction.gpus, ray.extraction.decode_cpus) == (2, 1.0, 1.0)


@pytest.mark.parametrize(("block", "expected"), [
    ({"adress": "auto"}, ["experiment.ray", "adress"]),
    ({"address": "cluster"}, ["address 'cluster'", "'ray://host:port'", "experiment.ray"]),
    ({"max_concurrent_trials": 0}, ["experiment.ray.max_concurrent_trials"]),
    ({"address": "auto", "num_cpus": 4}, ["num_cpus / num_gpus size a local instance only"]),
    ({"scheduler": {"name": "pbt"}}, ["experiment.ray.scheduler.name", "asha"]),
    ("yes", ["expected a mapping, got 'yes' at experiment.ray"]),
])
def test_bad_ray_block_names_the_key(block: Any, expected: list[str],
                                     write_config: Callable[[Any, str], Path]) -> None:
    with pytest.raises(ConfigError) as info:
        load_experiment(write_config(with_ray(block), "bad.yml"))
    for part in expected:
        assert part in str(info.value), f"{part!r} not in:\n{info.value}"
