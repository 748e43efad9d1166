"""elliot_visual's models as Elliot external models: ``external.VBPR``, ``external.DeepStyle``, ...

Point a real Elliot at this file (``experiment.external_models_path: ../external/models/__init__.py``)
and name models ``external.<Model>`` in ``models:``. Elliot executes this file as a package called
``external`` once the data are loaded, so only relative imports are used here and the package
``elliot_visual`` must be installed (``pip install -e .``). Our side-information loaders must be
registered before Elliot loads the data: start Elliot through ``start_experiments.py --engine
elliot`` (``elliot_visual.elliot_launcher``), not through Elliot's own ``start_experiments.py``.

Report names are prefixed ``EV-`` (``EV-VBPR_seed=42_e=20_...``) so they never overwrite the row of
Elliot's built-in model of the same family. Without Elliot the module still imports.
"""
from elliot_visual.registry import MODELS

from .elliot_adapter import ELLIOT_AVAILABLE, ElliotAdapter, ElliotNotInstalledError, adapter_for

VBPR = adapter_for("VBPR")
DeepStyle = adapter_for("DeepStyle")
ACF = adapter_for("ACF")
VNPR = adapter_for("VNPR")
DVBPR = adapter_for("DVBPR")
VisRank = adapter_for("VisRank")

# Every other registered model (baselines, plugins) under its registry name, too.
for _name in MODELS.names():
    if _name not in globals():
        globals()[_name] = adapter_for(_name)

__all__ = ["ELLIOT_AVAILABLE", "ElliotAdapter", "ElliotNotInstalledError", *MODELS.names()]
