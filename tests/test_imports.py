"""No import cycles among the modules of dpq and dpq_admin (DESIGN.md, "Layout").

The graph is read from the source with ``ast``, without importing anything: an edge for
each import that runs when a module loads (module level, class bodies, ``try`` and ``if``
blocks), none for imports inside functions or under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dpq", "dpq_admin")

Graph = dict[str, set[str]]


def module_files() -> dict[str, Path]:
    """Every module of PACKAGES by dotted name (a package by its own name)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def load_time_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements among ``body`` that run when the module is imported."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue  # runs when called, after every module has loaded
        elif isinstance(node, ast.If) and is_type_checking(node.test):
            yield from load_time_imports(node.orelse)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from load_time_imports([child])
                elif isinstance(child, ast.ExceptHandler):
                    yield from load_time_imports(child.body)


def imported_modules(
    name: str, path: Path, node: ast.Import | ast.ImportFrom, known: set[str]
) -> set[str]:
    """The modules of PACKAGES that one import statement loads."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & known
    if node.level:
        # Relative: from the module's package, one level up per extra dot.
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    # "from dpq import sql" loads the module dpq.sql; "from dpq.models import Job", dpq.models.
    targets = {f"{base}.{alias.name}" for alias in node.names} & known
    return targets or ({base} & known)


def import_graph() -> Graph:
    modules = module_files()
    known = set(modules)
    graph: Graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = set()
        for node in load_time_imports(tree.body):
            graph[name] |= imported_modules(name, path, node, known) - {name}
    return graph


def cycle_through(graph: Graph, start: str) -> list[str] | None:
    """The shortest chain of imports from ``start`` back to itself, if there is one."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph[node]):
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if target not in came_from:
                came_from[target] = node
                queue.append(target)
    return None


def find_cycles(graph: Graph) -> list[list[str]]:
    """A shortest cycle through each module on one, skipping modules already named."""
    cycles: list[list[str]] = []
    for module in sorted(graph):
        if any(module in cycle for cycle in cycles):
            continue
        if cycle := cycle_through(graph, module):
            cycles.append(cycle)
    return cycles


def describe(cycles: list[list[str]]) -> str:
    return (
        "import cycles (break each by moving what both sides need into a third module):\n"
        + ("\n".join("  " + " -> ".join(cycle) for cycle in cycles))
    )


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def test_import_graph_sees_the_dashboards_imports():
    graph = import_graph()

    assert {"dpq_admin.actions", "dpq_admin.views", "dpq_admin.links"} <= graph[
        "dpq_admin.admin"
    ]
    assert "dpq.models" in graph["dpq_admin.views"]
    # links.py names JobAdmin in its hints only (under TYPE_CHECKING): not an edge.
    assert "dpq_admin.admin" not in graph["dpq_admin.links"]


def test_find_cycles_names_the_modules_of_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

    assert find_cycles(graph) == [["a", "b", "c", "a"]]


def test_dpq_admin_modules_import_no_cycle():
    cycles = [
        cycle
        for cycle in find_cycles(import_graph())
        if any(in_package(module, "dpq_admin") for module in cycle)
    ]

    assert not cycles, describe(cycles)


def test_dpq_modules_import_no_cycle():
    cycles = [
        cycle
        for cycle in find_cycles(import_graph())
        if all(in_package(module, "dpq") for module in cycle)
    ]

    assert not cycles, describe(cycles)
