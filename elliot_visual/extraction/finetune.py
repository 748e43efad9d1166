"""Fine-tuning a backbone on item metadata, then extracting its shared layer (ImageNet-transfer study).

The network is ``backbone -> pooled features -> shared = ReLU(W x + b)`` (``shared_dim``, 1024 by
default) followed by one head per task read from an item-metadata TSV: a linear classifier
trained with cross-entropy for a categorical column, a linear regressor trained with L1 on the
standardised value for a numeric one, one logit per label trained with binary cross-entropy
(positives weighted by ``pos_weight``) for a ``multilabel`` column of ``label|label`` values; the
loss is the weighted sum over tasks (missing values are left out of their task). The network (:class:`FinetuneNetwork`) is trained by the package's one
training loop (:func:`elliot_visual.training.loop.run_epochs`) through its hooks: the trainable
parameters, Adam with one parameter group per learning rate, early stopping once ``patience``
epochs (default 5) passed without a lower validation loss, the best epoch restored.
``shallow`` trains the shared layer and the heads on frozen backbone features (computed once,
so an epoch costs almost nothing); ``deep`` trains through the backbone too (its last
``deep_blocks`` blocks, or all of it), with batch-norm statistics frozen. ``unfreeze_epochs``
then runs the loop again from the best state with every layer trainable at ``unfreeze_lr`` (the
aggregation paper's schedule); the better phase's best state is kept.
The shared layer's activations of every image are then written exactly like an extraction
(:mod:`.extract`), as layer ``shared`` of the network ``<backbone>_finetuned_<mode>``; with
``probabilities: true`` each categorical head's class probabilities (softmax in float32) go beside
it as layer ``probabilities_<column>``, its ``names.txt`` holding the head's labels (the sorted
label values of the training items, the head's output order).

Seeded and deterministic: the split, the batch order and the heads' initialisation come from
``seed``; nothing touches the global random state. The labelled images are decoded once and kept
in memory as uint8 (3 * crop^2 bytes each, 150 kB at 224 px).
"""
from __future__ import annotations

import copy
import sys
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from elliot_visual import storage
from elliot_visual.data.item_labels import LABEL_SEPARATOR
from elliot_visual.extraction import FunctionModule
from elliot_visual.extraction.backbones import PROBABILITIES, Layer
from elliot_visual.extraction.catalogue import get_backbone
from elliot_visual.config.extraction import ExtractionConfigError, FinetuneConfig
from elliot_visual.extraction.extract import (ExtractionResult, FeatureJob, base_metadata,
                                              job_fingerprint, output_folders, resolve_workers, run_job)
from elliot_visual.extraction.images import ImageDataset, ImageRecord, collate_images, list_images
from elliot_visual.extraction.taps import (TapModule, TorchExtractor, autocast_context,
                                          autocast_dtype, class_probabilities, resolve_device)
from elliot_visual.storage import is_complete_feature_folder
from elliot_visual.training.loop import TrainingConfig, run_epochs

log = logging.getLogger(__name__)
SHARED_LAYER = "shared"
CHECKPOINT_FILE = "finetuned_model.pt"


@dataclass
class Task:
    """One head: its column, loss kind, weight and the label encoding learnt from the train rows."""

    column: str
    kind: str
    weight: float
    classes: list[str] = field(default_factory=list)
    mean: float = 0.0
    std: float = 1.0
    pos_weight: float = 1.0

    @property
    def out_dim(self) -> int:
        return len(self.classes) if self.kind in ("categorical", "multilabel") else 1

    def encode(self, values: Any) -> torch.Tensor:
        """Column values -> class indices (-100 when missing) or standardised floats (NaN when missing)."""
        import pandas as pd

        if self.kind == "categorical":
            lookup = {c: i for i, c in enumerate(self.classes)}
            return torch.tensor([lookup.get(str(v), -100) if not pd.isna(v) else -100
                                 for v in values], dtype=torch.long)
        if self.kind == "multilabel":
            # (N, C) multi-hot; a row without any value is missing (NaN), not "no label"
            lookup = {c: i for i, c in enumerate(self.classes)}
            rows = torch.full((len(values), len(self.classes)), float("nan"))
            for row, value in enumerate(values):
                labels = _split_labels(value)
                if labels:
                    rows[row] = 0.0
                    rows[row, [lookup[n] for n in labels if n in lookup]] = 1.0
            return rows
        numbers = pd.to_numeric(pd.Series(list(values)), errors="coerce").to_numpy(np.float64)
        return torch.tensor((numbers - self.mean) / self.std, dtype=torch.float32)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
        """Mean loss over the rows that have a label (None when no row has one)."""
        if self.kind == "categorical":
            known = target != -100
            if not bool(known.any()):
                return None
            return nn.functional.cross_entropy(output[known], target[known])
        if self.kind == "multilabel":
            known = ~torch.isnan(target[:, 0])
            if not bool(known.any()):
                return None
            weight = torch.full((self.out_dim,), self.pos_weight, device=output.device)
            return nn.functional.binary_cross_entropy_with_logits(output[known], target[known], pos_weight=weight)
        known = ~torch.isnan(target)
        if not bool(known.any()):
            return None
        return nn.functional.l1_loss(output[:, 0][known], target[known])

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"column": self.column, "kind": self.kind, "weight": self.weight}
        if self.kind == "categorical":
            info["classes"] = self.classes
        elif self.kind == "multilabel":
            info.update(classes=self.classes, pos_weight=self.pos_weight)
        else:
            info.update(mean=self.mean, std=self.std)
        return info


def read_item_metadata(path: Path, item_column: str | None) -> tuple[Any, str]:
    """The metadata TSV (with a header) as a frame indexed by item id (string)."""
    import pandas as pd

    frame = pd.read_csv(path, sep="\t", dtype=None, keep_default_na=True)
    column = item_column or frame.columns[0]
    if column not in frame.columns:
        raise ExtractionConfigError(f"finetune key 'item_column': column '{column}' is not in "
                                    f"{path} (columns: {', '.join(map(str, frame.columns))})")
    frame[column] = frame[column].astype(str)
    if frame[column].duplicated().any():
        first = frame.loc[frame[column].duplicated(), column].iloc[0]
        raise ValueError(f"{path}: item '{first}' appears twice in column '{column}'")
    return frame.set_index(column), column


def resolve_tasks(config: FinetuneConfig, frame: Any, train_ids: list[str]) -> list[Task]:
    """The tasks of the config (all metadata columns when unset), encoded from the train rows."""
    import pandas as pd

    specs = config.tasks or [{"column": c} for c in frame.columns]
    tasks = []
    train = frame.loc[train_ids]
    for spec in specs:
        spec = spec if isinstance(spec, dict) else spec.model_dump()
        column = spec["column"]
        if column not in frame.columns:
            raise ExtractionConfigError(f"finetune key 'tasks': column '{column}' is not in "
                                        f"{config.metadata} (columns: {', '.join(frame.columns)})")
        kind = spec.get("kind") or ("numeric" if pd.api.types.is_numeric_dtype(frame[column])
                                    else "categorical")
        task = Task(column, kind, float(spec.get("weight", 1.0)), pos_weight=float(spec.get("pos_weight", 1.0)))
        values = train[column].dropna()
        if kind == "multilabel":
            task.classes = sorted({n for v in values for n in _split_labels(v)})
            if not task.classes:
                raise ExtractionConfigError(f"finetune task '{column}' (multilabel) has no label "
                                            f"among the training items; values look like 'a|b'")
        elif kind == "categorical":
            task.classes = sorted({str(v) for v in values})
            if len(task.classes) < 2:
                raise ExtractionConfigError(f"finetune task '{column}' has fewer than 2 classes "
                                            f"among the training items")
        else:
            numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(np.float64)
            if numbers.size == 0:
                raise ExtractionConfigError(f"finetune task '{column}' has no numeric value")
            task.mean = float(numbers.mean())
            task.std = float(numbers.std()) or 1.0
        tasks.append(task)
    return tasks


def _split_labels(value: Any) -> list[str]:
    """``'a|b'`` -> ``['a', 'b']`` (the item-label separator); NaN or blank -> ``[]``."""
    import pandas as pd

    if not isinstance(value, str) and pd.isna(value):
        return []
    return [n.strip() for n in str(value).split(LABEL_SEPARATOR) if n.strip()]


class SharedHead(nn.Module):
    """pooled ``(N, D)`` -> shared ``(N, shared_dim)`` -> one output per task."""

    def __init__(self, in_dim: int, shared_dim: int, tasks: list[Task]) -> None:
        super().__init__()
        self.shared = nn.Sequential(nn.Linear(in_dim, shared_dim), nn.ReLU())
        self.heads = nn.ModuleList(nn.Linear(shared_dim, t.out_dim) for t in tasks)

    def forward(self, pooled: torch.Tensor) -> list[torch.Tensor]:
        hidden = self.shared(pooled)
        return [head(hidden) for head in self.heads]


class SharedExtractor(nn.Module):
    """Images -> ``{'shared': (N, shared_dim), 'probabilities_<column>': (N, classes)...}``: the
    tuned network, for :func:`.extract.run_job`; ``heads`` maps a layer name to a head's index."""

    def __init__(self, taps: TapModule, pooled: str, head: SharedHead,
                 heads: dict[str, int] | None = None) -> None:
        super().__init__()
        self.taps, self.pooled, self.shared, self.tasks = taps, pooled, head.shared, head.heads
        self.heads = heads or {}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.shared(self.taps(images)[self.pooled])
        return {SHARED_LAYER: hidden, **{name: class_probabilities(self.tasks[i](hidden))
                                          for name, i in self.heads.items()}}


def head_layers(tasks: list[Task]) -> dict[str, tuple[int, Layer]]:
    """``probabilities_<column>`` -> (head index, named softmax layer) for each categorical task."""
    return {f"{PROBABILITIES}_{t.column}".replace(os.sep, "_"): (
                i, Layer(f"shared -> head '{t.column}'", (t.out_dim,), softmax=True, names=tuple(t.classes),
                         description=f"softmax of the fine-tuned head '{t.column}'; class names: its labels"))
            for i, t in enumerate(tasks) if t.kind == "categorical"}


@dataclass(frozen=True)
class Rows:
    """A batch of fine-tuning rows: positions into the decoded labelled images (kept on the CPU)."""

    positions: torch.Tensor

    def to(self, device: torch.device) -> "Rows":
        return self  # the network moves what it reads from these rows


class RowSampler:
    """Seeded shuffled batches of train rows, one permutation per epoch (``torch.Generator``)."""

    def __init__(self, rows: torch.Tensor, batch_size: int, seed: int) -> None:
        self.rows, self.batch_size = rows, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def epoch(self) -> Iterator[Rows]:
        for batch in _batches(len(self.rows), self.batch_size, self.generator):
            yield Rows(self.rows[batch])


class FinetuneNetwork(nn.Module):
    """Backbone taps -> shared layer -> task heads, with the training loop's hooks.

    ``trainable_parameters`` (the heads and shared layer, plus the chosen backbone blocks in
    ``deep`` mode) and ``configure_optimizer`` (Adam, one parameter group per learning rate:
    ``lr`` for the head, ``backbone_lr`` for the blocks) are what the loop asks for; ``train``
    keeps the backbone in eval mode so its batch-norm statistics stay frozen.
    """

    def __init__(self, taps: TapModule, pooled: str, head: SharedHead, tasks: list[Task],
                 targets: list[torch.Tensor], pixels: torch.Tensor, tuned_blocks: list[nn.Module],
                 config: FinetuneConfig, device: torch.device) -> None:
        super().__init__()
        self.taps, self.head, self.pooled = taps, head, pooled
        self.tasks, self.targets, self.pixels = tasks, targets, pixels
        self.tuned = [p for block in tuned_blocks for p in block.parameters()]
        self.lr, self.backbone_lr = config.lr, config.backbone_lr
        self.amp = autocast_dtype(config.precision, device)
        self._device = device
        self.frozen_features: torch.Tensor | None = None

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [*self.head.parameters(), *self.tuned]

    def configure_optimizer(self) -> torch.optim.Optimizer:
        groups = [{"params": list(self.head.parameters()), "lr": self.lr}]
        if self.tuned:
            groups.append({"params": self.tuned, "lr": self.backbone_lr})
        return torch.optim.Adam(groups)

    def train(self, mode: bool = True) -> "FinetuneNetwork":
        self.training = mode
        self.head.train(mode)
        self.taps.eval()
        return self

    def unfreeze(self, lr: float) -> None:
        """Every layer trainable at ``lr`` (the second phase), computing the backbone again each step."""
        self.tuned = list(self.taps.parameters())
        self.lr = self.backbone_lr = lr
        self.frozen_features = None

    def pooled_of(self, images: torch.Tensor) -> torch.Tensor:
        with autocast_context(self._device, self.amp):
            return self.taps(images.to(self._device))[self.pooled].float()

    def freeze_backbone_features(self, batch_size: int) -> None:
        """``shallow``: compute the backbone's features of every image once; epochs then skip it."""
        with torch.inference_mode():
            self.frozen_features = torch.cat([self.pooled_of(self.pixels[b]).cpu()
                                              for b in _batches(len(self.pixels), batch_size, None)])

    def loss(self, batch: Rows) -> torch.Tensor:
        """Weighted sum of the task losses over the rows' labelled values."""
        positions = batch.positions
        inputs = (self.frozen_features[positions].to(self._device) if self.frozen_features is not None
                  else self.pooled_of(self.pixels[positions]))
        total = torch.zeros((), device=self._device)
        for task, output, target in zip(self.tasks, self.head(inputs), self.targets):
            value = task.loss(output.float(), target[positions].to(self._device))
            if value is not None:
                total = total + task.weight * value
        return total


def _no_gain_for(observed: list[float], patience: int) -> bool:
    """Stop once ``patience`` validations have passed since the best one (higher is better)."""
    best = max(range(len(observed)), key=lambda i: (observed[i], -i))
    return best != len(observed) - 1 and len(observed) - 1 - best >= patience


def backbone_blocks(taps: TapModule) -> list[nn.Module]:
    """The traced network's blocks in execution order: top-level modules, containers opened once."""
    blocks = []
    for _, child in taps.graph.named_children():
        if not list(child.parameters(recurse=False)) and len(list(child.children())) > 1:
            blocks.extend(c for c in child.children() if any(True for _ in c.parameters()))
        elif any(True for _ in child.parameters()):
            blocks.append(child)
    return blocks


def _decode_all(records: list[ImageRecord], config: FinetuneConfig, preprocessing: Any
                ) -> tuple[list[int], torch.Tensor]:
    """Decode ``records`` once; positions of the decodable ones and their uint8 pixels."""
    from torch.utils.data import DataLoader

    dataset = ImageDataset(records, preprocessing, config.max_pixels,
                           preprocessing.draft_size if config.fast_jpeg else None)
    workers = resolve_workers(config.workers, config.device_index >= 0)
    loader = DataLoader(dataset, batch_size=config.batch_size, num_workers=workers,
                        collate_fn=collate_images, prefetch_factor=4 if workers else None)
    kept, tensors = [], []
    for batch in loader:
        kept.extend(batch.indices)
        if batch.images is not None:
            tensors.append(batch.images)
    if not tensors:
        raise RuntimeError("no labelled image could be decoded; check 'images' and 'metadata'")
    return kept, torch.cat(tensors)


def _batches(n: int, size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(order.split(size))


def finetune(config: FinetuneConfig) -> ExtractionResult:
    """Fine-tune as configured, save the network, and write the shared layer's features."""
    folders = output_folders(config, [SHARED_LAYER])
    if not config.overwrite and all(is_complete_feature_folder(f) for f in folders.values()):
        heads = sorted(folders[SHARED_LAYER].parent.glob(f"{PROBABILITIES}_*"))
        if not config.probabilities or any(is_complete_feature_folder(f) for f in heads):
            return ExtractionResult({**folders, **{f.name: f for f in heads}}, skipped=True)
    if config.backend != "torch":
        raise ExtractionConfigError("finetune key 'backend': fine-tuning needs backend: torch")
    backbone = get_backbone(config.backbone)
    overrides = config.preprocessing.model_dump(exclude_none=True) if config.preprocessing else {}
    preprocessing = backbone.preprocessing().overridden(**overrides)
    model, weights = backbone.build(config.weights)
    pooled_name = (config.layers or ["pooled" if "pooled" in backbone.layers
                                     else backbone.default_layer])[0]
    layer = backbone.layer(pooled_name, model)
    taps = TapModule(backbone, model, {pooled_name: layer}, preprocessing)
    device = resolve_device(config.device_index)

    records = list_images(config.images)
    frame, _ = read_item_metadata(config.metadata, config.item_column)
    labelled = [r for r in records if r.item_id in frame.index]
    if len(labelled) < 2:
        raise ExtractionConfigError(f"finetune: only {len(labelled)} image(s) of {config.images} "
                                    f"have a row in {config.metadata}; ids must match")
    kept, pixels = _decode_all(labelled, config, preprocessing)
    ids = [labelled[i].item_id for i in kept]
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(ids))
    n_val = max(1, int(round(config.validation_ratio * len(ids))))
    val_pos, train_pos = np.sort(order[:n_val]), np.sort(order[n_val:])
    tasks = resolve_tasks(config, frame, [ids[i] for i in train_pos])
    targets = [t.encode(frame.loc[ids, t.column].tolist()) for t in tasks]

    taps = taps.to(device).eval()
    with torch.no_grad():
        probe = taps(pixels[:1].to(device))[pooled_name]
    if probe.dim() != 2:
        raise ExtractionConfigError(f"finetune key 'layers': '{pooled_name}' gives per-image shape "
                                    f"{tuple(probe.shape[1:])}; the shared layer needs a vector "
                                    f"layer such as 'pooled'")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        head = SharedHead(int(probe.shape[1]), config.shared_dim, tasks).to(device)
    blocks = backbone_blocks(taps) if config.mode == "deep" else []
    tuned = blocks if config.deep_blocks is None else blocks[-config.deep_blocks:]
    network = FinetuneNetwork(taps, pooled_name, head, tasks, targets, pixels, tuned, config, device)
    if config.mode == "shallow":
        network.freeze_backbone_features(config.batch_size)

    val_idx = torch.as_tensor(val_pos)

    def validation_loss(net: "FinetuneNetwork") -> float:
        parts = [(net.loss(Rows(val_idx[b])).item(), len(b))
                 for b in _batches(len(val_idx), config.batch_size, None)]
        value = sum(v * n for v, n in parts) / len(val_idx)
        log.info("finetune: validation loss %.5f", value)
        return -value  # the loop keeps the highest value

    training = TrainingConfig(device=device, amp=False, progress=config.progress,
                              description=f"finetune {config.folder_name}",
                              stop_rule=lambda observed: _no_gain_for(observed, config.patience))
    rows = RowSampler(torch.as_tensor(train_pos), config.train_batch_size, config.seed)
    result = run_epochs(network, rows, config.epochs, training, validation_loss)
    history = [-r.validation for r in result.validations]
    best = (-float(result.best_value), int(result.best_epoch) - 1)
    if config.unfreeze_epochs:
        first_best = copy.deepcopy(network.state_dict())
        network.unfreeze(config.unfreeze_lr)
        second = run_epochs(network, rows, config.unfreeze_epochs, training, validation_loss)
        if -float(second.best_value) < best[0]:
            best = (-float(second.best_value), len(history) + int(second.best_epoch) - 1)
        else:  # the unfrozen phase never beat the first one: keep the first phase's best state
            network.load_state_dict(first_best)
        history += [-r.validation for r in second.validations]
    network.requires_grad_(False)

    network_dir = storage.network_folder(config.output, config.folder_name)
    with storage.atomic_write(network_dir / CHECKPOINT_FILE, "wb") as handle:
        torch.save({"head": head.state_dict(), "taps": taps.state_dict(),
                    "tasks": [t.describe() for t in tasks], "backbone": backbone.name}, handle)
    tuning = {"mode": config.mode, "deep_blocks": config.deep_blocks,
              "unfreeze_epochs": config.unfreeze_epochs,
              "unfreeze_lr": config.unfreeze_lr if config.unfreeze_epochs else None,
              "shared_dim": config.shared_dim, "input_layer": pooled_name,
              "tasks": [t.describe() for t in tasks], "lr": config.lr,
              "backbone_lr": config.backbone_lr if config.mode == "deep" else None,
              "epochs_run": len(history), "best_epoch": best[1] + 1,
              "best_validation_loss": best[0], "validation_losses": history,
              "n_train": len(train_pos), "n_validation": len(val_pos), "seed": config.seed,
              "metadata": str(config.metadata), "checkpoint": CHECKPOINT_FILE}
    heads = head_layers(tasks) if config.probabilities else {}
    if config.probabilities and not heads:
        raise ExtractionConfigError("finetune key 'probabilities': no categorical task has class "
                                    "probabilities to write (every task is numeric)")
    extractor = TorchExtractor(SharedExtractor(taps, pooled_name, head, {k: i for k, (i, _) in heads.items()}),
                               device, config.precision)
    metadata = {**base_metadata(config, preprocessing, weights, extractor.describe()),
                "finetune": tuning}
    fingerprint = job_fingerprint({"meta": {k: v for k, v in metadata.items() if k != "versions"},
                                   "shard_size": config.shard_size, "heads": sorted(heads)}, records)
    job = FeatureJob(records=records, extractor=extractor,
                     layers={SHARED_LAYER: Layer(f"{pooled_name} -> shared dense", (config.shared_dim,)),
                             **{k: layer for k, (_, layer) in heads.items()}},
                     preprocessing=preprocessing,
                     folders={**folders, **output_folders(config, list(heads))},
                     partial_dir=network_dir / f".partial-{fingerprint[:16]}", metadata=metadata,
                     batch_size=config.batch_size,
                     workers=resolve_workers(config.workers, device.type == "cuda"),
                     shard_size=config.shard_size, max_pixels=config.max_pixels,
                     dtype=config.dtype, format=config.format, pca=config.pca, seed=config.seed,
                     progress=config.progress, pin_memory=device.type == "cuda",
                     fast_jpeg=config.fast_jpeg)
    return run_job(job)


sys.modules[__name__].__class__ = FunctionModule  # ``elliot_visual.extraction.finetune(...)`` stays callable
