"""Dependencies point down: benchmark/'s modules import only their own layer or lower ones, with no cycle.

Read from the source with `ast` (nothing is imported), lazy imports inside functions included: a lazy import
still ties the two modules together.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: benchmark/'s units from the bottom up; a unit may import units of its own layer or lower ones.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("benchmark", "benchmark.errors", "benchmark.storage", "benchmark.io", "benchmark._format", "benchmark.paper",
     "benchmark.env"),
    ("benchmark.datasets",),
    ("benchmark.records",),
    ("benchmark.protocol", "benchmark.recipes", "benchmark.frameworks"),
    ("benchmark.normalization",),
    ("benchmark.contract", "benchmark.checks"),
    ("benchmark.evaluation",),
    ("benchmark.training", "benchmark.profiling"),
    ("benchmark.deploy",),  # the runtimes, timed by profiling's loop; reporting reads its summaries
    ("benchmark.reporting", "benchmark.preflight"),
    ("benchmark.cli",),
    ("benchmark.commands",),
)
LAYER_OF = {unit: level for level, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    """'benchmark/evaluation/metrics.py' -> 'benchmark.evaluation.metrics' (a package's __init__ is the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The modules of `modules` that the file imports (absolute or relative, at any depth of the code)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                       for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def unit_of(module: str) -> str | None:
    """The longest entry of LAYERS that `module` is or lies under."""
    matches = [u for u in LAYER_OF if module == u or module.startswith(u + ".")]
    return max(matches, key=len) if matches else None


def import_graph() -> dict[str, set[str]]:
    paths = sorted((ROOT / "benchmark").rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported_modules(p, modules) for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_every_module_has_a_layer(graph):
    unplaced = sorted(m for m in graph if unit_of(m) is None)
    assert not unplaced, f"add these modules to LAYERS in {Path(__file__).name}: {unplaced}"


def test_no_module_imports_a_higher_layer(graph):
    upward = [f"{a} -> {b}" for a, targets in sorted(graph.items()) for b in sorted(targets)
              if LAYER_OF[unit_of(a)] < LAYER_OF[unit_of(b)]]
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def test_no_import_cycle_between_modules_or_units(graph):
    units: dict[str, set[str]] = {}
    for a, targets in graph.items():
        units.setdefault(unit_of(a), set()).update(unit_of(b) for b in targets if unit_of(b) != unit_of(a))
    assert cycles(graph) == []
    assert cycles(units) == []


def test_models_do_not_import_benchmark():
    importers = [p.name for p in sorted((ROOT / "models").rglob("*.py"))
                 if any(m == "benchmark" or m.startswith("benchmark.") for m in _absolute_imports(p))]
    assert not importers, f"models/ must not depend on benchmark/ (benchmark uses models): {importers}"


def _absolute_imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module)
    return out


def test_the_checks_see_a_cycle_and_an_upward_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert LAYER_OF[unit_of("benchmark.evaluation.metrics")] < LAYER_OF[unit_of("benchmark.reporting.load")]
    assert unit_of("benchmark.datasets.layout") == "benchmark.datasets" and unit_of("benchmark.recipes") == \
        "benchmark.recipes"
