"""The model catalogue: one import per model file registers it (the visible list of models)."""
from elliot_visual.models import bprmf, most_pop, proxy, random  # noqa: F401  baselines
