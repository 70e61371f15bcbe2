"""The layer order of the package: imports go one way, and no module imports itself through a cycle.

Every ``import`` inside ``skminer`` (module level *and* inside functions: a function-level import is still a
dependency) is read from the source with :mod:`ast`. A module may import its own component and anything in a
lower layer, never a higher one, and the module graph has no cycles. Imports under ``if TYPE_CHECKING:`` are
annotations only and do not count. A new top-level module or package must be
placed in :data:`LAYERS` (the order is documented in docs/architecture.md).
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1] / "skminer"

#: Layer of each top-level component of skminer (lower imports nothing higher).
LAYERS: dict[str, int] = {
    "_atomic": 0, "_metadata": 0, "_arrays": 0, "_random": 0, "_yaml": 0, "_run_folder": 0, "threads": 0,
    "_scalars": 0,  # scalar argument checks (bools refused)
    "_warnings": 0,  # warnings attributed to the user's line, recorded in worker threads
    "parameters": 0,
    "methods": 0,
    "morphing": 1,
    "io": 2,
    "events": 3, "closure": 3,  # morphing closure and positivity checks of an EventSet
    "simulation": 4, "augmentation": 4,
    "estimators": 5,
    "pipeline": 6,
    "inference": 7,
    "metrics": 8, "plotting": 8, "io.pyhf": 8,  # pyhf export: HistFactory workspaces of inference results
    "_config_schema": 9, "config": 9, "analysis": 9,
    "cli": 10,
    "__main__": 11,
}

#: Known upward imports, each with its reason (to be removed, not extended): module -> imported module.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _runtime_nodes(tree: ast.AST):
    """All nodes except those under ``if TYPE_CHECKING:`` (annotations only, no runtime dependency)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in ast.iter_child_nodes(node) if not _is_type_checking(child))


def _imports(path: Path) -> set[str]:
    """Absolute names of the skminer modules ``path`` imports (``from . import x`` resolved to ``pkg.x``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "skminer")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "skminer":
                target = node.module
            else:
                continue
            found.add(target)
            for alias in node.names:  # "from . import estimators" imports a module
                candidate = f"{target}.{alias.name}"
                if (ROOT.parent / Path(*candidate.split("."))).with_suffix(".py").is_file() or \
                        (ROOT.parent / Path(*candidate.split(".")) / "__init__.py").is_file():
                    found.add(candidate)
    return found


def _component(module: str) -> str | None:
    """The key of :data:`LAYERS` for ``module``: ``package.module`` when listed (a module placed apart from its
    package), else the top-level component; None for the skminer package itself."""
    parts = module.split(".")
    if len(parts) > 2 and f"{parts[1]}.{parts[2]}" in LAYERS:
        return f"{parts[1]}.{parts[2]}"
    return parts[1] if len(parts) > 1 else None


GRAPH = {_module_name(p): _imports(p) for p in sorted(ROOT.rglob("*.py"))}


def test_every_component_has_a_layer():
    unknown = sorted({c for m in GRAPH if (c := _component(m)) is not None and c not in LAYERS})
    assert not unknown, f"place {unknown} in tests/test_layers.py LAYERS (and docs/architecture.md 'Layers')"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _component(m) is not None))
def test_imports_follow_the_layer_order(module):
    layer = LAYERS.get(_component(module), 99)
    upward = sorted(t for t in GRAPH[module] if (c := _component(t)) is not None and c != _component(module)
                    and LAYERS.get(c, 99) > layer and (module, t) not in EXCEPTIONS)
    assert not upward, f"{module} (layer {layer}) imports higher layers: {upward}"


def test_no_import_cycles():
    graph = nx.DiGraph()
    for module, targets in GRAPH.items():
        for target in targets:
            if target != module and target in GRAPH and _component(target) is not None \
                    and (module, target) not in EXCEPTIONS:
                graph.add_edge(module, target)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_the_layer_check_sees_function_level_imports():
    # analysis imports inference only inside methods; the graph must still see it
    assert "skminer.inference" in GRAPH["skminer.analysis"]
    # the cycle this guards against: persistence reads the method table, Ensemble registers itself
    assert "skminer.estimators.ensemble" not in GRAPH["skminer.estimators.persistence"]
    assert "skminer.estimators.persistence" in GRAPH["skminer.estimators.ensemble"]
