"""Dependencies point one way: cli/api -> tasks -> service -> pipeline.

Checked from the source text (every import statement, including ones inside
functions), so a violation fails here rather than being noticed in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What each top-level package may import from the project's own packages.
ALLOWED: dict[str, set[str]] = {
    "pipeline": {"pipeline"},
    "service": {"service", "pipeline"},
    "tasks": {"tasks", "service", "pipeline"},
    "api": {"api", "tasks", "service", "pipeline"},
    "cli": {"cli", "api", "tasks", "service", "pipeline"},
}


def imported_project_packages(path: Path) -> set[str]:
    """Top-level project package names imported anywhere in `path`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(n.split(".")[0] for n in names if n.split(".")[0] in ALLOWED)
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_downwards(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no Python files"
    violations = {
        str(f.relative_to(ROOT)): sorted(imported_project_packages(f) - ALLOWED[package])
        for f in files
    }
    assert {f: v for f, v in violations.items() if v} == {}


def test_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from service import settings\n    import api.app\n")
    assert imported_project_packages(bad) == {"service", "api"}


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
