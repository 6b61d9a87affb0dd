"""Lambda entry point: API Gateway HTTP API (payload 2.0) → Mangum → the FastAPI app.

Kept light at import: no anthropic, voyageai or Pillow (the Voyage client loads on first
search), no boto3 until a route needs S3 or EventBridge, no PyJWT until the first token is verified.
"""

from __future__ import annotations

from mangum import Mangum

from services.api.app import create_app

app = create_app()
# lifespan off: the app keeps no startup state; engines and clients are created on first use.
handler = Mangum(app, lifespan="off")
