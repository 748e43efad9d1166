"""Fixtures for the config tests: registries holding known fakes, and configs written to tmp files.

The loader validates names against the registries that other layers populate. The tests swap in
registries holding fakes shaped like the real entries (Elliot's names, the fork's hyperparameters,
strategies with keyword-only options), so they check the loader and nothing else, and keep working
whatever the real catalogue holds. ``SEARCH_ALGORITHMS`` stays real: its entries are this area's.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from elliot_visual import registry
from elliot_visual.models.base import HyperParams, IntTuple, TrainParams, hp


class VBPRParams(TrainParams):
    factors: int = hp(100, ge=1)
    factors_d: int = hp(20, ge=1)
    lr: float = hp(0.0005, gt=0)
    l_w: float = hp(0.000025, ge=0)
    l_b: float = hp(0.0, ge=0)
    l_e: float = hp(0.002, ge=0)
    batch_eval: int = hp(512, "be", in_name=False)


class DeepStyleParams(TrainParams):
    factors: int = hp(100, ge=1)
    lr: float = hp(0.0005, gt=0)
    l_w: float = hp(0.000025, ge=0)


class ACFParams(TrainParams):
    factors: int = hp(100, ge=1)
    lr: float = hp(0.0005, gt=0)
    l_w: float = hp(0.000025, ge=0)
    layers_component: IntTuple = hp((64, 1))
    layers_item: IntTuple = hp((64, 1))


class VNPRParams(TrainParams):
    mf_factors: int = hp(10, ge=1)
    mlp_hidden_size: IntTuple = hp((32, 1))
    prob_keep_dropout: float = hp(0.2, gt=0, le=1)
    lr: float = hp(0.001, gt=0)
    l_w: float = hp(0.001, ge=0)
    l_v: float = hp(0.001, ge=0)


class ProxyParams(HyperParams):
    path: Path = hp(...)


def _model(name: str, params: type[HyperParams]) -> type:
    return type(name, (), {"Params": params})


def _prefilter_k_core(frame: Any, *, core: int) -> Any:
    return frame


def _global_threshold(frame: Any, *, threshold: int | str) -> Any:
    return frame


def _temporal_hold_out(frame: Any, rng: Any, *, test_ratio: float | None = None,
                       leave_n_out: int | None = None) -> Any:
    return frame


def _random_subsampling(frame: Any, rng: Any, *, folds: int = 1, test_ratio: float | None = None,
                        leave_n_out: int | None = None) -> Any:
    return frame


FAKES: dict[str, dict[str, Any]] = {
    "MODELS": {"VBPR": _model("VBPR", VBPRParams), "DeepStyle": _model("DeepStyle", DeepStyleParams),
               "ACF": _model("ACF", ACFParams), "VNPR": _model("VNPR", VNPRParams),
               "MostPop": _model("MostPop", HyperParams), "ProxyRecommender": _model("Proxy", ProxyParams)},
    "METRICS": {name: object() for name in (
        "Precision", "Recall", "AUC", "HR", "F1", "MRR", "MAP", "nDCG", "ItemCoverage", "Gini", "EFD", "EPC",
        "ACLT", "APLT", "ARP", "REO", "UserMADrating")},
    "FEATURE_LOADERS": {"VisualLoader": object(), "VisualAttribute": object()},
    "PREFILTERS": {"iterative_k_core": _prefilter_k_core, "user_k_core": _prefilter_k_core,
                   "global_threshold": _global_threshold},
    "SPLITTERS": {"temporal_hold_out": _temporal_hold_out, "random_subsampling": _random_subsampling},
}


@pytest.fixture
def fake_registries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Replace the populated registries' contents with :data:`FAKES` for one test."""
    for attribute, entries in FAKES.items():
        reg = getattr(registry, attribute)
        monkeypatch.setattr(reg, "_entries", {})
        monkeypatch.setattr(reg, "_spelling", {})
        monkeypatch.setattr(reg, "_populated", True)
        for name, entry in entries.items():
            reg.register(name, entry)
    yield


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A project-like layout: ``<tmp>/config_files`` next to ``<tmp>/data``."""
    folder = tmp_path / "config_files"
    folder.mkdir()
    return folder


@pytest.fixture
def write_config(config_dir: Path) -> Callable[[Any, str], Path]:
    """Write a config (a dict, dumped as YAML, or YAML text as is) into ``config_files/``."""

    def write(content: Any, name: str = "experiment.yml") -> Path:
        path = config_dir / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write
