"""Elliot's YAML dialect -> a validated :class:`~elliot_visual.config.schema.Experiment`, or a ConfigError.

What Elliot's ``NameSpaceModel`` does, checked at the door instead of failing mid-run:

- everything lives under ``experiment:``; ``{0}`` becomes ``experiment.dataset`` in
  ``data_config`` (incl. ``side_information``), ``splitting``, ``evaluation.complex_metrics``,
  ``negative_sampling``, ``extraction`` and the result/log paths;
- paths are anchored at the config file's folder: every path-typed field of the schema (and every
  option whose key names a path: ``*_path``, ``*_folder``, ``*_file``, ``*_features``,
  ``item_mapping``...) unless absolute, and, as Elliot does, any other string in those blocks that
  starts with ``.`` or looks like ``name.ext``;
- result folders default to ``../results/{0}/{recs,weights,performance,figures}``;
- ``side_information`` is main Elliot's list of ``{dataloader: ..., ...}`` or the fork's dict read
  by ``data_config.dataloader`` (``VisualLoader``); ``prefiltering`` a dict or a list;
  ``negative_sampling`` may sit at the top level (main Elliot) or under ``evaluation``;
- ``models:`` keys are registry names, ``external.X`` meaning our model ``X``; inside, ``meta:``
  and ``early_stopping:`` are read apart, YAML lists are searched (``ModelSpec.search``, raw) and
  scalars fixed (``ModelSpec.params``, cast by the model's ``Params``: ``"1e-5"`` -> ``1e-05``,
  ``"(64, 1)"`` -> ``(64, 1)``); a hyperparameter the model declares as a ``Path`` is
  substituted and anchored like the paths above (Elliot leaves model values alone).

Stricter than Elliot on purpose (each silently mis-runs an experiment there): unknown metrics,
strategies, keys and hyperparameters are errors naming the closest match; ``validation_metric``
and ``early_stopping.monitor`` are normalised to ``Metric@k`` and must name a configured metric
and cutoff. The keys every Elliot model reads (``seed``, ``epochs``, ``batch_size``) are accepted
for every model and dropped when the model does not declare them (``MostPop``), as Elliot ignores
them there.
"""
from __future__ import annotations

import inspect
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from elliot_visual.config.errors import ConfigError, Problem, key_path, listing, unknown_name
from elliot_visual.config.extraction import ExtractionConfig, ExtractionConfigError, FinetuneConfig, parse_block
from elliot_visual.config.schema import (DataConfig, EarlyStopping, Evaluation, Experiment,
                                         Extraction, Meta, ModelSpec, NegativeSampling, Prefilter,
                                         RayConfig, SideInformation, Splitting, split_metric_at)
from elliot_visual.config.search_space import Dimension, grid_size, parse_dimension
from elliot_visual.registry import (FEATURE_LOADERS, METRICS, MODELS, PREFILTERS, SEARCH_ALGORITHMS, SPLITTERS,
                                    TASKS, Registry)

ROOT = "experiment"
EXTERNAL_PREFIX = "external."
# Keys Elliot's base recommender reads for every model; dropped for models that do not declare them.
COMMON_MODEL_KEYS = ("seed", "epochs", "batch_size")
DEFAULT_RESULT_FOLDERS = {
    "path_output_rec_result": "../results/{0}/recs",
    "path_output_rec_weight": "../results/{0}/weights",
    "path_output_rec_performance": "../results/{0}/performance",
    "path_output_figures": "../results/{0}/figures",
}
CONFIG_SUFFIXES = (".yml", ".yaml")
# An option whose key names a path is resolved whatever its value looks like.
_PATH_KEY = re.compile(r"(_path|_folder|_file|_files|_dir|_features|_mapping)$|^(path|folder|file|files)$")
# Keys of an extraction block that are paths (elliot_visual/config/extraction.py).
_EXTRACTION_PATH_KEYS = {"images", "output", "metadata"}
# Elliot's test for "this string is a file name" (namespace_model.regexp), used in its blocks.
_ELLIOT_FILE_NAME = re.compile(r"[\D][\w-]+\.[\w-]+")
def resolve_config_path(arg: str | Path, config_dir: str | Path = Path("config_files")) -> Path:
    """Elliot's ``--config baby`` -> ``config_files/baby.yml``; an existing path is used as it is."""
    candidate = Path(arg)
    if candidate.is_file():
        return candidate
    folder = Path(config_dir)
    if candidate.suffix not in CONFIG_SUFFIXES:
        for suffix in CONFIG_SUFFIXES:
            for named in (folder / f"{arg}{suffix}", Path(f"{arg}{suffix}")):
                if named.is_file():
                    return named
    available = sorted(p.stem for p in folder.glob("*") if p.suffix in CONFIG_SUFFIXES) if folder.is_dir() else []
    hint = (f"available in {folder}: {listing(available)}" if available
            else f"no .yml configs in {folder.resolve()}")
    raise ConfigError(Problem(f"config {str(arg)!r} not found (neither a file nor {folder}/{arg}.yml)", "", hint))


def load_experiment(config: str | Path | Mapping[str, Any], base_dir: str | Path | None = None) -> Experiment:
    """Read and validate one Elliot-style config; every fault is a :class:`ConfigError`.

    ``config`` is a YAML path, or the parsed document as a mapping (with or without the top-level
    ``experiment:`` key), as Elliot's and RecBole's entry points accept; a mapping's relative paths
    are anchored at ``base_dir`` (default: the current folder), a file's at the file's folder.
    """
    if isinstance(config, Mapping):
        import copy

        document = copy.deepcopy(dict(config))
        document = document if ROOT in document else {ROOT: document}
        file = Path(base_dir or Path.cwd()).resolve() / "<config mapping>"
        if not isinstance(document[ROOT], dict):
            raise ConfigError(Problem(f"expected a mapping, got {document[ROOT]!r}", ROOT), file)
        return _ExperimentBuilder(file, document).build()
    file = Path(config)
    document = _read_yaml(file)
    return _ExperimentBuilder(file, document).build()


# --- reading --------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice (PyYAML silently keeps the last one)."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, typing.Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (first at line {seen[key] + 1}); the second would "
                             "silently replace the first", key_node.start_mark)
        if isinstance(key, typing.Hashable):
            seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def _read_yaml(file: Path) -> dict[str, Any]:
    if not file.exists():
        raise ConfigError(Problem("config file not found", "", f"check the path (looked in {file.resolve().parent})"),
                          file)
    if not file.is_file():
        raise ConfigError(Problem("the config path is a folder, not a YAML file"), file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(Problem(f"cannot read the config: {error}"), file) from None
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ConfigError(Problem(_yaml_message(error), "", "fix the YAML syntax there"), file) from None
    if not isinstance(document, dict) or ROOT not in document:
        found = list(document) if isinstance(document, dict) else type(document).__name__
        raise ConfigError(Problem(f"no top-level '{ROOT}:' key (found {found})", "",
                                  f"Elliot configs put everything under '{ROOT}:'"), file)
    if not isinstance(document[ROOT], dict):
        raise ConfigError(Problem(f"expected a mapping, got {document[ROOT]!r}", ROOT), file)
    return document


def _yaml_message(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(error, "context", None)
    return f"invalid YAML{where}: {problem}" + (f" ({context})" if context else "")


# --- pydantic errors as key paths -----------------------------------------------------------------


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``SplitSpec | None``, ``list[Prefilter]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _fields_at(cls: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys accepted by the model found at ``loc`` below ``cls``."""
    for part in loc:
        if isinstance(part, str) and part in cls.model_fields:
            inner = _submodel(cls.model_fields[part].annotation)
            if inner is None:
                break
            cls = inner
    return list(cls.model_fields)


def _pydantic_problems(error: ValidationError, cls: type[BaseModel], prefix: tuple[str | int, ...],
                       moved: Mapping[tuple[Any, ...], tuple[str | int, ...]] | None = None,
                       skip: Callable[[tuple[Any, ...]], bool] | None = None) -> list[Problem]:
    """Each pydantic error as a Problem at its YAML key path.

    ``moved`` maps a location of a key the loader moved (``negative_sampling`` into ``evaluation``)
    back to where the YAML wrote it; ``skip`` drops errors whose location another check reports.
    """
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        if skip is not None and skip(loc):
            continue
        at = key_path(*prefix, *loc)
        for reshaped, original in (moved or {}).items():
            if loc[:len(reshaped)] == reshaped:
                at = key_path(*original, *loc[len(reshaped):])
                break
        message = item["msg"].removeprefix("Value error, ")
        kind = item["type"]
        if kind == "extra_forbidden":
            accepted = [f for f in _fields_at(cls, loc[:-1]) if f not in _INTERNAL_FIELDS]
            problems.append(unknown_name("key", loc[-1], at, accepted))
        elif kind == "missing":
            problems.append(Problem("missing required key", at, "add it"))
        elif isinstance(item.get("input"), (dict, list)):  # a rule over a whole block: its message says it
            problems.append(Problem(message, at))
        else:
            problems.append(Problem(f"invalid value {item['input']!r}", at, message))
    return problems


# Top-level keys the builder reads itself; every other key goes to Experiment as it is.
_SECTIONS = {"dataset", "data_config", "prefiltering", "splitting", "evaluation", "negative_sampling", "top_k",
             "extraction", "ray", "models", *DEFAULT_RESULT_FOLDERS}
# Where Tune keeps a study's experiment state unless ray.storage_path says otherwise.
DEFAULT_RAY_STORAGE = "../results/{0}/ray"
# Schema fields the loader fills in itself; never offered as a key to write.
_INTERNAL_FIELDS = {"config_path", "raw", "key", "name", "external", "params", "search"}


# --- the builder ----------------------------------------------------------------------------------


class _ExperimentBuilder:
    """Turns the ``experiment:`` mapping into schema objects, collecting every problem found."""

    def __init__(self, file: Path, document: dict[str, Any]) -> None:
        self.file = file
        self.folder = file.resolve().parent
        self.raw: dict[str, Any] = document[ROOT]
        self.problems: list[Problem] = []
        self.dataset = ""

    # -- entry point --
    def build(self) -> Experiment:
        self.dataset = self._dataset()
        raw = self.raw
        fields: dict[str, Any] = {"config_path": self.file.resolve(), "dataset": self.dataset, "raw": raw}
        fields["data_config"] = self._data_config(raw.get("data_config"))
        if raw.get("prefiltering") is not None:
            fields["prefiltering"] = self._prefiltering(raw["prefiltering"])
        if raw.get("splitting") is not None:
            fields["splitting"] = self._splitting(raw["splitting"])
        elif fields["data_config"] is not None and fields["data_config"].strategy == "dataset":
            self.problems.append(Problem("missing 'splitting' block", key_path(ROOT, "splitting"),
                                         "data_config.strategy 'dataset' needs splitting.test_splitting "
                                         "(or use strategy 'fixed' with train_path and test_path)"))
        evaluation = self._evaluation(raw.get("evaluation") or {}, raw.get("negative_sampling"))
        top_k = self._top_k(evaluation)
        if evaluation is not None:
            fields["evaluation"] = evaluation
        if top_k is not None:
            fields["top_k"] = top_k
        fields.update(self._result_paths())
        if raw.get("extraction") is not None:
            fields["extraction"] = self._extraction(raw["extraction"])
        if raw.get("ray") is not None:
            fields["ray"] = self._ray(raw["ray"])
        fields["models"] = self._models(raw.get("models"), evaluation)
        for key, value in raw.items():
            if key not in _SECTIONS:
                fields[key] = self._anchor_if_path_field(Experiment, key, value)
        if self.problems:
            raise ConfigError(self.problems, self.file)
        return self._validate(Experiment, fields, (ROOT,))

    # -- helpers --
    def _fail_now(self, problem: Problem) -> ConfigError:
        return ConfigError([*self.problems, problem], self.file)

    def _validate(self, cls: type[BaseModel], data: Any, prefix: tuple[str | int, ...],
                  moved: Mapping[tuple[Any, ...], tuple[str | int, ...]] | None = None) -> Any:
        """``cls.model_validate(data)``; on failure record the problems and return None."""
        if not isinstance(data, dict):
            self.problems.append(Problem(f"expected a mapping of keys, got {data!r}", key_path(*prefix)))
            return None
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            self.problems.extend(_pydantic_problems(error, cls, prefix, moved))
            if cls is Experiment:
                raise ConfigError(self.problems, self.file) from None
            return None

    def _substitute(self, value: Any) -> Any:
        """``{0}`` -> dataset name in every string (Elliot's ``str.format``, without its brace errors)."""
        if isinstance(value, str):
            return value.replace("{0}", self.dataset)
        if isinstance(value, list):
            return [self._substitute(v) for v in value]
        if isinstance(value, dict):
            return {k: self._substitute(v) for k, v in value.items()}
        return value

    def _anchor(self, value: str) -> Path:
        """A path relative to the config file's folder (absolute paths kept), normalised."""
        expanded = os.path.expanduser(value)
        return Path(os.path.abspath(expanded if os.path.isabs(expanded) else os.path.join(self.folder, expanded)))

    def _anchor_if_path_field(self, cls: type[BaseModel], key: str, value: Any) -> Any:
        """Anchor ``value`` when ``cls.key`` is declared as a path (or a list of paths)."""
        field = cls.model_fields.get(key)
        if field is None or not _declares_path(field.annotation):
            return value
        value = self._substitute(value)
        if isinstance(value, str):
            return self._anchor(value)
        if isinstance(value, list):
            return [self._anchor(v) if isinstance(v, str) else v for v in value]
        return value

    def _anchor_options(self, block: dict[str, Any], elliot_rule: bool) -> dict[str, Any]:
        """Substitute ``{0}`` and anchor the path-like options of an open block (side info, metrics...)."""
        result = {}
        for key, value in self._substitute(block).items():
            path_key = isinstance(key, str) and bool(_PATH_KEY.search(key))
            if isinstance(value, str) and (path_key or os.path.isabs(value)
                                           or (elliot_rule and _looks_like_file(value))):
                value = self._anchor(value)
            elif isinstance(value, list) and path_key:
                value = [self._anchor(v) if isinstance(v, str) else v for v in value]
            result[key] = value
        return result

    def _anchor_schema_fields(self, cls: type[BaseModel], block: dict[str, Any]) -> dict[str, Any]:
        return {k: self._anchor_if_path_field(cls, k, v) for k, v in self._substitute(block).items()}

    def _check_name(self, registry: Registry, name: Any, at: str, canonical: bool = False) -> str | None:
        """``name`` if ``registry`` knows it (its registered spelling with ``canonical``), else a problem."""
        if isinstance(name, str) and name in registry:
            return registry.canonical(name) if canonical else name
        self.problems.append(unknown_name(registry.kind, name, at, registry.names()))
        return None

    # -- sections --
    def _dataset(self) -> str:
        dataset = self.raw.get("dataset")
        at = key_path(ROOT, "dataset")
        if dataset is None or dataset == "":
            raise self._fail_now(Problem("missing required key", at,
                                         "name the dataset (it replaces {0} in every path)"))
        if isinstance(dataset, bool) or not isinstance(dataset, (str, int)):
            raise self._fail_now(Problem(f"invalid value {dataset!r}", at, "the dataset name must be a string"))
        return str(dataset)

    def _data_config(self, raw: Any) -> DataConfig | None:
        at = (ROOT, "data_config")
        if raw is None:
            self.problems.append(Problem("missing required key", key_path(*at),
                                         "add data_config with a strategy (dataset, fixed or hierarchy) and its paths"))
            return None
        if not isinstance(raw, dict):
            self.problems.append(Problem(f"expected a mapping, got {raw!r}", key_path(*at)))
            return None
        block = self._anchor_schema_fields(DataConfig, {k: v for k, v in raw.items() if k != "side_information"})
        side = raw.get("side_information")
        entries = self._side_information(side, raw.get("dataloader"))
        if entries is None:
            return None
        block["side_information"] = entries
        return self._validate(DataConfig, block, at)

    def _side_information(self, side: Any, dataloader: Any) -> list[SideInformation] | None:
        base = (ROOT, "data_config", "side_information")
        if side is None or side == [] or side == {}:
            return []
        if isinstance(side, dict):  # the fork's form: one loader named by data_config.dataloader
            options = dict(side)
            if "dataloader" not in options:
                if not dataloader or dataloader == "DataSetLoader":
                    self.problems.append(Problem(
                        "side_information given as a mapping but no loader named", key_path(*base),
                        "set data_config.dataloader (e.g. VisualLoader) or write side_information as a list of "
                        "{dataloader: ..., ...} entries"))
                    return None
                options["dataloader"] = dataloader
            raw_entries = [(base, options)]
        elif isinstance(side, list):
            raw_entries = [((*base, i), entry) for i, entry in enumerate(side)]
        else:
            self.problems.append(Problem(f"expected a list of loaders or a mapping, got {side!r}", key_path(*base)))
            return None
        entries = []
        for at, entry in raw_entries:
            if not isinstance(entry, dict):
                self.problems.append(Problem(f"expected a mapping with a 'dataloader' key, got {entry!r}",
                                             key_path(*at)))
                continue
            validated = self._validate(SideInformation, self._anchor_options(entry, elliot_rule=True), at)
            if validated is not None:
                self._check_name(FEATURE_LOADERS, validated.dataloader, key_path(*at, "dataloader"))
                entries.append(validated)
        return entries if len(entries) == len(raw_entries) else None

    def _prefiltering(self, raw: Any) -> list[Prefilter]:
        steps = [((ROOT, "prefiltering"), raw)] if isinstance(raw, dict) else \
            [((ROOT, "prefiltering", i), step) for i, step in enumerate(raw)] if isinstance(raw, list) else None
        if steps is None:
            self.problems.append(Problem(f"expected a strategy mapping or a list of them, got {raw!r}",
                                         key_path(ROOT, "prefiltering")))
            return []
        result = []
        for at, step in steps:
            validated = self._validate(Prefilter, step, at)
            if validated is None:
                continue
            name = self._check_name(PREFILTERS, validated.strategy, key_path(*at, "strategy"))
            if name is not None:
                self._check_strategy_options(PREFILTERS.get(name), name, validated, at)
            result.append(validated)
        return result

    def _splitting(self, raw: Any) -> Splitting | None:
        at = (ROOT, "splitting")
        if not isinstance(raw, dict):
            self.problems.append(Problem(f"expected a mapping, got {raw!r}", key_path(*at)))
            return None
        block = self._anchor_schema_fields(Splitting, raw)
        for part in ("test_splitting", "validation_splitting"):
            if isinstance(block.get(part), dict):
                block[part] = self._anchor_options(block[part], elliot_rule=True)
        splitting = self._validate(Splitting, block, at)
        if splitting is None:
            return None
        for part in ("test_splitting", "validation_splitting"):
            spec = getattr(splitting, part)
            if spec is None:
                continue
            name = self._check_name(SPLITTERS, spec.strategy, key_path(*at, part, "strategy"))
            if name is not None:
                self._check_strategy_options(SPLITTERS.get(name), name, spec, (*at, part))
        return splitting

    def _check_strategy_options(self, function: Any, name: str, block: BaseModel, at: tuple[str | int, ...]) -> None:
        """A strategy's options are its keyword-only parameters (see data/strategy_options.py)."""
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            return
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return
        options = {p.name: p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
        given = block.model_extra or {}
        for key in given:
            if key not in options:
                self.problems.append(unknown_name(f"{name} option", key, key_path(*at, key),
                                                  list(options) or ["(none)"]))
        for key, parameter in options.items():
            if parameter.default is inspect.Parameter.empty and key not in given:
                self.problems.append(Problem(f"strategy '{name}' needs option '{key}'", key_path(*at),
                                             f"its options: {listing(options)}"))

    def _evaluation(self, raw: Any, top_level_sampling: Any) -> Evaluation | None:
        at = (ROOT, "evaluation")
        if not isinstance(raw, dict):
            self.problems.append(Problem(f"expected a mapping, got {raw!r}", key_path(*at)))
            return None
        block = dict(raw)
        moved: dict[tuple[Any, ...], tuple[str | int, ...]] = {}
        if top_level_sampling is not None:
            if "negative_sampling" in block:
                self.problems.append(Problem("negative_sampling given twice", key_path(ROOT, "negative_sampling"),
                                             "keep either experiment.negative_sampling or "
                                             "experiment.evaluation.negative_sampling"))
                return None
            block["negative_sampling"] = top_level_sampling
            moved[("negative_sampling",)] = (ROOT, "negative_sampling")
        if isinstance(block.get("negative_sampling"), dict):
            block["negative_sampling"] = self._anchor_schema_fields(NegativeSampling, block["negative_sampling"])
        if isinstance(block.get("complex_metrics"), list):
            block["complex_metrics"] = [self._anchor_options(m, elliot_rule=True) if isinstance(m, dict) else m
                                        for m in block["complex_metrics"]]
        for metric_key in ("simple_metrics",):
            if isinstance(block.get(metric_key), str):  # a single name written without brackets
                block[metric_key] = [block[metric_key]]
        evaluation = self._validate(Evaluation, block, at, moved)
        if evaluation is None:
            return None
        simple = []
        for i, name in enumerate(evaluation.simple_metrics):
            canonical = self._check_name(METRICS, name, key_path(*at, "simple_metrics", i), canonical=True)
            if canonical is not None:
                simple.append(canonical)
        for i, metric in enumerate(evaluation.complex_metrics):
            canonical = self._check_name(METRICS, metric.metric, key_path(*at, "complex_metrics", i, "metric"),
                                         canonical=True)
            if canonical is not None:
                metric.metric = canonical
        for i, cutoff in enumerate(evaluation.cutoffs):
            if cutoff < 1:
                self.problems.append(Problem(f"invalid cutoff {cutoff}", key_path(*at, "cutoffs", i),
                                             "cutoffs are list lengths >= 1"))
        duplicates = sorted({m for m in simple if simple.count(m) > 1})
        if duplicates:
            self.problems.append(Problem(f"metric(s) {', '.join(duplicates)} listed twice",
                                         key_path(*at, "simple_metrics"), "list each metric once"))
        evaluation.simple_metrics = simple
        return evaluation

    def _top_k(self, evaluation: Evaluation | None) -> int | None:
        """``top_k`` (schema default if absent); every cutoff must fit in the stored lists.

        Also gives ``evaluation.cutoffs`` Elliot's default, ``[top_k]``, so later checks see them.
        """
        raw_top_k = self.raw.get("top_k", Experiment.model_fields["top_k"].default)
        if isinstance(raw_top_k, bool) or not isinstance(raw_top_k, int) or raw_top_k < 1:
            self.problems.append(Problem(f"invalid value {raw_top_k!r}", key_path(ROOT, "top_k"),
                                         "top_k is the length of the stored lists, an integer >= 1"))
            return None
        if evaluation is not None:
            if not evaluation.cutoffs:
                evaluation.cutoffs = [raw_top_k]
            for i, cutoff in enumerate(evaluation.cutoffs):
                if cutoff > raw_top_k:
                    self.problems.append(Problem(
                        f"cutoff {cutoff} exceeds top_k {raw_top_k}", key_path(ROOT, "evaluation", "cutoffs", i),
                        f"every cutoff must be <= experiment.top_k; raise top_k to {max(evaluation.cutoffs)} or "
                        "lower the cutoff"))
        return raw_top_k

    def _result_paths(self) -> dict[str, Path]:
        paths = {}
        for key, default in DEFAULT_RESULT_FOLDERS.items():
            value = self.raw.get(key, default)
            if not isinstance(value, str):
                self.problems.append(Problem(f"invalid value {value!r}", key_path(ROOT, key), "give a folder path"))
                continue
            paths[key] = self._anchor(self._substitute(value))
        return paths

    def _extraction(self, raw: Any) -> list[Extraction]:
        blocks = [((ROOT, "extraction"), raw)] if isinstance(raw, dict) else \
            [((ROOT, "extraction", i), b) for i, b in enumerate(raw)] if isinstance(raw, list) else None
        if blocks is None:
            self.problems.append(Problem(f"expected a mapping or a list of them, got {raw!r}",
                                         key_path(ROOT, "extraction")))
            return []
        result = []
        for at, block in blocks:
            if not isinstance(block, dict):
                self.problems.append(Problem(f"expected a mapping, got {block!r}", key_path(*at)))
                continue
            # A block's own 'dataset' fills its {0} (config/extraction.py's rule); only keys that
            # name paths are anchored, since layer names such as 'layer4.2' look like files.
            dataset = str(block["dataset"]) if block.get("dataset") else self.dataset
            anchored = {}
            for key, value in block.items():
                if isinstance(value, str):
                    value = value.replace("{0}", dataset)
                    if key in _EXTRACTION_PATH_KEYS or _PATH_KEY.search(str(key)):
                        value = self._anchor(value)
                anchored[key] = value
            validated = self._validate(Extraction, anchored, at)
            if validated is not None:
                self._check_extraction(validated, at)
                result.append(validated)
        return result

    def _ray(self, raw: Any) -> RayConfig | None:
        """``ray:`` with ``{0}`` filled and its folders anchored; Tune's state defaults beside the results."""
        if not isinstance(raw, dict):
            self.problems.append(Problem(f"expected a mapping, got {raw!r}", key_path(ROOT, "ray"),
                                         "e.g. 'ray: {address: local, max_concurrent_trials: 2}'"))
            return None
        block = {"storage_path": DEFAULT_RAY_STORAGE, **raw}
        return self._validate(RayConfig, self._anchor_schema_fields(RayConfig, block), (ROOT, "ray"))

    def _check_extraction(self, block: Extraction, at: tuple[str | int, ...]) -> None:
        """Validate the block's own keys (config/extraction.py) now, not after data loading."""
        kind = FinetuneConfig if "metadata" in (block.model_extra or {}) else ExtractionConfig
        try:
            parse_block(block, self.folder, self.dataset, kind=kind)
        except ExtractionConfigError as error:
            self.problems.append(Problem(str(error), key_path(*at)))
        except ImportError:
            return

    # -- models --
    def _models(self, raw: Any, evaluation: Evaluation | None) -> list[ModelSpec]:
        at = key_path(ROOT, "models")
        if not raw:
            self.problems.append(Problem("no models to run", at, "add at least one entry, e.g. 'MostPop: {}'"))
            return []
        if not isinstance(raw, dict):
            self.problems.append(Problem(f"expected a mapping of model names to parameters, got {raw!r}", at))
            return []
        specs = [self._model(str(key), body, evaluation) for key, body in raw.items()]
        return [s for s in specs if s is not None]

    def _model(self, key: str, body: Any, evaluation: Evaluation | None) -> ModelSpec | None:
        prefix = (ROOT, "models", key)
        body = {} if body is None else body
        if not isinstance(body, dict):
            self.problems.append(Problem(f"expected a mapping of hyperparameters, got {body!r}", key_path(*prefix)))
            return None
        external = key.startswith(EXTERNAL_PREFIX)
        name = key[len(EXTERNAL_PREFIX):] if external else key
        lookup = key if key in MODELS else name
        if lookup not in MODELS:
            self.problems.append(unknown_name("model", name, key_path(*prefix), MODELS.names()))
            return None
        params_cls = MODELS.get(lookup).Params

        meta = self._validate(Meta, body.get("meta") or {}, (*prefix, "meta"))
        if meta is not None:
            self._check_name(SEARCH_ALGORITHMS, meta.hyper_opt_alg, key_path(*prefix, "meta", "hyper_opt_alg"))
            meta.validation_metric = self._validation_metric(meta.validation_metric, evaluation,
                                                             key_path(*prefix, "meta", "validation_metric"))
        early_stopping = None
        if body.get("early_stopping") is not None:
            early_stopping = self._early_stopping(body["early_stopping"], meta, evaluation, (*prefix, "early_stopping"))

        model_cls = MODELS.get(lookup)
        if meta is not None:
            self._check_task(model_cls, meta, key_path(*prefix, "meta", "task"))
        bound = self._bound_loader(model_cls, name, body.get("loader"), key_path(*prefix, "loader"))
        fixed: dict[str, Any] = {}
        searched: dict[str, list[Any]] = {}
        dimensions: list[Dimension] = []
        fields = params_cls.model_fields
        for param, value in body.items():
            if param in ("meta", "early_stopping", "loader"):
                continue
            at = key_path(*prefix, param)
            if param not in fields:
                if param not in COMMON_MODEL_KEYS:
                    accepted = [*fields, *(k for k in COMMON_MODEL_KEYS if k not in fields), "meta", "early_stopping"]
                    self.problems.append(unknown_name(f"{name} hyperparameter", param, at, accepted))
                continue
            if isinstance(value, list):
                try:
                    dimension = parse_dimension(param, value)
                except ValueError as error:
                    self.problems.append(Problem(f"invalid search space {value!r}", at, str(error)))
                    continue
                if _declares_path(fields[param].annotation) and dimension.distribution == "choice":
                    value = [self._anchor(self._substitute(v)) if isinstance(v, str) else v for v in dimension.args]
                    dimension = Dimension(param, "choice", tuple(value))
                searched[param] = value
                dimensions.append(dimension)
            else:
                if _declares_path(fields[param].annotation) and isinstance(value, str):
                    value = self._anchor(self._substitute(value))
                fixed[param] = value
        fixed = self._check_hyperparameters(params_cls, fixed, dimensions, prefix)
        if fixed is None or meta is None:
            return None
        if dimensions and meta.hyper_max_evals is None and grid_size(dimensions) is None:
            continuous = ", ".join(f"{d.name}: {d.distribution}" for d in dimensions if not d.is_discrete)
            self.problems.append(Problem(
                "missing hyper_max_evals", key_path(*prefix, "meta", "hyper_max_evals"),
                f"the search space has continuous dimensions ({continuous}), so it has no grid size to default "
                "to; set meta.hyper_max_evals to the number of trials"))
        self._check_validation_rate(meta, fixed, dimensions, prefix)
        spec = {"key": key, "name": name, "external": external, "meta": meta, "params": fixed,
                "search": searched, "early_stopping": early_stopping, "loader": bound}
        return self._validate(ModelSpec, spec, prefix)

    def _check_task(self, model_cls: Any, meta: Meta, at: str) -> None:
        """``meta.task`` names a registered task that the model serves."""
        if meta.task is None:
            return
        if self._check_name(TASKS, meta.task, at) is None:
            return
        if meta.task not in model_cls.tasks:
            self.problems.append(Problem(f"{model_cls.family} does not serve the '{meta.task}' task", at,
                                         f"it serves: {listing(model_cls.tasks)}"))

    def _bound_loader(self, model_cls: Any, name: str, value: Any, at: str) -> str | list[str] | None:
        """The model entry's ``loader``: the feature set bound to it (a list compares feature sets,
        one report row each). Only models that read side information accept it."""
        if value is None:
            return None
        if not (model_cls.needs or model_cls.optional_needs):
            self.problems.append(Problem(f"{name} reads no side information, so 'loader' would do nothing", at,
                                         "remove the key, or use a model that reads visual features"))
            return None
        values = value if isinstance(value, list) else [value]
        if isinstance(value, tuple) or not values or not all(isinstance(v, str) and v.strip() for v in values):
            self.problems.append(Problem(f"expected a side-information name or a list of names, got {value!r}", at,
                                         "write e.g. loader: resnet50 or loader: [alexnet, resnet50]"))
            return None
        if len(set(values)) != len(values):
            self.problems.append(Problem(f"loader list {values!r} repeats a name", at, "list each feature set once"))
            return None
        return [self._substitute(v) for v in values] if isinstance(value, list) else self._substitute(value)

    def _check_hyperparameters(self, params_cls: type[BaseModel], fixed: dict[str, Any],
                               dimensions: list[Dimension], prefix: tuple[str | int, ...]) -> dict[str, Any] | None:
        """Validate fixed values and every searched value through ``Params``; return the fixed ones cast.

        A searched value is checked together with the fixed values and one value of every other
        dimension, so cross-field rules of ``Params`` apply too. Continuous dimensions are checked
        through one value they can produce (a ``quniform`` sample such as ``8.0`` for an int).
        """
        before = len(self.problems)
        searched = {d.name for d in dimensions}
        representative = {d.name: d.representative() for d in dimensions}
        instance = None
        try:
            instance = params_cls.model_validate({**fixed, **representative})
        except ValidationError as error:
            self.problems.extend(_pydantic_problems(error, params_cls, prefix,
                                                    skip=lambda loc: bool(loc) and loc[0] in searched))
        for d in dimensions:
            values = d.values() if d.distribution == "choice" else [d.representative()]
            for i, value in enumerate(values):
                try:
                    params_cls.model_validate({**fixed, **representative, d.name: value})
                except ValidationError as error:
                    own = [item for item in error.errors(include_url=False) if item["loc"][:1] == (d.name,)]
                    if not own:
                        continue
                    reason = own[0]["msg"].removeprefix("Value error, ")
                    if d.distribution == "choice":
                        self.problems.append(Problem(f"invalid value {value!r}", key_path(*prefix, d.name, i), reason))
                    else:
                        self.problems.append(Problem(f"{d.distribution} produces values such as {value!r}, "
                                                     "which are invalid", key_path(*prefix, d.name), reason))
        if instance is None or len(self.problems) > before:
            return None
        return {k: getattr(instance, k) for k in fixed}

    def _validation_metric(self, value: str | None, evaluation: Evaluation | None, at: str) -> str | None:
        """``Metric@k`` with the registered spelling; defaults to the first simple metric @ first cutoff."""
        if evaluation is None or not evaluation.cutoffs:
            return value
        if not evaluation.simple_metrics:
            if value is not None:
                self.problems.append(Problem(f"validation metric {value!r} but no simple_metrics configured", at,
                                             "list it under experiment.evaluation.simple_metrics"))
            return value
        cutoffs = evaluation.cutoffs
        if value is None:
            return f"{evaluation.simple_metrics[0]}@{cutoffs[0]}"
        return self._metric_at(value, evaluation, cutoffs, at, "validation metric")

    def _metric_at(self, value: Any, evaluation: Evaluation, cutoffs: list[int], at: str, what: str) -> str | None:
        try:
            metric, k = split_metric_at(value, what)
        except ValueError:
            self.problems.append(Problem(f"invalid {what} {value!r}", at,
                                         "write Metric or Metric@cutoff, e.g. nDCG@10"))
            return None
        cutoff = k if k is not None else cutoffs[0]
        configured = {m.lower(): m for m in evaluation.simple_metrics}
        if metric.lower() not in configured:
            self.problems.append(Problem(
                f"{what} {value!r} names metric '{metric}', which is not in experiment.evaluation.simple_metrics",
                at, f"configured: {listing(evaluation.simple_metrics)}; add it there or choose one of them"))
            return None
        if cutoff not in cutoffs:
            self.problems.append(Problem(
                f"{what} {value!r} uses cutoff {cutoff}, which is not in experiment.evaluation.cutoffs", at,
                f"configured cutoffs: {listing(str(c) for c in cutoffs)}"))
            return None
        return f"{configured[metric.lower()]}@{cutoff}"

    def _early_stopping(self, raw: Any, meta: Meta | None, evaluation: Evaluation | None,
                        at: tuple[str | int, ...]) -> EarlyStopping | None:
        stopping = self._validate(EarlyStopping, raw, at)
        if stopping is None or evaluation is None or meta is None or not evaluation.cutoffs:
            return stopping
        monitor_at = key_path(*at, "monitor")
        if "monitor" not in raw:  # Elliot monitors the validation metric unless told otherwise
            if meta.validation_metric is not None:
                stopping.monitor = meta.validation_metric
        elif stopping.monitor != "loss":
            cutoffs = evaluation.cutoffs
            default_k = int(meta.validation_metric.split("@")[1]) if meta.validation_metric else cutoffs[0]
            monitor = stopping.monitor if "@" in stopping.monitor else f"{stopping.monitor}@{default_k}"
            normalised = self._metric_at(monitor, evaluation, cutoffs, monitor_at, "early_stopping monitor")
            if normalised is not None:
                stopping.monitor = normalised
        return stopping

    def _check_validation_rate(self, meta: Meta, fixed: dict[str, Any], dimensions: list[Dimension],
                               prefix: tuple[str | int, ...]) -> None:
        """Elliot refuses a first validation epoch later than the last epoch."""
        epochs: list[Any] = [fixed["epochs"]] if "epochs" in fixed else []
        epochs += [v for d in dimensions if d.name == "epochs" and d.is_discrete for v in d.values()]
        short = [e for e in epochs if isinstance(e, (int, float)) and not isinstance(e, bool)
                 and e < meta.validation_rate]
        if short:
            self.problems.append(Problem(
                f"validation_rate {meta.validation_rate} is later than the last epoch (epochs: {short[0]})",
                key_path(*prefix, "meta", "validation_rate"),
                "lower validation_rate or raise epochs, or no validation would ever run"))


def _looks_like_file(value: str) -> bool:
    """Elliot's rule for a string that is a path: it starts with '.' or reads like 'name.ext'."""
    return value.startswith(".") or bool(_ELLIOT_FILE_NAME.search(value))


def _declares_path(annotation: Any) -> bool:
    """True for ``Path``, ``Path | None``, ``list[Path]``..."""
    if annotation is Path:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple):
        return any(_declares_path(a) for a in typing.get_args(annotation))
    return False

