"""Introspection of interpretable VBPR-family models: affinity vectors, refinement, the local page."""
from elliot_visual.interactive.affinity import AffinityExplorer, Recommendation, Step, normalise

__all__ = ["AffinityExplorer", "Recommendation", "Step", "normalise"]
