"""Reload a finished run's trained interpretable model from its results folder (for affinity / serve).

A run's ``run.json`` names its config; the config rebuilds the same split (seeded) and the same
feature store, ``bestmodelparams_*.json`` gives each entry's selected hyperparameters, and
``weights/<model name>/best-weights.pt`` (written with ``meta.save_weights: True``) its weights.
The model must be a VBPR-family model (``score_with_features``) whose features have names
(``AttributeFeatures``); which one is chosen by family, entry key or full name when several are.
Nothing is written: the split is rebuilt in memory even when the config saves splits.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from elliot_visual.config import load_experiment
from elliot_visual.data.interactions import Interactions
from elliot_visual.data.loading import prepare_data
from elliot_visual.features.store import side_information_provider
from elliot_visual.interactive.affinity import DEFAULT_SAMPLE, AffinityExplorer
from elliot_visual.models.base import DEFAULT_LOADER, Recommender, build_model
from elliot_visual.registry import MODELS
from elliot_visual.reports.run_record import read_run_record
from elliot_visual.storage import safe_file_name

log = logging.getLogger(__name__)
WEIGHTS_FILE = "best-weights.pt"


class RunError(ValueError):
    """The results folder cannot give a model for the affinity page; the message says why and what to do."""


@dataclass
class TrainedRun:
    """A reloaded model with everything the affinity API and the page need, aligned to ``data``."""

    name: str
    model: Recommender
    data: Interactions
    features: np.ndarray          # (n_items, D) the model's named item features
    feature_names: list[str]
    images: dict[str, Path]       # item id -> its image file, all inside ``image_folder``
    image_folder: Path | None

    def explorer(self, sample_size: int = DEFAULT_SAMPLE, seed: int = 42) -> AffinityExplorer:
        """The affinity API over this model (eq. 5's item sample seeded by ``seed``)."""
        return AffinityExplorer(self.model, self.features, self.feature_names, list(self.data.user_ids),
                                list(self.data.item_ids), self.data.train, sample_size=sample_size, seed=seed)


def _best_configurations(performance: Path, stamp: str) -> dict[str, dict]:
    """model name -> its configuration, from the run's ``bestmodelparams_*_<stamp>.json``."""
    files = sorted(performance.glob(f"bestmodelparams_cutoff_*_{stamp}.json"))
    if not files:
        raise RunError(f"{performance}: no bestmodelparams_*_{stamp}.json; the run did not finish")
    _, *entries = json.loads(files[0].read_text(encoding="utf-8"))
    return {entry["recommender"]: entry["configuration"] for entry in entries}


def _choose(models: list[dict], wanted: str | None) -> dict:
    """The record entry of the interpretable model: ``wanted`` (family, key or name) or the only one."""
    scorers = [m for m in models if m["family"] in MODELS.names()
               and hasattr(MODELS.get(m["family"]), "score_with_features")]
    if wanted is not None:
        matches = [m for m in models if wanted in (m["family"], m["key"], m["model"])]
        if not matches:
            raise RunError(f"no model {wanted!r} in this run (models: {', '.join(m['family'] for m in models)})")
        if matches[0] not in scorers:
            raise RunError(f"model {wanted!r} is not a VBPR-family model (it cannot score items with other "
                           "features); the affinity vector needs VBPR or one of its descendants")
        return matches[0]
    if not scorers:
        raise RunError("this run has no VBPR-family model; train VBPR (or I-VBPR) on AttributeFeatures")
    return scorers[0]


def load_trained_run(folder: str | Path, model: str | None = None) -> TrainedRun:
    """Rebuild the split, the features and the trained weights of ``model`` from the run in ``folder``."""
    root = Path(folder)
    record = read_run_record(root)
    chosen = _choose(record["models"], model)
    config_path = Path(record["config_path"])
    if not config_path.is_file():
        raise RunError(f"the run's config {config_path} no longer exists; the model cannot be rebuilt without it")
    if config_path.read_text(encoding="utf-8") != record["config_text"]:
        log.warning("%s changed since the run; the split and features are rebuilt from its current text", config_path)
    exp = load_experiment(config_path)
    if exp.splitting is not None and exp.splitting.save_on_disk:
        exp = exp.model_copy(update={"splitting": exp.splitting.model_copy(update={"save_on_disk": False})})
    data_section = exp.data
    folds, provider = side_information_provider(data_section, prepare_data(data_section, verbose=False))
    inner = folds[-1]
    data = inner[-1]
    cls = MODELS.get(chosen["family"])
    configuration = _best_configurations(root / record["folders"]["performance"], record["stamp"])[chosen["model"]]
    params = cls.Params(**{k: v for k, v in configuration.items() if k in cls.Params.model_fields})
    store = provider.store(data)
    loader = chosen.get("loader") or configuration.get("loader") or DEFAULT_LOADER  # bound in the model entry
    names = store.column_names(loader, "visual_features") if store.has(loader, "visual_features") else None
    if names is None:
        raise RunError(f"{chosen['model']} reads unnamed features (side information '{loader}'); the affinity "
                       "vector speaks in feature names: train it on an AttributeFeatures entry")
    suffix = f"_fold={len(inner) - 1}" if len(inner) > 1 else ""
    weights = root / record["folders"]["weights"] / safe_file_name(chosen["model"] + suffix) / WEIGHTS_FILE
    if not weights.is_file():
        raise RunError(f"{weights} does not exist; rerun with meta.save_weights: True for {chosen['key']}")
    built = build_model(cls, params, data.n_users, data.n_items, provider(cls, loader, data))
    built.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    built.eval()
    folder_of_images, images = _images(store)
    return TrainedRun(chosen["model"], built, data, np.asarray(store.get(loader, "visual_features")), list(names),
                      images, folder_of_images)


def _images(store) -> tuple[Path | None, dict[str, Path]]:  # noqa: ANN001  (a FeatureStore)
    """The run's image folder (its ``Images`` side information) and the catalogue items' files in it."""
    for kinds in store.namespaces.values():
        source = kinds.get("images")
        if source is not None and hasattr(source, "files"):
            folder = Path(source.folder).resolve()
            catalogue = {str(i) for i in store.item_ids}
            files = {item: Path(path).resolve() for item, path in source.files.items() if item in catalogue}
            return folder, {item: path for item, path in files.items() if path.parent == folder}
    return None, {}
