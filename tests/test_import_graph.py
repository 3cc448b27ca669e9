"""The package's imports form no circle, and the checkpoint package imports no model.

Every module of ``mnist_lightning`` is parsed (not imported) and each ``import`` of a ``mnist_lightning`` module
becomes an edge, wherever it stands: a function-local import that closes a circle is a circle too. Imports under
``if TYPE_CHECKING:`` never run and are left out; so is the implicit import of a module's parent package.
"""

from __future__ import annotations

import ast
import itertools
import pkgutil
from pathlib import Path

import pytest

import mnist_lightning

PACKAGE = "mnist_lightning"


def package_modules() -> dict[str, Path]:
    """Every module of the package by dotted name, with its source file."""
    root = Path(mnist_lightning.__file__).parent
    modules = {PACKAGE: root / "__init__.py"}
    for info in pkgutil.walk_packages([str(root)], prefix=f"{PACKAGE}."):
        relative = Path(*info.name.split(".")[1:])
        modules[info.name] = root / relative / "__init__.py" if info.ispkg else root / relative.with_suffix(".py")
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(module: str, path: Path) -> list[tuple[str, int]]:
    """``(dotted name, line)`` of every import in the module, relative ones resolved, TYPE_CHECKING ones left out.

    For ``from a.b import c`` both ``a.b.c`` (if it is a module) and ``a.b`` are candidates; :func:`edges` keeps
    the ones that are modules of the package.
    """
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                anchor = parts if is_package else parts[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append((base, node.lineno))
            found.extend((f"{base}.{alias.name}", node.lineno) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def edges() -> dict[str, dict[str, int]]:
    """module -> {imported package module: line of the import}."""
    modules = package_modules()
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for name, path in modules.items():
        for target, line in imported_names(name, path):
            while target and target not in modules:  # `import a.b.c` where only a.b is ours: keep the longest
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith(PACKAGE):
                graph[name].setdefault(target, line)
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.mark.unit
def test_the_graph_sees_the_package() -> None:
    graph = edges()
    assert "mnist_lightning.models.classifier" in graph
    assert "mnist_lightning.checkpoint" in graph["mnist_lightning.models.classifier"]
    assert "mnist_lightning.checkpoint.build" in graph["mnist_lightning.checkpoint"]


@pytest.mark.unit
def test_find_cycle_names_a_circle() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}}) is None


@pytest.mark.unit
def test_function_local_imports_count(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from mnist_lightning.cli import main\n"
        "def f():\n    from mnist_lightning.models import LitLogReg\n"
    )
    names = [name for name, _ in imported_names("mnist_lightning.x", source)]
    assert "mnist_lightning.models" in names
    assert "mnist_lightning.cli" not in names


@pytest.mark.unit
def test_no_import_circle() -> None:
    graph = edges()
    cycle = find_cycle(graph)
    if cycle:
        steps = [f"{a} (line {graph[a][b]}) -> {b}" for a, b in itertools.pairwise(cycle)]
        pytest.fail("import circle: " + "; ".join(steps))


@pytest.mark.unit
def test_the_checkpoint_package_imports_no_model() -> None:
    graph = edges()
    for module, targets in graph.items():
        if module == "mnist_lightning.checkpoint" or module.startswith("mnist_lightning.checkpoint."):
            models = [t for t in targets if t == "mnist_lightning.models" or t.startswith("mnist_lightning.models.")]
            assert not models, f"{module} imports {models}: pass model classes in an Allowlist instead"
