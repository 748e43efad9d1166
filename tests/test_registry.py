"""The registry: strict, helpful lookups; duplicates rejected; case-insensitive metrics."""
from __future__ import annotations

import pytest

from elliot_visual.registry import MODELS, Registry, UnknownNameError


def test_unknown_name_lists_known_names_and_closest_match() -> None:
    registry: Registry = Registry("model")
    registry.register("VBPR", object())
    registry.register("DeepStyle", object())
    with pytest.raises(UnknownNameError) as info:
        registry.get("VPBR")
    assert "Did you mean 'VBPR'?" in str(info.value) and "DeepStyle, VBPR" in str(info.value)


def test_registering_a_name_twice_is_an_error() -> None:
    registry: Registry = Registry("metric")
    registry.register("Recall", object())
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("Recall", object())


def test_case_insensitive_registry_returns_registered_spelling() -> None:
    registry: Registry = Registry("metric", case_sensitive=False)
    marker = object()
    registry.register("nDCG", marker)
    assert registry.get("ndcg") is marker and registry.canonical("NDCG") == "nDCG"


def test_model_registry_is_populated_lazily_with_baselines() -> None:
    assert {"BPRMF", "MostPop", "Random", "ProxyRecommender"} <= set(MODELS.names())
