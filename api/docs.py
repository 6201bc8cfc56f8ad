"""`/docs` (Swagger UI) and `/redoc` with their scripts and styles served by this
app from the `fastapi-offline` package, not a CDN: the docs work on a machine
without internet, and no page the app serves loads anything from another host."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

ASSETS = Path(fastapi_offline.__file__).parent / "static"
# The files the two pages load, by the name they are served under, and their type.
FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
PREFIX = "/docs-assets"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="avatar-prep API",
        swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{PREFIX}/favicon.png",
        # Its validator badge would send the spec to validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return get_redoc_html(
        openapi_url="/openapi.json",
        title="avatar-prep API",
        redoc_js_url=f"{PREFIX}/redoc.standalone.js",
        redoc_favicon_url=f"{PREFIX}/favicon.png",
        with_google_fonts=False,
    )


@router.get(PREFIX + "/{name}")
async def asset(name: str) -> FileResponse:
    if name not in FILES:
        raise HTTPException(404)
    # The files change only with the package version: let browsers keep them a day.
    return FileResponse(
        ASSETS / name, media_type=FILES[name], headers={"Cache-Control": "public, max-age=86400"}
    )
