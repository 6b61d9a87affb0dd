"""/docs without the internet: Swagger UI's assets come from a package (fastapi-offline ships
Swagger UI 5, which renders the OpenAPI 3.1 document FastAPI writes), not from a CDN.

Only three files are served, by name; services/catalog.py routes GET /docs and GET /docs/{asset}.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from services.api.errors import not_found

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}


@lru_cache(maxsize=len(ASSETS))
def _asset(name: str) -> bytes:
    return resources.files("fastapi_offline").joinpath("static", name).read_bytes()


async def docs() -> HTMLResponse:
    # Relative URLs: the page works under any base path (API Gateway stage, a proxy prefix).
    return get_swagger_ui_html(
        openapi_url="openapi.json",
        title="Collections API",
        swagger_js_url="docs/swagger-ui-bundle.js",
        swagger_css_url="docs/swagger-ui.css",
        swagger_favicon_url="docs/favicon.png",
    )


async def docs_asset(asset: str) -> Response:
    if asset not in ASSETS:
        raise not_found("asset")
    # The bytes change only with the package version: let browsers keep them for a day.
    return Response(_asset(asset), media_type=ASSETS[asset], headers={"Cache-Control": "public, max-age=86400"})


def install(app: FastAPI) -> None:
    """On the app itself, like FastAPI's own /docs (not part of the OpenAPI document)."""
    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs/{asset}", docs_asset, methods=["GET"], include_in_schema=False)
