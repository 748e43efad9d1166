"""Typed, validated experiment objects: what Elliot's YAML dialect becomes at the door.

Only ``config/`` reads YAML; every other layer receives these objects. Field names are Elliot's
keys, so a validation error's location *is* the YAML key path. Paths here are already resolved
(``{0}`` substituted, relative paths anchored at the config file's folder) by ``config.loader``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


_METRIC_AT = re.compile(r"^\s*([^@\s]+)\s*(?:@\s*(\S+)\s*)?$")


def split_metric_at(text: str, what: str = "metric") -> tuple[str, int | None]:
    """The one ``Metric@k`` parser: ``"nDCG@10"`` -> ``("nDCG", 10)``, ``"nDCG"`` -> ``("nDCG", None)``.

    Raises ``ValueError`` naming ``what`` (e.g. ``meta.validation_metric``) for anything else."""
    match = _METRIC_AT.match(text) if isinstance(text, str) else None
    if match is None or (match.group(2) is not None and not match.group(2).isdigit()):
        raise ValueError(f"invalid {what} {text!r}: write Metric or Metric@cutoff, e.g. nDCG@10")
    return match.group(1), int(match.group(2)) if match.group(2) is not None else None


class Strict(BaseModel):
    """Unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Open(BaseModel):
    """Strategy blocks whose extra keys are strategy-specific options checked by the strategy."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())


class SideInformation(Open):
    """One side-information loader: ``dataloader`` names a FEATURE_LOADERS entry; the rest are its options.

    ``name`` lets several loaders of one kind coexist (e.g. one per CNN backbone); models choose
    one with their ``loader`` hyperparameter. Elliot's default namespace name is kept otherwise.
    """

    dataloader: str
    name: str | None = None


class DataConfig(Strict):
    """``data_config``. ``layout`` (not an Elliot key) says how the files are written: ``elliot`` TSV,
    ``mmrec`` (LATTICE json splits or ``.inter``), ``cornac`` text files, ``ducho`` benchmark TSVs,
    ``dvbpr`` the DVBPR authors' pickled ``.npy`` (``root_folder`` names the file; it unpickles).
    With a non-Elliot layout, ``strategy: fixed`` may name the split's folder as ``root_folder``
    instead of the three paths."""

    strategy: Literal["dataset", "fixed", "hierarchy"] = "dataset"
    layout: Literal["elliot", "mmrec", "cornac", "ducho", "dvbpr"] = "elliot"
    dataset_path: Path | None = None
    train_path: Path | None = None
    validation_path: Path | None = None
    test_path: Path | None = None
    root_folder: Path | None = None
    dataloader: str | None = None
    side_information: list[SideInformation] = Field(default_factory=list)
    drop_items_without_features: bool = False
    # Not an Elliot key: keep held-out users without train rows (a user-level split read from files,
    # strategy fixed or hierarchy); implied by the random_users splitter. Elliot drops such users.
    keep_held_out_users: bool = False
    # Held-out items with side information but no train rows: ``held_out`` (default) makes them
    # rankable, ``all`` adds every item with features, ``none`` keeps Elliot's train-only catalogue.
    cold_items: Literal["held_out", "all", "none"] = "held_out"
    missing_hint: str | None = None  # the command that produces missing data, shown when it is absent
    header: bool = False
    columns: list[str] | None = None

    @model_validator(mode="after")
    def _paths_for_strategy(self) -> "DataConfig":
        needed = {"dataset": ["dataset_path"], "fixed": ["train_path", "test_path"],
                  "hierarchy": ["root_folder"]}[self.strategy]
        if self.strategy == "fixed" and self.layout != "elliot" and self.root_folder is not None:
            needed = []
        missing = [k for k in needed if getattr(self, k) is None]
        if missing:
            raise ValueError(f"strategy '{self.strategy}' needs {', '.join(missing)}")
        return self


class Prefilter(Open):
    """One prefiltering step: ``strategy`` names a PREFILTERS entry (threshold, core, rounds...)."""

    strategy: str


class SplitSpec(Open):
    """A test or validation split: ``strategy`` names a SPLITTERS entry (test_ratio, leave_n_out...)."""

    strategy: str


class Splitting(Strict):
    save_on_disk: bool = False
    save_folder: Path | None = None
    test_splitting: SplitSpec
    validation_splitting: SplitSpec | None = None

    @model_validator(mode="after")
    def _folder_when_saving(self) -> "Splitting":
        if self.save_on_disk and self.save_folder is None:
            raise ValueError("save_on_disk: True needs save_folder")
        return self


class ComplexMetric(Open):
    """``{metric: Name, ...options}`` under ``evaluation.complex_metrics``."""

    metric: str


class NegativeSampling(Strict):
    """The sampled protocol: 1 held-out positive against ``num_items`` sampled negatives, ``trials`` times."""

    strategy: Literal["random", "fixed"] = "random"
    num_items: int = Field(100, ge=1)
    trials: int = Field(1, ge=1)
    seed: int = 42
    files: list[Path] = Field(default_factory=list)
    # Not Elliot's keys. exclude_all_held_out: negatives also avoid the user's items of the other
    # held-out part (validation items when testing and vice versa), as the ImgRec paper states.
    exclude_all_held_out: bool = False
    # auc: "elliot" (N_neg = candidates - |Rel_u| + 1, ties by item index, as the full ranking) or
    # "pairwise" (eq. 6 of ImgRec / DVBPR: the share of (positive, negative) pairs ordered right),
    # whose ties count as lost ("strict", the papers' '>') or as one half ("half").
    auc: Literal["elliot", "pairwise"] = "elliot"
    ties: Literal["strict", "half"] = "strict"
    # Test metrics also against these numbers of negatives (columns <metric>_neg<N>), e.g. [500]
    # for the ImgRec paper's second table; validation and selection use num_items only.
    extra_num_items: list[int] = Field(default_factory=list)

    @field_validator("extra_num_items")
    @classmethod
    def _positive_counts(cls, value: list[int]) -> list[int]:
        if any(n < 1 for n in value):
            raise ValueError(f"extra_num_items must be positive counts of negatives, got {value}")
        return value

    @model_validator(mode="after")
    def _ties_need_pairwise(self) -> "NegativeSampling":
        if "ties" in self.model_fields_set and self.auc != "pairwise":
            raise ValueError("ties applies to auc: pairwise only (auc: elliot breaks ties by item index)")
        if self.extra_num_items and self.strategy != "random":
            raise ValueError("extra_num_items needs strategy: random (fixed negatives come from files)")
        return self


class ExactAUC(Strict):
    """``evaluation.exact_auc`` (not an Elliot key): He & McAuley's AUC protocol (the ``auc`` task).

    Each test item against every item outside the user's train, validation and test items; ``ties``
    ``strict`` counts only x_ui > x_uj (the papers), ``half`` counts a tie as 1/2. ``AUC_cold`` is the
    same over test items with at most ``cold_max_feedback`` train interactions (default 4: the
    paper's "fewer than 5"; the authors' C++ code uses 5)."""

    ties: Literal["strict", "half"] = "strict"
    cold_max_feedback: int = Field(4, ge=0)


class ImageNetFigures(Strict):
    """ImageNet-1k accuracy (percent) of a backbone whose weights record none, and its source."""

    top1: float = Field(ge=0, le=100)
    top5: float | None = Field(None, ge=0, le=100)
    source: str


class Transactions(Strict):
    """The per-transaction rolling protocol (del Rio et al. 2018), ``evaluation.transactions``.

    A transaction is what a user bought within ``window`` seconds of its first purchase (0: one
    timestamp); ``one_of_a_kind`` removes an item from every later candidate set once bought.
    ``imagenet_accuracy`` (backbone name -> figures) fills the backbones table for weights whose
    own metadata carry no accuracy.
    """

    window: float = Field(0.0, ge=0)
    one_of_a_kind: bool = False
    imagenet_accuracy: dict[str, ImageNetFigures] = Field(default_factory=dict)


class Evaluation(Strict):
    cutoffs: list[int] = Field(default_factory=list)
    simple_metrics: list[str] = Field(default_factory=lambda: ["nDCG"])
    complex_metrics: list[ComplexMetric] = Field(default_factory=list)
    relevance_threshold: int | float = 0
    paired_ttest: bool = False
    wilcoxon_test: bool = False
    negative_sampling: NegativeSampling | None = None
    exact_auc: ExactAUC = Field(default_factory=ExactAUC)
    transactions: Transactions | None = None

    @field_validator("cutoffs", mode="before")
    @classmethod
    def _scalar_cutoff(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value


class EarlyStopping(Strict):
    """Elliot's ``early_stopping`` block: stop when ``monitor`` got worse ``patience`` times in a row."""

    monitor: str = "loss"
    patience: int = Field(0, ge=0)
    mode: Literal["min", "max", "auto"] = "auto"
    min_delta: float = 0.0
    rel_delta: float = 0.0
    baseline: float | None = None
    verbose: bool = False
    # Not an Elliot key. ``worse_in_a_row`` is Elliot's rule; ``since_best`` is the rule the
    # Elliot-Reproducible-VRSs fork hard-codes in its visual models (the CNNs-in-VRSs study):
    # stop once ``patience`` validation events passed without beating the best value so far.
    rule: Literal["worse_in_a_row", "since_best"] = "worse_in_a_row"


class Meta(Strict):
    """A model entry's ``meta:`` block. ``verbose`` logs every epoch (loss, validation value) at INFO;
    ``optimize_internal_loss`` selects on the lowest training loss instead of the validation metric
    (main Elliot's rule); ``restore_epoch`` is the Elliot-Reproducible-VRSs fork's key, accepted only
    as ``-1`` (train from scratch, the fork's default), since resuming is ``restore: True`` here."""

    hyper_max_evals: int | None = Field(None, ge=1)
    hyper_opt_alg: str = "grid"
    validation_rate: int = Field(1, ge=1)
    validation_metric: str | None = None
    save_recs: bool = False
    save_weights: bool = False
    verbose: bool = False
    restore: bool = False
    restore_epoch: int | None = None
    optimize_internal_loss: bool = False
    # Not an Elliot key: the task this entry is evaluated and selected on (ranking | sampled | multilabel);
    # default: sampled when evaluation.negative_sampling is set and the model serves it, else its first task.
    task: str | None = None
    # Not an Elliot key: the named features a temporal model's trend figure draws (default: largest movers).
    trend_features: list[str] | None = None
    # Not Elliot keys: ``adam`` is Elliot's dense Adam; ``lazy_adam`` updates only the embedding rows
    # a batch touched (faster on large catalogues, a different optimiser; see training/optimizers.py).
    optimizer: Literal["adam", "lazy_adam"] = "adam"

    @field_validator("restore_epoch")
    @classmethod
    def _fork_restore_epoch(cls, value: int | None) -> int | None:
        if value is not None and value != -1:
            raise ValueError(f"restore_epoch {value}: this fork key restored the weights of one epoch, which this "
                             "engine (like main Elliot) does not keep; use -1 (train from scratch) or drop the key, "
                             "and set meta.restore: True to resume an interrupted run from its last epoch")
        return value


class ModelSpec(Strict):
    """One ``models:`` entry. ``params`` holds fixed values; ``search`` the searched ones (raw YAML lists);
    ``loader`` the side-information namespace bound to the model (data routing, not a hyperparameter;
    a list compares feature sets, one report row each)."""

    key: str
    name: str
    external: bool = False
    meta: Meta = Field(default_factory=Meta)
    params: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, list[Any]] = Field(default_factory=dict)
    early_stopping: EarlyStopping | None = None
    loader: str | list[str] | None = None

    @property
    def is_tuned(self) -> bool:
        return bool(self.search)


class Extraction(Open):
    """An ``extraction:`` block, read by the extraction plugin (images, backbone, layers, output)."""


class RayScheduler(Strict):
    """``ray.scheduler``: ASHA (Li et al. 2020) stops weak trials at their validation events."""

    name: Literal["asha"] = "asha"
    grace_period: int = Field(1, ge=1)         # validation events every trial gets before a stop
    reduction_factor: float = Field(2.0, gt=1)  # keep the best 1/reduction_factor at each rung


class RayExtraction(Strict):
    """``ray.extraction``: run the ``extraction:`` blocks as a Ray Data pipeline."""

    actors: int = Field(1, ge=1)          # inference actors (one model copy each)
    gpus: float = Field(0.0, ge=0)        # GPUs per inference actor
    decode_cpus: float = Field(1.0, gt=0)  # CPUs per image-decoding task


class RayConfig(Strict):
    """``experiment.ray``: run tuning trials on Ray Tune (and extraction on Ray Data).

    ``address``: ``local`` starts an in-process instance (``num_cpus`` / ``num_gpus`` cap it),
    ``auto`` joins the cluster of ``ray start --head`` on this node, ``ray://host:10001`` a remote
    one. Per-trial resources are ``cpus`` / ``gpus``; Tune's experiment state lives under
    ``storage_path`` (a killed study resumes from it when ``resume`` is true).
    """

    address: str = "local"
    num_cpus: int | None = Field(None, ge=1)
    num_gpus: int | None = Field(None, ge=0)
    max_concurrent_trials: int | None = Field(None, ge=1)
    cpus: float = Field(1.0, gt=0)
    gpus: float = Field(0.0, ge=0)
    scheduler: RayScheduler | None = None
    storage_path: Path | None = None
    temp_dir: Path | None = None
    runtime_env: dict[str, Any] | None = None
    resume: bool = True
    extraction: RayExtraction | None = None

    @field_validator("address")
    @classmethod
    def _known_address(cls, value: str) -> str:
        if value in ("local", "auto") or value.startswith("ray://") or ":" in value:
            return value
        raise ValueError(f"address {value!r}: use 'local' (start Ray here), 'auto' (join the cluster "
                         "of 'ray start --head' on this node), 'ray://host:port' or 'host:port'")

    @model_validator(mode="after")
    def _local_only_options(self) -> "RayConfig":
        if self.address != "local" and (self.num_cpus is not None or self.num_gpus is not None):
            raise ValueError("num_cpus / num_gpus size a local instance only; a cluster's resources "
                             "are set by 'ray start' on its nodes")
        return self


class DataSection(Strict):
    """What ``data/`` and ``features/`` need of an experiment (its ``data`` view): the dataset's
    name, ``data_config``, the prefiltering and splitting blocks, and the folder that relative
    side-information paths start from."""

    dataset: str
    config: DataConfig
    prefiltering: list[Prefilter] = Field(default_factory=list)
    splitting: Splitting | None = None
    binarize: bool = False
    random_seed: int = 42
    base_dir: Path = Path(".")


class Experiment(Strict):
    """The whole validated experiment."""

    config_path: Path
    dataset: str
    data_config: DataConfig
    prefiltering: list[Prefilter] = Field(default_factory=list)
    splitting: Splitting | None = None
    top_k: int = Field(10, ge=1)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    gpu: int = -1
    # Not an Elliot key: bfloat16 mixed precision when training on CUDA (Elliot trains in float32).
    amp: bool = False
    # Not an Elliot key: torch's CPU threads (null: torch's default, one per core). One by default: a
    # VBPR step takes ~6 ms on one thread and ~340 ms on two while other processes hold the cores
    # (benchmarks/train_step.py); raise it for CNN work (DVBPR, extraction) on a machine of your own.
    threads: int | None = Field(1, ge=1)
    external_models_path: Path | None = None
    path_output_rec_result: Path
    path_output_rec_weight: Path
    path_output_rec_performance: Path
    path_output_figures: Path
    random_seed: int = 42
    binarize: bool = False
    print_results_as_triplets: bool = False
    # Elliot keys. path_log_folder: where log/elliot.log goes. config_test: Elliot's dry run; here every
    # data-dependent check runs on the real data (tuning/preflight.py) and nothing is trained.
    # path_logger_config (Elliot's logging YAML) and align_side_with_train are accepted only with their
    # Elliot default behaviour, which is this engine's (see the validators).
    path_logger_config: Path | None = None
    path_log_folder: Path | None = None
    config_test: bool = False
    align_side_with_train: bool = True
    version: str | None = None
    extraction: list[Extraction] = Field(default_factory=list)
    ray: RayConfig | None = None  # not an Elliot key: Ray Tune trials / Ray Data extraction
    models: list[ModelSpec]
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @property
    def data(self) -> DataSection:
        """The data layer's section (``prepare_data(exp.data)``, ``side_information_provider``)."""
        return DataSection(dataset=self.dataset, config=self.data_config, prefiltering=self.prefiltering,
                           splitting=self.splitting, binarize=self.binarize, random_seed=self.random_seed,
                           base_dir=Path(self.config_path).parent)
    @field_validator("align_side_with_train")
    @classmethod
    def _aligned(cls, value: bool) -> bool:
        if not value:
            raise ValueError("align_side_with_train: False is not supported: this engine always aligns the "
                             "catalogue with the side information (data_config.cold_items chooses which items "
                             "without train rows stay); remove the key")
        return value

    @field_validator("path_logger_config")
    @classmethod
    def _no_logger_config(cls, value: Path | None) -> Path | None:
        if value is not None:
            raise ValueError("path_logger_config (Elliot's logging YAML) is not read by this engine, which logs "
                             "with Python's logging to <results>/<dataset>/log/elliot.log (path_log_folder moves "
                             "it); remove the key")
        return value

    @model_validator(mode="after")
    def _cutoffs_within_top_k(self) -> "Experiment":
        if not self.evaluation.cutoffs:
            self.evaluation.cutoffs = [self.top_k]
        too_long = [k for k in self.evaluation.cutoffs if k > self.top_k]
        if too_long:
            raise ValueError(f"evaluation.cutoffs {too_long} exceed top_k={self.top_k}")
        return self
