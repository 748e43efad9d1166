"""The model interface: one class per model, hyperparameters declared once.

A model declares ``Params`` (a :class:`HyperParams` subclass built with :func:`hp`), which gives
the validated parameters, the search space and the report name (``VBPR_seed=42_e=20_bs=256_...``,
formed as Elliot forms it), and the tasks it serves (``ranking``, ``sampled``, ``multilabel``:
``evaluation/tasks``). It implements ``score(users[, at])`` (ranking tasks; or its item and user
sides, see :meth:`Recommender.item_representation`) or ``predict(batch)`` (the multilabel task),
and either ``loss(batch)`` (gradient models, trained by the one loop in ``training/`` on the
batches of its ``sampler``) or ``fit(data)`` (closed-form models).
Constructors do no work beyond building parameters: they receive the params, the sizes and the
feature tensors named in ``needs``, never a config or a data object to dig into. Which feature set
fills ``needs`` is bound in the model's config entry (``loader``), not a hyperparameter.
"""
from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, TypeVar

import torch
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from torch import Tensor, nn

from elliot_visual.data.samplers import BPROptions, PointwiseOptions, UserSetOptions
from elliot_visual.registry import MODELS

M = TypeVar("M", bound=type)


def _parse_tuple(value: Any) -> Any:
    """Elliot writes tuple hyperparameters as strings, ``"(64, 1)"``; accept both forms."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError(f"expected a tuple such as (64, 1), got {value!r}") from None
    if isinstance(value, (int, float)):
        value = (value,)
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _layer_sizes(value: tuple[int, ...]) -> tuple[int, ...]:
    """Layer sizes must exist and be positive: ``()`` or a 0 validate as tuples but crash when the
    layers are built."""
    if not value:
        raise ValueError("an empty tuple has no layer; give at least one size, e.g. (64, 1)")
    if any(v < 1 for v in value):
        raise ValueError(f"layer sizes must be >= 1, got {value}")
    return value


IntTuple = Annotated[tuple[int, ...], BeforeValidator(_parse_tuple), AfterValidator(_layer_sizes)]


def hp(default: Any, short: str | None = None, *, in_name: bool = True, description: str = "",
       **constraints: Any) -> Any:
    """Declare one hyperparameter: its default, Elliot's short name for the report, constraints.

    ``short`` defaults to the field name; ``in_name=False`` keeps it out of the model name.
    ``constraints`` are pydantic's (``ge=0``, ``gt=0``, ``le=1``...).
    """
    return Field(default, description=description,
                 json_schema_extra={"short": short, "in_name": in_name}, **constraints)


class HyperParams(BaseModel):
    """Validated, frozen hyperparameters; numbers arriving as YAML strings (``1e-5``) are cast."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    @classmethod
    def short_names(cls) -> list[tuple[str, str]]:
        """(field, short) pairs of the fields that appear in the model name, in declaration order."""
        pairs = []
        for field_name, info in cls.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            if extra.get("in_name", True):
                pairs.append((field_name, extra.get("short") or field_name))
        return pairs


class TrainParams(HyperParams):
    """What every gradient-trained model carries, first in its name as Elliot orders it."""

    seed: int = hp(42, "seed")
    epochs: int = hp(2, "e", ge=1)
    batch_size: int = hp(-1, "bs", description="< 1 means all train pairs in one batch, as in Elliot")


class PairwiseParams(TrainParams, BPROptions):
    """A BPR-trained model's parameters, with the BPR sampler's options (``negatives_from``,
    ``exclude_validation``; kept out of the report name)."""


class PointwiseParams(TrainParams, PointwiseOptions):
    """A pointwise-trained model's parameters, with the sampler's ``negatives`` per positive."""


class UserSetParams(TrainParams, UserSetOptions):
    """A set-level (multilabel) model's parameters, with the set sampler's ``max_set_size``."""


DEFAULT_LOADER = "VisualAttributes"  # Elliot's default side-information namespace


def format_value(value: Any) -> str:
    """A hyperparameter as Elliot prints it in a model name: tuples as ``64-1``, ``.`` as ``$``."""
    if isinstance(value, (tuple, list)):
        text = "-".join(str(v) for v in value)
    else:
        text = str(value)
    return text.replace(".", "$")


@dataclass(frozen=True)
class TrainingStage:
    """One stage of a model trained in stages (``Recommender.training_stages``), run by the one loop.

    ``enter()`` sets the model up for the stage (which parameters train; the loop then builds the
    stage's optimizer at ``learning_rate()``); ``epochs`` bounds it; ``patience`` ends it when the
    validation value got worse that many times in a row (None: the run's ``early_stopping``).
    """

    name: str
    epochs: int
    enter: Callable[[], None]
    patience: int | None = None


class Recommender(nn.Module):
    """Base of every model: stores params and sizes; subclasses hold one paper's maths.

    Class attributes a model may set:
    ``Params`` its hyperparameters; ``needs`` the feature kinds it reads (``visual_features``,
    ``visual_pca_features``, ``visual_feat_map_features``, ``images``, ``item_categories``,
    ``item_labels``, ``train_positives``) and ``optional_needs`` those it uses when present;
    ``sampler`` the registered sampler building its batches (``bpr``, ``pointwise``, ``user_sets``),
    whose options are fields of ``Params``; ``tasks`` the tasks it serves, the first the default;
    ``uses_time`` whether ``score`` reads the time of the event being ranked (``at``);
    ``loader_in_name`` whether the report name ends in Elliot's ``load=<feature set>``.
    """

    Params: ClassVar[type[HyperParams]] = HyperParams
    needs: ClassVar[tuple[str, ...]] = ()
    optional_needs: ClassVar[tuple[str, ...]] = ()
    sampler: ClassVar[str] = "bpr"
    tasks: ClassVar[tuple[str, ...]] = ("ranking", "sampled", "auc")
    uses_time: ClassVar[bool] = False
    loader_in_name: ClassVar[bool] = False
    family: ClassVar[str] = ""
    sparse_rows: bool = False  # set by the optimizer builder; read by ``rows``

    def __init__(self, params: HyperParams, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__()
        self.params = params
        self.n_users = n_users
        self.n_items = n_items

    # --- the interface -------------------------------------------------------------------

    def generator_states(self) -> dict[str, Any]:
        """States of the model's own seeded generators (e.g. ``SeededDropout``), by attribute path.

        A checkpoint saves them beside the weights, so a resumed run draws the same dropout masks
        as an uninterrupted one; any attribute with ``generator_state()`` / ``load_generator_state()``
        takes part."""
        return {f"{name}.{attr}" if name else attr: value.generator_state()
                for name, module in self.named_modules() for attr, value in vars(module).items()
                if hasattr(value, "generator_state") and hasattr(value, "load_generator_state")}

    def load_generator_states(self, states: dict[str, Any]) -> None:
        """Restore what :meth:`generator_states` returned."""
        for name, module in self.named_modules():
            for attr, value in vars(module).items():
                key = f"{name}.{attr}" if name else attr
                if key in states and hasattr(value, "load_generator_state"):
                    value.load_generator_state(states[key])

    def learning_rate(self) -> float:
        """The learning rate the optimizer starts at: ``params.lr`` (a staged model may return its
        stage's, e.g. ImgRec-EtE's ``finetune_lr``)."""
        return float(getattr(self.params, "lr", 1e-3))

    def rows(self, table: Tensor, index: Tensor) -> Tensor:
        """``table[index]`` for an embedding table (n, d); its gradient is sparse when the training
        side asked for it (``sparse_rows``, set by ``training.optimizers`` for ``lazy_adam``), so a
        step touches only the looked-up rows instead of the whole catalogue."""
        return torch.nn.functional.embedding(index, table, sparse=self.sparse_rows)

    def score(self, users: Tensor, at: Tensor | None = None) -> Tensor:
        """Scores for every catalogue item, shape (len(users), n_items); higher ranks first.

        ``at`` (len(users),) float64 unix seconds: the time of the event being ranked, passed only
        to models with ``uses_time`` (NaN where unknown). A model with an item side
        (``item_representation``) scores through ``score_items``; evaluation then computes that
        item side once per evaluation, in blocks, and reuses it.
        """
        if not self.has_item_representation():
            raise NotImplementedError
        items = self.item_representation(slice(0, self.n_items))
        return self.score_items(users, items, at=at) if self.uses_time else self.score_items(users, items)

    def predict(self, batch: Any) -> Tensor:
        """Label scores of a batch of user sets, shape (B, D) (the multilabel task); higher first."""
        raise NotImplementedError

    # --- the scoring seam evaluation uses (optional) ----------------------------------------

    def item_representation(self, items: slice) -> Tensor:
        """(len(items), d) item side of the score, a pure function of the weights and features
        (a temporal model may add leading axes, e.g. (time_epochs, len(items), d): the item axis
        is always the second to last).

        Evaluation (``evaluation.scoring``) computes it in blocks of ``params.batch_eval`` items
        (Elliot's key; all items in one block when the model declares none), once per evaluation,
        and passes the concatenation to :meth:`score_items` for every batch of users.
        """
        raise NotImplementedError

    def score_items(self, users: Tensor, items: Tensor) -> Tensor:
        """(len(users), n_items) scores from ``items`` = ``item_representation`` of every item;
        a model with ``uses_time`` also receives ``at`` (its users' event times)."""
        raise NotImplementedError

    def score_cost(self, users: Tensor) -> Tensor | None:
        """(len(users),) elements each user's scoring materialises at once, when that is large.

        Evaluation splits a batch of users into consecutive chunks within its memory budget.
        None (the default) means a batch is scored at once.
        """
        return None

    def loss(self, batch: Any) -> Tensor:
        """Scalar training loss of one batch (gradient models); the training loop steps on it."""
        raise NotImplementedError

    def fit(self, data: Any) -> None:
        """Closed-form training on an :class:`~elliot_visual.data.interactions.Interactions`."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Named arrays of the learned model that the reports draw (e.g. TVBPR's trends); default none."""
        return {}

    def between_epochs(self, data: Any, epoch: int) -> None:
        """A non-gradient step after each epoch's gradient steps (before validation), run by the loop
        under ``torch.no_grad()``; e.g. TVBPR re-segments its time epochs here. Default: nothing."""

    def training_stages(self) -> Sequence[TrainingStage]:
        """The stages of a model trained in stages (none: one run of ``params.epochs``)."""
        return ()

    # --- derived ---------------------------------------------------------------------------
    @classmethod
    def has_item_representation(cls) -> bool:
        """True when the model exposes its item side (``item_representation`` + ``score_items``)."""
        return cls.item_representation is not Recommender.item_representation

    @classmethod
    def is_gradient_model(cls) -> bool:
        """True when the model trains through ``loss`` (the shared loop), False for ``fit``."""
        return cls.loss is not Recommender.loss

    @classmethod
    def report_name(cls, params: HyperParams, loader: str | None = None) -> str:
        """Elliot's model name: ``<Family>_<short>=<value>_...`` (``.`` printed as ``$``), ending in
        ``load=<loader>`` for models that read a bound feature set, as Elliot's visual models do."""
        parts = [f"{short}={format_value(getattr(params, name))}" for name, short in params.short_names()]
        if cls.loader_in_name:
            parts.append(f"load={format_value(loader or DEFAULT_LOADER)}")
        return "_".join([cls.family, *parts]) if parts else cls.family

    @classmethod
    def serves(cls, task: str) -> bool:
        return task in cls.tasks

    @property
    def device(self) -> torch.device:
        for tensor in list(self.parameters()) + list(self.buffers()):
            return tensor.device
        return torch.device("cpu")


def register_model(name: str) -> Callable[[M], M]:
    """``@register_model("VBPR")``: add a model to the registry under Elliot's name.

    Checks the class contract at registration so that a broken model fails at import time.
    """

    def add(cls: M) -> M:
        if not issubclass(cls, Recommender):
            raise TypeError(f"model {name} must subclass Recommender")
        if not (isinstance(cls.Params, type) and issubclass(cls.Params, HyperParams)):
            raise TypeError(f"model {name} must declare Params as a HyperParams subclass")
        if not cls.tasks:
            raise TypeError(f"model {name} must declare the tasks it serves")
        ranks = any(task != "multilabel" for task in cls.tasks)
        if ranks and cls.score is Recommender.score and not cls.has_item_representation():
            raise TypeError(f"model {name} serves {', '.join(cls.tasks)} and must implement score(users), "
                            "or item_representation(items) and score_items(users, items)")
        if cls.has_item_representation() and cls.score_items is Recommender.score_items:
            raise TypeError(f"model {name} implements item_representation, so it must implement score_items")
        if "multilabel" in cls.tasks and cls.predict is Recommender.predict:
            raise TypeError(f"model {name} serves multilabel and must implement predict(batch)")
        has_loss = cls.loss is not Recommender.loss
        has_fit = cls.fit is not Recommender.fit
        if has_loss == has_fit:
            raise TypeError(f"model {name} must implement exactly one of loss(batch) and fit(data)")
        if "_" in name:
            raise ValueError(f"model name {name} must not contain '_' (Elliot splits report names on it)")
        cls.family = name
        MODELS.register(name, cls)
        return cls

    return add


def build_model(cls: type[Recommender], params: HyperParams, n_users: int, n_items: int,
                features: Mapping[str, Tensor] | None = None) -> Recommender:
    """Construct ``cls`` with its weights initialised from ``params.seed`` without touching global RNG state."""
    seed = int(getattr(params, "seed", 42))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(params, n_users, n_items, features or {})
