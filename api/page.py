"""The try-it page at `/`: plain HTML, CSS and a small script (no build step, no
other host), for people who would rather try a photo than read the API.

It talks to this API like any client: the key a person pastes (kept in the tab's
session storage, never in a URL), `upload-face` with `wait`, `links` for the
images, and the avatar list and delete."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

ASSETS = Path(__file__).parent / "page_assets"
FILES = {
    "index.html": "text/html; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
    "page.js": "text/javascript; charset=utf-8",
}
# The page's own rules for what it may load: only this origin (and blob: for the
# photo preview), so a script injected into a verdict string could not run.
CSP = (
    "default-src 'self'; img-src 'self' blob: data: http: https:; script-src 'self'; "
    "style-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/")
async def page() -> FileResponse:
    return _file("index.html")


@router.get("/page/{name}")
async def page_asset(name: str) -> FileResponse:
    if name not in FILES or name == "index.html":
        raise HTTPException(404)
    return _file(name)


def _file(name: str) -> FileResponse:
    # `no-cache`: revalidated on every load, so a new release is seen at once.
    headers = {"Cache-Control": "no-cache", "Content-Security-Policy": CSP}
    return FileResponse(ASSETS / name, media_type=FILES[name], headers=headers)
