"""Dependencies point one way: harness -> cli/api -> tasks -> service -> pipeline.

Checked from the source text (every import statement, including ones inside
functions), so a violation fails here rather than being noticed in review:
each package imports only the packages below it, no module reaches its own
import graph again (a cycle, even through function-level imports), the
product's commands reach the harness only inside the bench commands' functions,
and the broker's library stays in tasks/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What each top-level package may import from the project's own packages.
ALLOWED: dict[str, set[str]] = {
    "sample_images": {"sample_images"},
    "pipeline": {"pipeline"},
    "service": {"service", "pipeline"},
    "tasks": {"tasks", "service", "pipeline"},
    "api": {"api", "tasks", "service", "pipeline"},
    "cli": {"cli", "api", "tasks", "service", "pipeline", "sample_images"},
    "harness": {"harness", "cli", "api", "tasks", "service", "pipeline", "sample_images"},
}

# Imports allowed only inside a function body: the bench commands start the
# benchmark library when they run, so the product's command line never loads it.
LAZY: dict[str, set[str]] = {"cli": {"harness"}}


def _imports(tree: ast.AST) -> list[tuple[str, bool]]:
    """(module named, whether at module level) for every absolute import in `tree`;
    `from a import b` names `a.b` when that is a module of ours, else `a`."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                for alias in child.names:
                    name = f"{child.module}.{alias.name}"
                    found.append((name if module_path(name) else child.module, top))
            visit(child, inner)

    visit(tree, True)
    return found


def module_path(name: str) -> Path | None:
    """The source file of project module `name`, or None when it is not one of ours."""
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file() and name.split(".")[0] in ALLOWED:
            return path
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_project_packages(path: Path) -> set[str]:
    """Top-level project package names imported anywhere in `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return {n.split(".")[0] for n, _ in _imports(tree) if n.split(".")[0] in ALLOWED}


def project_modules() -> dict[str, Path]:
    return {
        module_name(f): f for package in ALLOWED for f in sorted((ROOT / package).rglob("*.py"))
    }


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in it)."""
    return {
        name: {
            n
            for n, _ in _imports(ast.parse(path.read_text(), filename=str(path)))
            if module_path(n) is not None and n != name
        }
        for name, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_downwards(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no Python files"
    violations = {
        str(f.relative_to(ROOT)): sorted(
            imported_project_packages(f) - ALLOWED[package] - LAZY.get(package, set())
        )
        for f in files
    }
    assert {f: v for f, v in violations.items() if v} == {}


def test_no_module_imports_itself_back() -> None:
    assert cycles(import_graph(project_modules())) == []


def test_lazy_packages_are_imported_only_inside_functions() -> None:
    eager = {}
    for package, lazy in LAZY.items():
        for f in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(f.read_text(), filename=str(f))
            names = sorted(n for n, top in _imports(tree) if top and n.split(".")[0] in lazy)
            if names:
                eager[str(f.relative_to(ROOT))] = names
    assert eager == {}


def test_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from service import settings\n    import api.app\n")
    assert imported_project_packages(bad) == {"service", "api"}


def test_cycle_finder_sees_a_cycle_through_three_modules() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# Third-party packages only one layer may import: the broker belongs to tasks/.
CONFINED = {"celery": "tasks", "kombu": "tasks"}


def imported_top_levels(path: Path) -> set[str]:
    """Top-level names of every module `path` imports (anywhere in it)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_broker_is_imported_only_by_tasks() -> None:
    leaks = {
        str(f.relative_to(ROOT)): sorted(
            name for name in imported_top_levels(f) & set(CONFINED) if CONFINED[name] != package
        )
        for package in ALLOWED
        for f in sorted((ROOT / package).rglob("*.py"))
    }
    assert {f: names for f, names in leaks.items() if names} == {}
