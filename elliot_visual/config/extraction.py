"""The keys of an ``extraction:`` (and ``finetune:``) block, validated at the door.

The experiment schema keeps ``extraction`` blocks open (``config.schema.Extraction``); this module
owns their keys (``extraction/`` runs them). A typo or a bad value raises :class:`ExtractionConfigError` naming the key::

    extraction:
      - images: ../data/{0}/images          # folder of <item_id>.<ext>, or a TSV item_id<TAB>path
        backbone: resnet50                  # a BACKBONES name (elliot_visual.registry)
        layers: [avgpool, conv5_block3_out] # aliases or FX node names; one pass over the images
                                            # (probabilities: softmax of the logits + names.txt)
        classes: [jersey, cardigan]         # keep these classes of 'probabilities' (by name;
                                            # not renormalised)
        weights: pretrained                 # | random (or null) | a weights tag | /path/to/file
        output: ../data/{0}/features        # -> <output>/<backbone>/<layer>/ (see extract.py)
        format: matrix                      # | per_item (Elliot's one <item_id>.npy per item)
        dtype: float32                      # | float16
        pca: 128                            # optional PCA-reduced copy of vector layers
        batch_size: 64
        gpu: 0                              # -1 CPU; default: the experiment's gpu
        precision: auto                     # CUDA: bf16 autocast (fp16 without bf16); CPU: fp32
        workers: null                       # loader processes; auto from the cores and the device
        shard_size: 1024                    # images per resumable shard (held in memory until
                                            # written: lower it for big feature maps)
        fast_jpeg: false                    # decode big JPEGs at a reduced DCT scale (faster,
                                            # slightly different pixels)
        preprocessing: {crop: 160}          # override parts of the weights' own preprocessing

A block with a ``metadata`` key fine-tunes first (:class:`FinetuneConfig`, ``finetune.py``).

Relative paths are anchored at ``base_dir`` (the folder of the config file) and ``{0}`` is the
dataset name, as in Elliot's configs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from elliot_visual.config.weights import weights_choice
from elliot_visual.registry import BACKBONES, KERAS_BACKBONES

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold (about 0.25 GiB RGB)


class ExtractionConfigError(ValueError):
    """An extraction/finetune block with a missing, unknown or invalid key."""


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class PreprocessingOverrides(_Block):
    """Replace parts of the weights' own preprocessing (e.g. a smaller ``crop`` for speed)."""

    resize: int | None = Field(None, ge=1)
    crop: int | None = Field(None, ge=1)
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos"] | None = None


class PCAConfig(_Block):
    """A PCA-reduced copy of each vector layer, written to ``<layer>_pca<n_components>/``."""

    n_components: int = Field(128, ge=1)
    whiten: bool = False


class ExtractionConfig(_Block):
    """One extraction run: which images, which network and layers, where and how to write."""

    images: Path
    backbone: str
    backend: Literal["torch", "tensorflow"] = "torch"
    layers: list[str] | None = None
    classes: list[str] | None = None  # a subset of the 'probabilities' layer's classes, by name
    weights: str | None = "pretrained"
    output: Path = Path("../data/{0}/features")
    name: str | None = None
    dataset: str | None = None
    format: Literal["matrix", "per_item"] = "matrix"
    dtype: Literal["float32", "float16"] = "float32"
    pca: PCAConfig | None = None
    batch_size: int = Field(64, ge=1)
    workers: int | None = Field(None, ge=0)
    gpu: int | None = Field(None, ge=-1)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    shard_size: int = Field(1024, ge=1)
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    fast_jpeg: bool = False  # decode large JPEGs at a reduced DCT scale: faster, slightly different
    preprocessing: PreprocessingOverrides | None = None
    progress: bool = True
    overwrite: bool = False
    seed: int = 42

    @field_validator("layers", mode="before")
    @classmethod
    def _one_layer(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _classes_need_probabilities(self) -> "ExtractionConfig":
        if self.classes is not None and not any(n.lower() == "probabilities" for n in self.layers or []):
            raise ValueError("key 'classes' selects columns of the 'probabilities' layer; add "
                             "'probabilities' to 'layers'")
        if self.classes is not None and not self.classes:
            raise ValueError("key 'classes' is empty; name at least one class or drop the key")
        if self.classes and self.backend == "torch":  # unknown class names fail at load time
            BACKBONES.get(self.backbone).probabilities(self.weights, self.classes)
        return self

    @field_validator("pca", mode="before")
    @classmethod
    def _pca_shorthand(cls, value: Any) -> Any:
        if value is True:
            return {}
        if value is False:
            return None
        if isinstance(value, int):
            return {"n_components": value}
        return value

    @field_validator("weights", mode="before")
    @classmethod
    def _weights_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, Path) else value

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str, info: Any) -> str:
        keras = info.data.get("backend", "torch") in ("tensorflow", "keras")
        (KERAS_BACKBONES if keras else BACKBONES).get(value)  # raises with the known names
        return value

    @property
    def folder_name(self) -> str:
        """The folder under ``output`` for this network (``name`` or the backbone's name)."""
        return self.name or self.backbone

    @property
    def device_index(self) -> int:
        return -1 if self.gpu is None else self.gpu


class TaskSpec(_Block):
    """One fine-tuning head: a metadata column, its loss kind and its weight in the total loss.

    ``multilabel``: the column holds ``label|label|...``; binary cross-entropy over the labels
    seen in training, positives weighted by ``pos_weight`` (the aggregation paper's weighted BCE).
    """

    column: str
    kind: Literal["categorical", "numeric", "multilabel"] | None = None
    weight: float = Field(1.0, gt=0)
    pos_weight: float = Field(1.0, gt=0)


class FinetuneConfig(ExtractionConfig):
    """A fine-tuning run; its features (the shared layer) are then written like an extraction's.

    ``mode: shallow`` trains the shared dense layer and the heads on frozen backbone features;
    ``deep`` also trains the backbone (its last ``deep_blocks`` blocks, all when unset).
    ``unfreeze_epochs`` > 0 adds a second phase that trains every layer at ``unfreeze_lr``
    (the aggregation paper: 10 epochs with the first layers frozen, then 20 with all at 1e-4).
    """

    metadata: Path
    item_column: str | None = None
    tasks: list[TaskSpec] | None = None
    mode: Literal["shallow", "deep"] = "shallow"
    deep_blocks: int | None = Field(None, ge=1)
    shared_dim: int = Field(1024, ge=1)
    lr: float = Field(1e-3, gt=0)
    backbone_lr: float = Field(1e-4, gt=0)
    epochs: int = Field(50, ge=1)
    patience: int = Field(5, ge=0)
    validation_ratio: float = Field(0.2, gt=0, lt=1)
    train_batch_size: int = Field(32, ge=1)
    unfreeze_epochs: int = Field(0, ge=0)
    unfreeze_lr: float = Field(1e-4, gt=0)
    probabilities: bool = False  # also write each categorical head's class probabilities, named

    @model_validator(mode="after")
    def _classes_need_probabilities(self) -> "FinetuneConfig":
        if self.classes is not None:
            raise ValueError("key 'classes' selects ImageNet classes of an extraction block; a "
                             "finetune block writes every label of its heads (probabilities: true)")
        return self

    @field_validator("tasks", mode="before")
    @classmethod
    def _task_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"column": v} if isinstance(v, str) else v for v in value]
        if isinstance(value, dict):
            return [{"column": k, **(v or {})} for k, v in value.items()]
        return value

    @property
    def folder_name(self) -> str:
        return self.name or f"{self.backbone}_finetuned_{self.mode}"


def _substitute(value: Any, dataset: str | None, key: str, base_dir: Path) -> Path:
    text = str(value)
    if "{0}" in text:
        if dataset is None:
            raise ExtractionConfigError(f"extraction key '{key}' ({text}) uses {{0}} but no dataset "
                                        f"name is known; set 'dataset' in the block")
        text = text.replace("{0}", dataset)
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base_dir / path).resolve()


def parse_block(block: Any, base_dir: str | Path = ".", dataset: str | None = None,
                gpu: int | None = None, kind: type[ExtractionConfig] = ExtractionConfig,
                where: str = "extraction") -> ExtractionConfig:
    """Validate one block (a dict or ``schema.Extraction``) and anchor its paths at ``base_dir``.

    ``dataset`` fills ``{0}`` (the block's own ``dataset`` key wins); ``gpu`` is the experiment's
    device, used when the block names none.
    """
    raw = dict(block.model_dump() if hasattr(block, "model_dump") else block)
    try:
        config = kind.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            (f"key '{'.'.join(str(p) for p in e['loc'])}': {e['msg']}"
             + (f" (got {e['input']!r})" if e["type"] not in ("missing", "extra_forbidden") else "")
             if e["loc"] else e["msg"].removeprefix("Value error, "))  # whole-block checks
            for e in error.errors())
        raise ExtractionConfigError(f"{where} block: {problems}") from None
    except KeyError as error:  # an unknown backbone name, with the known names
        raise ExtractionConfigError(f"{where} block, key 'backbone': {error}") from None
    base = Path(base_dir)
    name = config.dataset or dataset
    updates: dict[str, Any] = {"dataset": name,
                               "images": _substitute(config.images, name, "images", base),
                               "output": _substitute(config.output, name, "output", base)}
    if isinstance(config, FinetuneConfig):
        updates["metadata"] = _substitute(config.metadata, name, "metadata", base)
    if config.weights is not None:
        kind_of, value = weights_choice(config.weights)
        if kind_of == "file":
            updates["weights"] = str(_substitute(value, name, "weights", base))
    if config.gpu is None and gpu is not None:
        updates["gpu"] = gpu
    return config.model_copy(update=updates)
