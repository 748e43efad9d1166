"""The layering of DESIGN.md, enforced: arrows point down the pipeline only, and no module circles.

What counts as an import of module M by module A (an arrow A -> M):

* ``import``/``from ... import`` anywhere in A at run time (inside functions too); imports under
  ``if TYPE_CHECKING:`` are annotations, not dependencies, and are ignored;
* a string constant of A that is exactly a module's dotted name (``"elliot_visual.offline"``,
  ``importlib.import_module`` targets, the CLI's delegation table), and a package ``__init__``
  that imports every module of its folder through ``pkgutil`` (``evaluation/metrics``);
* a registry A imports from ``elliot_visual.registry``: looking a name up imports the modules in
  that registry's ``populated_by`` (``MODELS`` -> ``elliot_visual.models``), so A depends on them.

  Only lookups count (``X.get``, ``X.names()``, ``name in X``): registering an entry
  (``X.register``) is how a plugin joins a registry, not a dependency on the other entries.

``config.schema``, ``config.errors``, ``config.extraction`` and ``config.weights`` hold plain typed
objects that every layer receives, so they count as foundation with ``registry`` and ``storage``.
"""
from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "elliot_visual"
FOUNDATION = {"registry", "storage", "config.schema", "config.errors", "config.extraction", "config.weights"}

# layer -> layers (module prefixes under elliot_visual) it must never import at run time
FORBIDDEN = {
    "config": {"data", "features", "extraction", "models", "training", "evaluation", "tuning", "reports",
               "experiment", "cli", "offline", "testing", "elliot_launcher"},
    "data": {"features", "extraction", "models", "training", "evaluation", "tuning", "reports",
             "experiment", "cli", "offline"},
    "features": {"models", "training", "evaluation", "tuning", "reports", "experiment", "cli"},
    "extraction": {"models", "training", "evaluation", "tuning", "reports", "experiment"},
    "models": {"evaluation", "tuning", "reports", "experiment", "cli", "training"},
    "training": {"evaluation", "tuning", "reports", "experiment", "cli"},
    "evaluation": {"training", "tuning", "reports", "experiment", "cli"},
    "tuning": {"reports", "experiment", "cli"},
    "reports": {"training", "tuning", "experiment", "cli", "models", "interactive"},
    "interactive": {"training", "tuning", "evaluation", "experiment", "cli"},
    "registry": {"*"},
    "storage": {"*"},
}
# Exceptions, each with its reason.
ALLOWED = {
    # Fine-tuning is trained by the one loop; the loop imports no model or data module at run time.
    ("extraction", "training.loop"),
}
# config validates names and hyperparameters against every registry (that is its job at the door),
# so its registry lookups are allowed; its plain imports are checked like any other layer's.
REGISTRY_USERS_UNCHECKED = {"config"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))
NAMES = {_module_name(p): p for p in MODULES}


def _layer(name: str) -> str:
    return name.split(".")[0]


def _guarded(tree: ast.AST) -> set[int]:
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded.update(id(n) for child in node.body for n in ast.walk(child))
    return guarded


def _internal(dotted: str) -> str | None:
    """``elliot_visual.x.y`` (or ``elliot_visual.x.y:attr``) -> ``x.y`` when it is a module of the package."""
    dotted = dotted.split(":")[0]
    if dotted == "elliot_visual" or not dotted.startswith("elliot_visual."):
        return None
    name = dotted[len("elliot_visual."):]
    while name and name not in NAMES:  # ``from elliot_visual.models.base import X`` names the module
        name = name.rpartition(".")[0]
    return name or None


@cache
def _registries() -> dict[str, tuple[str, ...]]:
    """Registry variable -> the modules its ``populated_by`` names (read from registry.py)."""
    tree = ast.parse((PACKAGE / "registry.py").read_text(encoding="utf-8"))
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Call) \
                and getattr(node.value.func, "id", "") == "Registry":
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            populated = node.value.args[1] if len(node.value.args) > 1 else next(
                (k.value for k in node.value.keywords if k.arg == "populated_by"), None)
            modules = tuple(e.value for e in getattr(populated, "elts", ()) if isinstance(e, ast.Constant))
            found[target.id] = modules
    return found


def _looks_up(tree: ast.AST, registry: str) -> bool:
    """True when the module uses ``registry`` for anything but ``registry.register(...)``."""
    uses = sum(isinstance(n, ast.Name) and n.id == registry for n in ast.walk(tree))
    registrations = sum(isinstance(n, ast.Attribute) and n.attr == "register" and isinstance(n.value, ast.Name)
                        and n.value.id == registry for n in ast.walk(tree))
    return uses > registrations


@cache
def imports_of(name: str) -> dict[str, str]:
    """Modules ``name`` imports at run time -> how (``import``, ``string``, ``registry X``)."""
    path = NAMES[name]
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    guarded = _guarded(tree)
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (target := _internal(alias.name)) is not None:
                    found.setdefault(target, "import")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "elliot_visual":  # from elliot_visual import storage
                targets = [_internal(f"elliot_visual.{alias.name}") for alias in node.names]
            else:
                targets = [_internal(node.module)]
                if node.module == "elliot_visual.registry":
                    for alias in node.names:
                        if not _looks_up(tree, alias.asname or alias.name):
                            continue
                        for module in _registries().get(alias.name, ()):
                            if (target := _internal(module)) is not None:
                                found.setdefault(target, f"registry {alias.name}")
            for target in targets:
                if target is not None:
                    found.setdefault(target, "import")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and name != "registry":
            if (target := _internal(node.value)) is not None and node.value.split(":")[0] in (
                    f"elliot_visual.{target}",):
                found.setdefault(target, "string")
    if path.name == "__init__.py" and "iter_modules(__path__)" in source and "import_module" in source:
        for sibling in path.parent.glob("*.py"):
            if sibling.name != "__init__.py":
                found.setdefault(_module_name(sibling), "string")
    found.pop(name, None)
    return found


@pytest.mark.parametrize("name", sorted(NAMES), ids=lambda n: n or "__init__")
def test_module_imports_only_upstream_layers(name: str) -> None:
    layer = _layer(name)
    forbidden = FORBIDDEN.get(layer, set())
    bad = []
    for target, how in imports_of(name).items():
        if target in FOUNDATION or _layer(target) == layer or (layer, target) in ALLOWED:
            continue
        if how.startswith("registry") and layer in REGISTRY_USERS_UNCHECKED:
            continue
        if "*" in forbidden or _layer(target) in forbidden:
            bad.append(f"{target} ({how})")
    assert not bad, f"{name} ({layer}) must not import {sorted(bad)}"


def _circles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in imports_of(node):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for name in sorted(NAMES):
        if name not in index:
            visit(name)
    return circles


def test_no_import_circles_between_modules_inside_or_across_layers() -> None:
    circles = _circles()
    described = ["; ".join(f"{a} -> {b} ({imports_of(a)[b]})" for a in circle for b in circle
                           if b in imports_of(a)) for circle in circles]
    assert not circles, "\n".join(described)


def test_the_import_reader_sees_strings_registries_and_lazy_imports() -> None:
    """The checks above are only as good as the reader: it must see every kind of arrow."""
    assert imports_of("cli")["data.prepare_command"] == "string"                     # delegation table
    assert imports_of("config.loader")["models"] == "registry MODELS"                 # populated_by
    assert imports_of("evaluation.metrics")["evaluation.metrics.visdiv"] == "string"  # pkgutil loop
    assert imports_of("experiment")["extraction.blocks"] == "import"                  # inside a function
    assert "models.base" not in imports_of("training.loop")                           # TYPE_CHECKING only


def test_only_config_reads_yaml_or_environment() -> None:
    offenders = []
    for path in MODULES:
        if _layer(_module_name(path)) == "config":
            continue
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, (ast.Import, ast.ImportFrom)) else []
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if "yaml" in names or module == "yaml" or "os.environ" in ast.unparse(node) and isinstance(node, ast.Attribute):
                offenders.append(str(path.relative_to(PACKAGE)))
    allowed = {"extraction/keras_backend.py", "elliot_launcher.py"}
    assert not [o for o in set(offenders) if o not in allowed], sorted(set(offenders))


def test_package_never_imports_external_adapter() -> None:
    for path in MODULES:
        text = path.read_text(encoding="utf-8")
        assert "from external" not in text and "import external" not in text, path
