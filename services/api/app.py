"""The FastAPI application: routers, error handlers, OpenAPI at /openapi.json and docs at /docs.

The same app serves Lambda (services.api.handler, through Mangum) and `make dev` (uvicorn).
"""

from __future__ import annotations

from fastapi import FastAPI

from services.api import errors
from services.api.routes import docs, health, items, search, uploads

DESCRIPTION = """Your image collection: upload images, then list, search and manage them.

Every route but /health, /openapi.json and /docs needs a Cognito **access token**
(`Authorization: Bearer <token>`). Errors are JSON: `{"error": {"code": ..., "message": ...}}`.
"""


def create_app() -> FastAPI:
    app = FastAPI(
        title="Collections API",
        version="1.0.0",
        description=DESCRIPTION,
        # Only what services/catalog.py routes through API Gateway; /docs is ours (offline assets).
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    errors.install(app)
    docs.install(app)
    for module in (health, uploads, items, search):
        app.include_router(module.router)
    return app
