"""Lambda entry point: API Gateway HTTP API (payload 2.0) → Mangum → the FastAPI app.

Init (this module's import) loads what the first request needs and nothing else:
- not anthropic, voyageai or Pillow (the Voyage client loads on first search), never boto3 (clients
  come from botocore: services/core/aws.py), no EventBridge client (uploads and retries make it);
- but what every first request of a user pays: the database driver (services/core/database.py imports
  it with itself, through deps; SQLAlchemy alone would import it only when the first request makes the
  engine); token verification, which both auth modes do (PyJWT,
  cryptography's RSA, urllib.request for the JWKS fetch); the S3 client (botocore, its models and
  endpoint rules: listing items signs thumbnail URLs); and the request path itself, primed with one
  request for a path no route serves (404: no database, no token): Mangum, the event loop,
  Starlette's routing and error handling. With SnapStart (or provisioned concurrency) all of that
  is done before any user waits; on a plain cold start the total is the same, moved into init.
SnapStart's restore hooks (services/core/snapstart.py) renew connections, credentials and
randomness in each restored copy.
"""

from __future__ import annotations

from services.core.observability import for_function

# First, before any import reads a setting (services/core/models.py sizes its vector column at import): on
# Lambda the settings are then the api's own class (services/core/settings.py get_settings). And before the
# heavy imports: on an on-demand cold start it pauses the garbage collector (services/core/coldstart.py).
observe = for_function("api")

from mangum import Mangum  # noqa: E402

from services.api import deps  # noqa: E402
from services.api.app import create_app  # noqa: E402
from services.core import snapstart  # noqa: E402

app = create_app()
# lifespan off: the app keeps no startup state; engines and clients are created on first use.
handler = observe.handler(Mangum(app, lifespan="off"))

_PROBE_EVENT = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/_init_probe",
    "rawQueryString": "",
    "headers": {"host": "init.invalid"},
    "requestContext": {
        "http": {"method": "GET", "path": "/_init_probe", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
        "routeKey": "$default",
        "stage": "$default",
    },
    "isBase64Encoded": False,
}


def _prime() -> None:
    import urllib.request  # noqa: F401  (the JWKS fetch: http.client, email, ssl)

    import jwt.algorithms  # noqa: F401  (PyJWT and cryptography's RSA: ~70 ms on the first token otherwise)

    from services.core import aws

    aws.client("s3")  # no I/O: botocore's models and endpoint rules, loaded once (and kept across restores)

    # Not /health: that asks the database, and a database outage must give 503s, not failed inits. The probe is
    # the process's first invocation: when it ends, observe.handler resumes the collector (services/core/coldstart.py).
    response = handler(_PROBE_EVENT, None)
    if response["statusCode"] != 404:  # a broken app fails its init, not its first user
        raise RuntimeError(f"the init probe answered {response['statusCode']}: {response.get('body')}")


@snapstart.after_restore
def _forget_storage() -> None:
    """The Storage and URL signer hold a boto3 client made before the snapshot."""
    deps._storage = None


_prime()
