"""The model catalogue: one import per model file registers it (the visible list of models)."""
from elliot_visual.models import bprmf, most_pop, proxy, random  # noqa: F401  baselines
from elliot_visual.models import vbpr  # noqa: F401  visual
from elliot_visual.models import deepstyle  # noqa: F401  visual
from elliot_visual.models import acf  # noqa: F401  visual
from elliot_visual.models import vnpr  # noqa: F401  visual
from elliot_visual.models import dvbpr  # noqa: F401  visual
from elliot_visual.models import visrank  # noqa: F401  visual
from elliot_visual.models import tvbpr  # noqa: F401  visual, temporal
from elliot_visual.models import category_pop  # noqa: F401  multilabel
from elliot_visual.models import poprank, warp, fm, mmmf  # noqa: F401  baselines of the ImgRec tables
from elliot_visual.models import imgrec  # noqa: F401  visual
from elliot_visual.models import aggregation  # noqa: F401  multilabel: AveragePooling, NeuralAggregation
