"""The layering of README's architecture map, checked on the imports themselves:
the policy is sans-IO, and imports point downward only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aiocache_http"

# What each layer may import from the package (besides itself) and from outside.
LAYERS = {
    "models": ({"models"}, {"multidict"}),
    "policy": ({"models", "policy"}, {"multidict"}),
    "serializers": ({"models", "serializers"}, {"multidict", "itsdangerous"}),
}
HTTP_LIBRARIES = {"aiohttp", "requests", "yarl"}


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(package subpackages/modules imported, top-level external modules imported)."""
    internal: set[str] = set()
    external: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                parts = path.relative_to(PACKAGE).parent.parts
                base = list(parts[: len(parts) - (node.level - 1)])
                target = [*base, *(node.module or "").split(".")] if node.module else base
                internal.add(target[0] if target else "")
            elif node.module and node.module.split(".")[0] == "aiocache_http":
                internal.add(node.module.split(".")[1] if "." in node.module else "")
            elif node.module:
                external.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                external.add(alias.name.split(".")[0])
    return internal, external


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_lower_layers_import_only_downward_and_no_http_library(layer: str) -> None:
    allowed_internal, allowed_external = LAYERS[layer]
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files
    for path in files:
        internal, external = imports(path)
        assert internal <= allowed_internal, f"{path.name} imports {internal - allowed_internal}"
        third_party = external - set(sys.stdlib_module_names) - {"__future__"}
        assert third_party <= allowed_external, f"{path.name} imports {third_party}"
        assert not external & HTTP_LIBRARIES


def test_backends_know_nothing_of_sessions_or_http_libraries() -> None:
    for path in sorted((PACKAGE / "backends").glob("*.py")):
        internal, external = imports(path)
        assert not internal & {"session", "driver", "response", "sync"}, path.name
        assert not external & HTTP_LIBRARIES, path.name


def test_driver_is_shared_and_library_neutral() -> None:
    internal, external = imports(PACKAGE / "driver.py")
    assert not external & HTTP_LIBRARIES
    assert not internal & {"session", "response", "sync"}

