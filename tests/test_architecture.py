"""The layering of DESIGN.md, enforced: arrows point down the pipeline only.

Imports under ``if TYPE_CHECKING:`` are annotations, not dependencies, and are ignored.
``config.schema`` holds plain typed objects that every layer receives, so it counts as foundation.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "elliot_visual"
FOUNDATION = {"registry", "storage", "config.schema", "config.errors"}

# layer -> layers (module prefixes under elliot_visual) it must never import at run time
FORBIDDEN = {
    "data": {"features", "extraction", "models", "training", "evaluation", "tuning", "reports",
             "experiment", "cli", "offline"},
    "features": {"models", "training", "evaluation", "tuning", "reports", "experiment", "cli"},
    "extraction": {"models", "training", "evaluation", "tuning", "reports", "experiment"},
    "models": {"evaluation", "tuning", "reports", "experiment", "cli", "training"},
    "training": {"evaluation", "tuning", "reports", "experiment", "cli"},
    "evaluation": {"training", "tuning", "reports", "experiment", "cli"},
    "tuning": {"reports", "experiment", "cli"},
    "reports": {"training", "tuning", "experiment", "cli", "models"},
    "registry": {"*"},
    "storage": {"*"},
}


def _runtime_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded.update(id(n) for child in node.body for n in ast.walk(child))
    found = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name[len("elliot_visual."):] for name in found if name.startswith("elliot_visual.")}


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_upstream_layers(path: Path) -> None:
    layer = _layer(path)
    forbidden = FORBIDDEN.get(layer, set())
    bad = []
    for name in _runtime_imports(path):
        if name in FOUNDATION or name.split(".")[0] == layer:
            continue
        if "*" in forbidden or name.split(".")[0] in forbidden:
            bad.append(name)
    assert not bad, f"{path.relative_to(PACKAGE)} ({layer}) must not import {sorted(bad)}"


def test_only_config_reads_yaml_or_environment() -> None:
    offenders = []
    for path in MODULES:
        if _layer(path) == "config":
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
