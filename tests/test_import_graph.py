"""The package's import graph has no cycles, and every module imports on its own.

The graph is read from the source with :mod:`ast`: an edge ``a -> b`` for every import of
``b`` that can run in ``a``, at module level or inside a function. An import moved into
a function to dodge a cycle still ties the two modules together (each needs the other
to work), so it counts; imports under ``if TYPE_CHECKING:`` only serve annotations and
do not. What a maintainer notices: a module that cannot be imported first, or a change
in one module that breaks another through a loop.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ROOT, python_env

PACKAGE = "sem_mem"


def modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package) for every module of the package."""
    found: dict[str, tuple[Path, bool]] = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """Every import statement that can run (not those under ``if TYPE_CHECKING:``)."""

    def __init__(self) -> None:
        self.found: list[ast.Import | ast.ImportFrom] = []

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append(node)


def _targets(
    module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]
) -> set[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join([*base, node.module] if node.module else base)
        else:
            prefix = node.module or ""
        # `from pkg import sub` imports the submodule; `from mod import name`, the module
        names = [f"{prefix}.{alias.name}" for alias in node.names]
    out: set[str] = set()
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (at module level or in a function)."""
    found = modules()
    known = set(found)
    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in found.items():
        visitor = _Imports()
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        graph[module] = set().union(
            *(_targets(module, is_package, node, known) for node in visitor.found)
        )
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_the_graph_is_read_from_the_source() -> None:
    graph = import_graph()
    assert {"sem_mem.errors", "sem_mem.config"} <= graph["sem_mem.core"]
    assert "sem_mem.server.factory" in graph["sem_mem.server"]  # a package's own imports
    assert "sem_mem.transfer" in graph["sem_mem.core"]  # an import inside a method counts
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert found == [], "modules that import each other: " + "; ".join(
        " <-> ".join(component) for component in found
    )


def _imports_alone(module: str) -> tuple[str, int, str]:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib, sys; importlib.import_module(sys.argv[1])",
            module,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=python_env(),
        cwd=ROOT,
    )
    return module, proc.returncode, proc.stderr[-2000:]


@pytest.mark.slow
def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """A cycle that works only in one import order fails here: each module is the first
    one imported, in an interpreter of its own (``__main__`` entry points excepted)."""
    names = sorted(m for m in modules() if not m.endswith("__main__"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        failed = [r for r in pool.map(_imports_alone, names) if r[1] != 0]
    assert failed == [], "\n".join(f"{m} (exit {code}):\n{err}" for m, code, err in failed)
