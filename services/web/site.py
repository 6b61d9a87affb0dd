"""What serving the web app takes, in one place for the dev server and the Pulumi program.

- the app's files and their content types (an unknown suffix is an error, not a guess);
- config.json, the app's only knowledge of where the API and Cognito are;
- the security headers (CSP allowing only the origins the app talks to, nosniff, frame denial,
  HSTS on HTTPS) that CloudFront's response headers policy sets on AWS and the dev server locally;
- the bucket's CORS rules for the browser's presigned POSTs and thumbnail GETs (moto's bucket and
  the real one get the same rules).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

APP_DIR = Path(__file__).resolve().parent / "app"
CONFIG_FILE = "config.json"
INDEX_FILE = "index.html"

CONTENT_TYPES: Mapping[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
# What the API accepts for uploads (issue 10 narrows POST /uploads to exactly these). The app refuses
# anything else before sending it.
UPLOAD_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "image/webp", "image/gif")

# Security headers. CloudFront's ResponseHeadersPolicy (infra/components/web.py) is built from the
# same values; the dev server sends them as they are.
HSTS_MAX_AGE_S = 2 * 365 * 24 * 3600
REFERRER_POLICY = "no-referrer"  # presigned URLs and tokens never leak through a Referer
FRAME_OPTIONS = "DENY"


class UnknownFileType(ValueError):
    pass


def content_type(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    try:
        return CONTENT_TYPES[suffix]
    except KeyError:
        raise UnknownFileType(
            f"{path}: no content type known for {suffix or 'files without a suffix'!r}; add it to CONTENT_TYPES"
        ) from None


def app_files(root: Path = APP_DIR) -> dict[str, Path]:
    """Every file of the app by its URL path relative to the site root (e.g. `js/main.js`)."""
    files = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}
    for name in files:
        content_type(name)  # fail now, not with a wrong header in a browser
    if INDEX_FILE not in files:
        raise FileNotFoundError(f"{root / INDEX_FILE} is missing")
    if CONFIG_FILE in files:
        raise ValueError(f"{root / CONFIG_FILE} must not exist: config.json is generated per environment")
    return files


def origin(url: str) -> str:
    """scheme://host[:port] of a URL."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"{url!r} is not an absolute URL")
    return f"{parts.scheme}://{parts.netloc}"


# --- config.json ---------------------------------------------------------------------------------
def local_auth(*, endpoint: str, region: str, client_id: str, demo_user: str | None, demo_password: str | None) -> dict:
    """Sign-in against the dev user pool on moto: InitiateAuth (USER_PASSWORD_AUTH) from the browser,
    with the demo user preset so opening the app signs in at once."""
    auth: dict[str, Any] = {"mode": "local", "endpoint": endpoint, "region": region, "clientId": client_id}
    if demo_user and demo_password:
        auth["demoUser"] = {"username": demo_user, "password": demo_password}
    return auth


def hosted_auth(*, domain_url: str, client_id: str) -> dict:
    """Sign-in through the user pool's hosted UI: authorization code with PKCE, no client secret."""
    return {"mode": "hosted", "domain": domain_url, "clientId": client_id}


def app_config(*, api_url: str, auth: Mapping[str, Any], max_upload_bytes: int, categories: Iterable[str]) -> dict:
    return {
        "apiUrl": api_url.rstrip("/"),
        "auth": dict(auth),
        "maxUploadBytes": max_upload_bytes,
        "uploadTypes": list(UPLOAD_TYPES),
        "categories": list(categories),
    }


# --- headers and CORS ----------------------------------------------------------------------------
def content_security_policy(
    *, api_origins: Iterable[str], storage_origins: Iterable[str], auth_origins: Iterable[str]
) -> str:
    """Only what the app uses: its own files, the API, the bucket (uploads by presigned POST,
    thumbnails and originals by presigned GET), Cognito; blob: for previews of files being uploaded."""
    api, storage, auth = sorted(set(api_origins)), sorted(set(storage_origins)), sorted(set(auth_origins))
    directives = [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src " + " ".join(["'self'", "blob:", *storage]),
        "connect-src " + " ".join(dict.fromkeys(["'self'", *api, *storage, *auth])),
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ]
    return "; ".join(directives)


def security_headers(csp: str, *, https: bool) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": FRAME_OPTIONS,
        "Referrer-Policy": REFERRER_POLICY,
    }
    if https:  # browsers ignore HSTS over plain HTTP
        headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE_S}; includeSubDomains"
    return headers


def bucket_cors_rules(origins: Iterable[str]) -> list[dict[str, Any]]:
    """S3 CORS rules (PutBucketCors shape) for browsers: presigned POST uploads and presigned GETs."""
    allowed = list(dict.fromkeys(origins))
    if not allowed:
        raise ValueError("at least one allowed origin is needed")
    return [{
        "AllowedMethods": ["POST", "GET"],
        "AllowedOrigins": allowed,
        "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 3600,
    }]


def storage_origins_on_aws(bucket: str, region: str) -> list[str]:
    """The origins boto3 puts in presigned URLs for this bucket on AWS: virtual-hosted style, global
    and regional host names (tests/infra/test_web.py checks them against botocore itself)."""
    return [f"https://{bucket}.s3.amazonaws.com", f"https://{bucket}.s3.{region}.amazonaws.com"]
