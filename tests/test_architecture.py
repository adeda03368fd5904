"""The package layout holds: dependencies point down the layers, no import circles, no file
of product code past about 600 lines, and the exporter never imports the simulator.

The layers (docs/architecture.md): core <- history, config <- exporter, reports <- cli, with
the sandbox beside them for the demo, tests and benchmarks.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "drwatch"
MAX_LINES = 620  # "about 600"

# What each layer may import, besides itself.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "history": {"core"},
    "config": {"core"},
    "exporter": {"core", "config", "history"},
    "reports": {"core", "config", "history"},
    "sandbox": {"core", "config", "history", "exporter"},
    "cli": {"core", "config", "history", "exporter", "reports", "sandbox"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def resolve(module: str) -> str:
    """`drwatch.a.b.name` -> the module that defines it (`drwatch.a.b` when `name` is not a
    module of its own)."""
    candidate = ROOT.joinpath(*module.split("."))
    if candidate.with_suffix(".py").exists() or (candidate / "__init__.py").exists():
        return module
    return module.rpartition(".")[0]


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, *, runtime_only: bool) -> Iterator[str]:
    """The drwatch modules `path` imports (anywhere in the file, lazy imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and is_type_checking(node):
                skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module_name(path if path.name == "__init__.py" else path.parent)
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "drwatch" or name.startswith("drwatch."):
                yield resolve(name)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_product_module_is_in_a_layer() -> None:
    top = {module_name(p) for p in PACKAGE.glob("*.py")}
    assert top == {"drwatch", "drwatch.__main__"}
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(
        ALLOWED
    )


@pytest.mark.parametrize("path", product_files(), ids=lambda p: module_name(p))
def test_imports_point_down_the_layers(path: Path) -> None:
    own = layer(module_name(path))
    allowed = ALLOWED.get(own, set(ALLOWED)) | {own, ""}
    wrong = sorted({m for m in imports(path, runtime_only=False) if layer(m) not in allowed})
    assert not wrong, f"{module_name(path)} ({own or 'top level'}) imports {wrong}"


def test_no_import_circles() -> None:
    graph = {
        module_name(p): {m for m in imports(p, runtime_only=True) if m != module_name(p)}
        for p in product_files()
    }
    circles = [sorted(c) for c in strongly_connected(graph) if len(c) > 1]
    assert not circles, f"import circles: {circles}"


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iteratively (no recursion limit on long chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                found.append(component)
    return found


def test_the_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [c for c in strongly_connected(graph) if len(c) > 1] == [{"a", "b", "c"}]


def test_the_layer_check_sees_a_lazy_upward_import(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from drwatch.reports.render import render_html\n")
    assert list(imports(source, runtime_only=False)) == ["drwatch.reports.render"]


@pytest.mark.parametrize("path", product_files(), ids=lambda p: module_name(p))
def test_no_product_file_is_much_longer_than_600_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module_name(path)} has {lines} lines"


@pytest.mark.parametrize(
    "module", ["drwatch.cli.main", "drwatch.exporter.service", "drwatch.reports.compliance"]
)
def test_the_runtime_path_never_imports_the_simulator(module: str) -> None:
    probe = (
        f"import sys, {module}; print(sorted(m for m in sys.modules"
        " if m.split('.')[0] == 'moto' or m.startswith('drwatch.sandbox')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
