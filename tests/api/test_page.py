"""The try-it page and the docs as files: served, and self-contained (nothing from
another host, so they work offline and leak nothing). The page's behaviour in a
real browser is tests/browser's."""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.anyio

# Where a page makes the browser load something: attributes, CSS url() and @import,
# and the script's fetch() calls.
REFERENCES = re.compile(
    r"""(?:src|href|action)\s*=\s*["']([^"']*)["']|url\(\s*["']?([^"')]+)|@import\s+["']([^"']+)"""
    r"""|fetch\(\s*["'`]([^"'`]+)"""
)


def referenced(text: str) -> list[str]:
    return [next(g for g in match.groups() if g) for match in REFERENCES.finditer(text)]


async def test_the_page_and_docs_reference_no_other_host(anonymous: httpx.AsyncClient) -> None:
    seen: list[str] = []
    pending = ["/", "/docs", "/redoc"]
    visited: set[str] = set()
    while pending:
        path = pending.pop()
        if path in visited:
            continue
        visited.add(path)
        response = await anonymous.get(path)
        assert response.status_code == 200, path
        if not response.headers["content-type"].startswith(("text/html", "text/css")):
            continue
        for ref in referenced(response.text):
            seen.append(ref)
            assert not re.match(r"^(?:[a-z]+:)?//", ref, re.IGNORECASE), f"{path} loads {ref}"
            if ref.startswith("/") and not ref.startswith("/openapi"):
                pending.append(ref)
    assert {"/page/page.js", "/page/page.css", "/docs-assets/swagger-ui-bundle.js"} <= visited
    assert "/docs-assets/redoc.standalone.js" in visited
    # Swagger UI's validator badge would call validator.swagger.io: switched off.
    assert '"validatorUrl": null' in (await anonymous.get("/docs")).text


async def test_the_page_script_talks_only_to_this_api(anonymous: httpx.AsyncClient) -> None:
    script = (await anonymous.get("/page/page.js")).text
    calls = re.findall(r"""api\(\s*["']([^"']+)""", script)
    assert calls and all(call.startswith("/v1/") for call in calls)
    assert "innerHTML" not in script  # API strings are set as text, never as HTML
    page = await anonymous.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_unknown_page_files_are_404(anonymous: httpx.AsyncClient) -> None:
    for path in ("/page/index.html", "/page/../app.py", "/docs-assets/../../etc/passwd"):
        assert (await anonymous.get(path)).status_code == 404
