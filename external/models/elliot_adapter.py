"""An elliot_visual model dressed as an Elliot external model (``RecMixin`` + ``BaseRecommenderModel``).

Elliot builds an external model as ``Model(data, config, params)`` inside its ``init_charger``
decorator and then calls ``train()``, ``get_loss()``, ``get_params()`` and ``get_results()``. This
adapter keeps Elliot's side of that contract and hands the work to the package:

* ``_params_list`` (Elliot's 6-tuples) is generated from the model's ``Params``; the values Elliot
  reads are validated by ``Params`` (so ``"1e-5"`` strings and ``"(64, 1)"`` tuples are cast);
* the train matrix and ids come from Elliot's data object in Elliot's own index order, features
  from ``data.side_information.<loader>`` (our loaders registered by ``elliot_launcher``, or
  Elliot's ``VisualAttribute`` folders), aligned through the FeatureStore;
* training runs the package's one loop; each validation event calls Elliot's ``evaluate`` so
  Elliot records results, saves recommendations and weights as usual;
* ``get_recommendations(k)`` returns Elliot's ``(val, test)`` pair of
  ``{public user: [(public item, score), ...]}``, train items masked (or Elliot's sampled masks);
* ``self._model`` offers ``save_weights``/``load_weights`` (PyTorch state dicts, written atomically).

The report name is ``EV-<our name>``, so a row never overwrites Elliot's built-in model of the same
family. Without Elliot installed the classes still import (their contract can be inspected and
tested); building one raises :class:`ElliotNotInstalledError`.
"""
from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from elliot_visual.data.interactions import HeldOut, Interactions
from elliot_visual.elliot_launcher import ElliotNotInstalledError
from elliot_visual.evaluation.scoring import ModelScores
from elliot_visual.features.loaders.elliot import VisualAttribute
from elliot_visual.features.sources import FeatureSource
from elliot_visual.features.store import FeatureStore
from elliot_visual.models.base import DEFAULT_LOADER, Recommender, build_model, format_value
from elliot_visual.registry import MODELS, SAMPLERS
from elliot_visual.storage import write_bytes
from elliot_visual.training.loop import EpochRecord, TrainingConfig, load_checkpoint_file, resolve_device, train

REPORT_PREFIX = "EV-"
ELLIOT_MISSING = ("Elliot is not installed, so external.{name} cannot be built. Install Elliot "
                  "(not on PyPI: clone https://github.com/sisinflab/elliot and `pip install -e .` it) and run it through `start_experiments.py --engine elliot`, or run the "
                  "native engine: `start_experiments.py --config <file>` with `{name}` as the model key.")
BASE_KEYS = ("seed", "epochs", "batch_size")  # read by Elliot's BaseRecommenderModel itself



try:
    from elliot.recommender.base_recommender_model import BaseRecommenderModel, init_charger
    from elliot.recommender.recommender_utils_mixin import RecMixin

    ELLIOT_AVAILABLE = True
except ImportError:
    ELLIOT_AVAILABLE = False

    class RecMixin:  # type: ignore[no-redef]
        """Stand-in so the adapter classes exist (and can be inspected) without Elliot."""

    class BaseRecommenderModel:  # type: ignore[no-redef]
        """Stand-in: building a model without Elliot is an error that says what to do."""

        def __init__(self, data: Any, config: Any, params: Any, *args: Any, **kwargs: Any) -> None:
            raise ElliotNotInstalledError(ELLIOT_MISSING.format(name=getattr(self, "model_name", "?")))

    def init_charger(init: Any) -> Any:  # type: ignore[no-redef]
        def charged(self: Any, data: Any, config: Any, params: Any, *args: Any, **kwargs: Any) -> None:
            BaseRecommenderModel.__init__(self, data, config, params, *args, **kwargs)
        return charged


def params_list(model_cls: type[Recommender]) -> list[tuple[str, str, str, Any, Any, Any]]:
    """Elliot's ``_params_list`` for ``model_cls``: (attribute, key, shortcut, default, read, print).

    Values pass through unchanged when read (``Params`` validates them all together afterwards)
    and are printed as Elliot prints them (tuples as ``64-1``).
    """
    fields = model_cls.Params.model_fields
    sampler_options = set(SAMPLERS.get(model_cls.sampler).Options.model_fields)

    def row(name: str) -> tuple[str, str, str, Any, Any, Any]:
        info = fields[name]
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        default = None if info.is_required() else info.default
        return (f"_{name}", name, extra.get("short") or name, default, None, format_value)

    rows = [row(n) for n in fields if n not in BASE_KEYS and n not in sampler_options]
    if model_cls.loader_in_name:  # Elliot passes the feature namespace as a model parameter
        rows.append(("_loader", "loader", "load", DEFAULT_LOADER, None, format_value))
    rows += [row(n) for n in fields if n not in BASE_KEYS and n in sampler_options]  # sampler options last
    return rows


class TorchWeights:
    """``self._model`` as Elliot's RecMixin expects it: ``save_weights`` / ``load_weights`` of a torch model."""

    def __init__(self, model: Recommender) -> None:
        self.model = model

    def save_weights(self, path: str) -> None:
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, buffer)
        write_bytes(path, buffer.getvalue())

    def load_weights(self, path: str) -> None:
        self.model.load_state_dict(load_checkpoint_file(Path(path), self.model.device))


def interactions_from_elliot(data: Any) -> Interactions:
    """Elliot's data object as :class:`Interactions`, in Elliot's own user and item index order."""
    user_ids = np.asarray([str(data.private_users[u]) for u in range(data.num_users)], dtype=object)
    item_ids = np.asarray([str(data.private_items[i]) for i in range(data.num_items)], dtype=object)
    ratings = getattr(data, "sp_i_train_ratings", None)
    matrix = sp.csr_matrix(ratings if ratings is not None else data.sp_i_train, dtype=np.float32)
    matrix.sort_indices()
    empty = HeldOut(users=np.zeros(0, np.int64), items=np.zeros(0, np.int64), item_ids=np.zeros(0, object),
                    ratings=np.zeros(0))
    return Interactions(name=str(getattr(getattr(data, "config", None), "dataset", "elliot")), user_ids=user_ids,
                        item_ids=item_ids, train=matrix, test=empty)


def _sources_of(namespace: Any) -> dict[str, FeatureSource]:
    """Feature sources behind one ``data.side_information`` namespace.

    Our loaders (registered by ``elliot_launcher``) carry their sources; Elliot's own
    ``VisualAttribute`` namespace carries folder paths, read here with the same loader.
    """
    ours = getattr(namespace, "elliot_visual_sources", None) or getattr(getattr(namespace, "object", None),
                                                                       "elliot_visual_sources", None)
    if ours is not None:
        return dict(ours)
    folders = {"visual_features": "visual_feature_folder_path", "visual_pca_features": "visual_pca_feature_folder_path",
               "visual_feat_map_features": "visual_feat_map_feature_folder_path",
               "images_src_folder": "images_folder_path"}
    options = {key: getattr(namespace, attr) for key, attr in folders.items() if getattr(namespace, attr, None)}
    if getattr(namespace, "image_size_tuple", None) is not None:
        options["output_image_size"] = tuple(namespace.image_size_tuple)
    return VisualAttribute(options, entry="side_information (Elliot's VisualAttribute)").sources() if options else {}


def features_from_elliot(data: Any, model_cls: type[Recommender], loader: str | None,
                         interactions: Interactions) -> dict[str, torch.Tensor]:
    """The tensors ``model_cls`` needs, from every namespace of ``data.side_information``."""
    side = getattr(data, "side_information", None)
    namespaces = {name: _sources_of(ns) for name, ns in (vars(side).items() if side is not None else ())
                  if isinstance(ns, SimpleNamespace) or hasattr(ns, "__dict__")}
    namespaces = {name: sources for name, sources in namespaces.items() if sources}
    return FeatureStore(namespaces, interactions).tensors_for(model_cls, loader)


class ElliotAdapter(RecMixin, BaseRecommenderModel):
    """Base of every ``external.<Model>`` class; subclasses set ``model_name`` (a registry name)."""

    model_name: ClassVar[str] = ""

    @classmethod
    def params_list(cls) -> list[tuple[str, str, str, Any, Any, Any]]:
        return params_list(MODELS.get(cls.model_name))

    @init_charger
    def __init__(self, data: Any, config: Any, params: Any, *args: Any, **kwargs: Any) -> None:
        self._model_cls = MODELS.get(self.model_name)
        self._params_list = self.params_list()
        self.autoset_params()
        fields = self._model_cls.Params.model_fields
        given = {key: getattr(self, attr) for attr, key, *_ in self._params_list
                 if hasattr(params, key) and key in fields}
        given.update({alias: getattr(params, alias) for alias in getattr(self._model_cls.Params, "ALIASES", ())
                      if hasattr(params, alias)})
        base = {"seed": self._seed, "epochs": self._epochs, "batch_size": self._batch_size}
        given.update({k: v for k, v in base.items() if k in fields})
        self._hyper = self._model_cls.Params(**given)
        gpu = int(getattr(config, "gpu", -1))
        self._device = resolve_device(0 if gpu >= 0 else -1)  # Elliot exposes only the chosen GPU, as cuda:0
        self._interactions = interactions_from_elliot(data)
        self._bound_loader = str(getattr(self, "_loader", DEFAULT_LOADER)) if self._model_cls.loader_in_name else None
        features = features_from_elliot(data, self._model_cls, self._bound_loader, self._interactions)
        self._recommender = build_model(self._model_cls, self._hyper, data.num_users, data.num_items,
                                        features).to(self._device)
        self._model = TorchWeights(self._recommender)

    @property
    def name(self) -> str:
        return REPORT_PREFIX + self._model_cls.report_name(self._hyper, self._bound_loader)

    def train(self) -> None:
        if getattr(self, "_restore", False):
            return self.restore_weights()
        if not self._model_cls.is_gradient_model():
            self._recommender.fit(self._interactions)
            self.evaluate()
            return None
        last: list[EpochRecord] = []

        def validate(_: Recommender) -> float:
            # Elliot's own models call evaluate(it, loss / (it + 1)) with the epoch's summed batch losses
            it = last[-1].epoch - 1
            self.evaluate(it, last[-1].loss / (it + 1))
            return float(self._results[-1][self._validation_k]["val_results"][self._validation_metric])

        config = TrainingConfig(validation_rate=int(self._validation_rate), device=self._device,
                                progress=bool(getattr(self, "_verbose", False)), description=self.name,
                                verbose=bool(getattr(self, "_verbose", False)), on_epoch=last.append)
        train(self._recommender, self._interactions, config, validate)
        return None

    def get_recommendations(self, k: int = 100) -> tuple[dict, dict]:
        """Elliot's ``(val_recs, test_recs)``: top-k ``(public item, score)`` lists per public user."""
        val, test = {}, {}
        self._recommender.eval()
        block = int(getattr(self._hyper, "batch_eval", 512))
        sampled = bool(getattr(self, "_negative_sampling", False))
        score = ModelScores(self._recommender)  # the item side once for every block of users
        with torch.no_grad():
            for offset in range(0, self._interactions.n_users, block):
                stop = min(offset + block, self._interactions.n_users)
                scores = score(torch.arange(offset, stop, device=self._device)).float()
                if sampled:
                    val.update(self.get_single_recommendation(self._data.val_mask[offset:stop], k, scores, offset, stop))
                    test.update(self.get_single_recommendation(self._data.test_mask[offset:stop], k, scores, offset,
                                                               stop))
                else:
                    recs = self.get_single_recommendation(self._candidates(offset, stop), k, scores, offset, stop)
                    val.update(recs)
                    test.update(recs)
        return val, test

    def _candidates(self, offset: int, stop: int) -> np.ndarray:
        """(stop - offset, n_items) True where an item is not one of the user's train items (Elliot's mask)."""
        mask = getattr(self._data, "allunrated_mask", None)
        if mask is not None:
            return np.asarray(mask[offset:stop])
        return self._interactions.train[offset:stop].toarray() == 0

    def get_single_recommendation(self, mask: Any, k: int, predictions: torch.Tensor, offset: int,
                                  offset_stop: int) -> dict:
        """Masked top-k of one user block, keyed by public ids (Elliot's hook, in torch)."""
        candidates = torch.as_tensor(np.asarray(mask), dtype=torch.bool, device=predictions.device)
        masked = torch.where(candidates, predictions, torch.tensor(float("-inf"), device=predictions.device))
        values, indices = masked.topk(min(k, masked.shape[1]), dim=1)
        values, indices = values.cpu().numpy(), indices.cpu().numpy()
        items = self._data.private_items
        return {self._data.private_users[offset + row]: [(items[int(i)], float(v)) for i, v in zip(idx, val)]
                for row, (idx, val) in enumerate(zip(indices, values))}

    def restore_weights(self) -> None:
        self._model.load_weights(self._saving_filepath)
        self.evaluate()


def adapter_for(model_name: str) -> type[ElliotAdapter]:
    """The ``external.<model_name>`` class (named like the model, as Elliot looks it up)."""
    MODELS.get(model_name)  # an unknown name fails here, listing the known ones
    return type(model_name, (ElliotAdapter,), {"model_name": model_name, "__module__": __name__,
                                               "__doc__": f"Elliot external model running elliot_visual's "
                                                          f"{model_name} (report name EV-{model_name}_...)."})
