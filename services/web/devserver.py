"""The web app on 127.0.0.1 for `make dev`: its static files, a generated config.json, and the same
security headers CloudFront adds on AWS. A stdlib threading HTTP server: a handful of files needs
nothing more. Files are read on each request, so an edit shows on reload."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from services.web import site

COMPRESSIBLE = ("text/", "application/json")


@dataclass
class WebServer:
    url: str
    _server: ThreadingHTTPServer
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _handler(root: Path, config: Mapping[str, Any], headers: Mapping[str, str]) -> type[BaseHTTPRequestHandler]:
    config_body = json.dumps(config, indent=1).encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "collections-web"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            pass  # quiet: the API's log is the one worth reading

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _serve(self, *, head: bool) -> None:
            path = unquote(urlsplit(self.path).path).lstrip("/") or site.INDEX_FILE
            if path == site.CONFIG_FILE:
                return self._send(HTTPStatus.OK, config_body, "application/json", head)
            files = site.app_files(root)
            file = files.get(path)
            if file is None:
                return self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8", head)
            self._send(HTTPStatus.OK, file.read_bytes(), site.content_type(file), head)

        def _send(self, status: HTTPStatus, body: bytes, content_type: str, head: bool) -> None:
            if content_type.startswith(COMPRESSIBLE) and "gzip" in self.headers.get("Accept-Encoding", ""):
                body = gzip.compress(body, 6)  # as CloudFront compresses on AWS
                encoding = "gzip"
            else:
                encoding = None
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.send_header("Vary", "Accept-Encoding")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

    return Handler


def serve(port: int, config: Mapping[str, Any], headers: Mapping[str, str], root: Path = site.APP_DIR,
          host: str = "127.0.0.1") -> WebServer:
    """Serve the app in a background thread; `port` 0 picks a free one."""
    site.app_files(root)  # a broken app folder fails at start, not on the first request
    server = ThreadingHTTPServer((host, port), _handler(root, config, headers))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="web", daemon=True)
    thread.start()
    return WebServer(url=f"http://{host}:{server.server_address[1]}", _server=server, _thread=thread)


def serve_for_dev(*, port: int, api_url: str, aws_endpoint_url: str, region: str, client_id: str,
                  demo_user: str, demo_password: str, max_upload_bytes: int) -> WebServer:
    """The app as `make dev` serves it: the local API, sign-in on moto's Cognito with the demo user
    preset, and a CSP naming exactly those origins (moto is also the bucket's origin)."""
    from services.core.ai import CATEGORIES

    config = site.app_config(
        api_url=api_url,
        auth=site.local_auth(endpoint=aws_endpoint_url, region=region, client_id=client_id,
                             demo_user=demo_user, demo_password=demo_password),
        max_upload_bytes=max_upload_bytes,
        categories=CATEGORIES,
    )
    moto = site.origin(aws_endpoint_url)
    csp = site.content_security_policy(api_origins=[site.origin(api_url)], storage_origins=[moto], auth_origins=[moto])
    return serve(port, config, site.security_headers(csp, https=False))


def api_cors(app_origin: str) -> dict[str, Any]:
    """Starlette CORSMiddleware options standing in for API Gateway's CORS configuration locally:
    only the app's origin; the headers the app sends; Retry-After readable (429/503)."""
    return {
        "allow_origins": [app_origin],
        "allow_methods": ["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        "allow_headers": ["authorization", "content-type"],
        "expose_headers": ["retry-after"],
        "max_age": 3600,
    }
