"""The one registry of codes (`service/codes.py`) against the source tree and the
docs: every code raised anywhere is registered, and docs/api.md's code table
says of each code what the registry says."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from service.codes import CODES, DECLARED, TYPE_BY_STATUS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "service", "api", "tasks")
# A verdict code written anywhere in the pipeline (rules, decode's limit errors).
VERDICT = re.compile(r"(image|face)\.[a-z_]+")
STATUS_ROW = re.compile(r"^\| (\d{3}) \| ([a-z_]+) \| ", re.MULTILINE)
EXAMPLE_ROW = re.compile(
    r"^\| `([a-z0-9_.]+)` \| \d{3} \| [a-z_]+ \| (?:yes|no) \| (.*) \|$", re.MULTILINE
)
TABLE_ROW = re.compile(r"^\| `([a-z0-9_.]+)` \| (\d{3}) \| ([a-z_]+) \| (yes|no) \|", re.MULTILINE)


def raised_codes(path: Path, *, verdicts: bool) -> set[str]:
    """String codes in `path`: `code=` arguments and fields, `code = ...` class
    attributes, `"code": ...` entries, and with `verdicts` (pipeline/, where codes
    are also passed by position) any `image.*` / `face.*` string."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        values: list[ast.expr] = []
        if isinstance(node, ast.keyword) and node.arg == "code":
            values = [node.value]
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "code" for t in targets) and node.value:
                values = [node.value]
        elif isinstance(node, ast.Dict):
            values = [
                v
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value == "code"
            ]
        elif verdicts and isinstance(node, ast.Constant) and isinstance(node.value, str):
            values = [node] if VERDICT.fullmatch(node.value) else []
        found.update(
            v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        )
    found.discard("")  # a field's default: no code yet
    return found


def test_each_code_is_declared_once() -> None:
    names = [code.name for code in DECLARED]
    assert len(names) == len(set(names))


def test_every_code_raised_in_the_source_is_registered() -> None:
    unregistered = {
        str(path.relative_to(ROOT)): sorted(
            raised_codes(path, verdicts=package == "pipeline") - set(CODES)
        )
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {path: codes for path, codes in unregistered.items() if codes} == {}


def test_the_scan_sees_every_kind_of_code(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text(
        "class E(Exception):\n    code = 'a.class_attr'\n"
        "RULE = Rule(code='a.keyword')\n"
        "ERROR = {'code': 'a.dict_entry'}\n"
        "limit_error('image.positional', 'not a code: image.jpeg')\n"
    )
    assert raised_codes(source, verdicts=True) == {
        "a.class_attr",
        "a.keyword",
        "a.dict_entry",
        "image.positional",
    }


def test_docs_code_table_matches_the_registry() -> None:
    table = TABLE_ROW.findall((ROOT / "docs" / "api.md").read_text())
    documented = {code: (int(status), kind, retry == "yes") for code, status, kind, retry in table}
    registered = {c.name: (c.status, c.type, c.retryable) for c in CODES.values()}
    assert documented == registered


def test_docs_code_table_shows_each_codes_example_as_the_registry_says_it() -> None:
    # A verdict's example is its rule's own sentence (service.codes.said): when a
    # rule's message or default limit changes, this says the docs must follow.
    rows = EXAMPLE_ROW.findall((ROOT / "docs" / "api.md").read_text())
    documented = {code: example.replace("\\|", "|") for code, example in rows}
    assert documented == {c.name: c.example for c in CODES.values()}


def test_docs_status_table_gives_each_status_its_type() -> None:
    table = STATUS_ROW.findall((ROOT / "docs" / "api.md").read_text())
    assert {int(status): kind for status, kind in table} == TYPE_BY_STATUS
