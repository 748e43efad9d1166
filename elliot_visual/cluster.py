"""The connection to Ray, shared by tuning's Ray Tune backend and extraction's Ray Data pipeline.

``experiment.ray.address`` says where the work runs: ``local`` starts an in-process instance
(sized by ``num_cpus`` / ``num_gpus``, dashboard off, temporary files under ``temp_dir``), ``auto``
joins the cluster that ``ray start --head`` started on this node, ``ray://host:port`` (or
``host:port``) a remote one. When Ray is already initialised (a notebook, a test fixture, an outer
driver) that instance is used as it is. Ray is an optional extra, imported here on first use so
that a run without a ``ray:`` block never needs it.
"""
from __future__ import annotations

import logging
from typing import Any

from elliot_visual.config.schema import RayConfig

log = logging.getLogger(__name__)


def import_ray() -> Any:
    """``ray``, or an error saying how to install the extra."""
    try:
        import ray
    except ImportError:
        raise ImportError("experiment.ray needs Ray: pip install 'elliot_visual[ray]' "
                          "(ray[tune,data]); or remove the 'ray:' block to run here") from None
    return ray


def connect_ray(config: RayConfig) -> Any:
    """``ray``, connected as ``config`` says. The first call of a process starts (or joins) the
    instance and later calls reuse it, so a run's extraction blocks and tuned entries share one
    instance; Ray shuts it down when the process exits. An instance initialised by someone else
    (a notebook, a test fixture) is used as it is."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    options: dict[str, Any] = {"log_to_driver": True}
    if config.runtime_env is not None:
        options["runtime_env"] = config.runtime_env
    if config.address == "local":
        options.update(num_cpus=config.num_cpus, num_gpus=config.num_gpus, include_dashboard=False)
        if config.temp_dir is not None:
            config.temp_dir.mkdir(parents=True, exist_ok=True)
            options["_temp_dir"] = str(config.temp_dir)
        log.info("starting a local Ray instance (num_cpus=%s, num_gpus=%s)", config.num_cpus, config.num_gpus)
    else:
        options["address"] = config.address
        log.info("joining the Ray cluster at %s", config.address)
    ray.init(**options)
    return ray
