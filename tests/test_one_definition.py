"""Each fact is written once: an avatar status only in `service/status.py`, an
aspect ratio only in `pipeline/aspect.py`. Everything else names the enum member.

Checked on the source text (every string constant of every module), so a new
`"ready"` or `"4:3"` in a product module fails here rather than drifting.
"""

from __future__ import annotations

import ast
from pathlib import Path

from pipeline.aspect import AspectRatio
from service.status import AvatarStatus

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "service", "tasks", "api", "cli", "harness")

# Where each kind of literal is declared.
HOMES = {
    "status": "service/status.py",
    "aspect ratio": "pipeline/aspect.py",
}

# Literals that are allowed where they stand, and why.
ALLOWED: dict[tuple[str, str], str] = {
    # The same words with other meanings.
    ("api/schemas.py", "ready"): "/readyz's own status, not an avatar's",
    ("cli/prepare_cmd.py", "failed"): "the label of a failed check",
}


def literals(path: Path) -> set[str]:
    """Every string constant in `path` (docstrings and f-string parts included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def strays(kind: str, values: set[str]) -> list[tuple[str, str]]:
    """(module, literal) pairs of `values` outside their home and the allowed list."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = str(path.relative_to(ROOT))
            if module == HOMES[kind]:
                continue
            found += [
                (module, value)
                for value in sorted(literals(path) & values)
                if (module, value) not in ALLOWED
            ]
    return found


def test_status_literals_only_in_their_module() -> None:
    assert strays("status", {s.value for s in AvatarStatus}) == []


def test_aspect_ratio_literals_only_in_their_module() -> None:
    assert strays("aspect ratio", {r.value for r in AspectRatio}) == []


def test_the_check_sees_a_literal(tmp_path: Path) -> None:
    stray = tmp_path / "stray.py"
    stray.write_text('def f(row):\n    return row.status == "ready" or row.ratio in ("4:3",)\n')
    assert literals(stray) & {"ready", "4:3"} == {"ready", "4:3"}


def test_every_allowance_is_still_needed() -> None:
    stale = [(m, v) for m, v in ALLOWED if v not in literals(ROOT / m)]
    assert stale == []
