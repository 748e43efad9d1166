"""Conformance suites that every model (and third-party plugin) can reuse in its own tests."""
from elliot_visual.testing.contract import RecommenderContract, tiny_features, tiny_interactions

__all__ = ["RecommenderContract", "tiny_features", "tiny_interactions"]
