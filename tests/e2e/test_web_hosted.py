"""The app's sign-in as it runs on AWS: Cognito's hosted UI, authorization code flow with PKCE.

moto has no hosted UI, so a small stand-in for its four endpoints (/oauth2/authorize,
/oauth2/token, /oauth2/revoke, /logout) answers as Cognito documents them, and checks what the app
sends: the client id, the exact redirect URI, S256 and a code verifier that matches the challenge,
the refresh token on refresh and its revocation on sign-out. The app is served by the dev server
with a hosted-mode config.json and the same CSP as on AWS (connect-src names the Cognito domain).
The API is unreachable on purpose: this is about signing in, and coming back to the screen the
person was on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import expect

from services.web import devserver, site
from tests.e2e.test_web import _new_page, browser  # noqa: F401 - the browser fixture

CLIENT_ID = "web-client-id"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(kind: str, serial: int) -> str:
    """JWT-shaped (the app reads `exp` and `email`, it never verifies: the API does)."""
    claims = {"exp": int(time.time()) + 3600, "token_use": kind, "email": "person@example.com", "n": serial}
    return ".".join([_b64url(b'{"alg":"none"}'), _b64url(json.dumps(claims).encode()), "sig"])


class FakeHostedUi:
    """Cognito's hosted UI endpoints, strict about what a public client must send."""

    def __init__(self):
        self.requests: list[tuple[str, dict]] = []
        self.codes: dict[str, dict] = {}
        self.refresh_tokens: set[str] = set()
        self.app_origin = ""
        self.issued: list[str] = []  # access tokens, in order
        hosted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _cors(self):
                self.send_header("Access-Control-Allow-Origin", hosted.app_origin)
                self.send_header("Access-Control-Allow-Headers", "content-type")

            def do_OPTIONS(self):
                self.send_response(204)
                self._cors()
                self.end_headers()

            def do_GET(self):
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                hosted.requests.append((url.path, query))
                if url.path == "/oauth2/authorize":
                    assert query["response_type"] == "code" and query["client_id"] == CLIENT_ID
                    assert query["redirect_uri"] == f"{hosted.app_origin}/"
                    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
                    code = secrets.token_urlsafe(16)
                    hosted.codes[code] = query
                    target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
                elif url.path == "/logout":
                    assert query["client_id"] == CLIENT_ID
                    target = query["logout_uri"]
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(302)
                self.send_header("Location", target)
                self.end_headers()

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                hosted.requests.append((self.path, form))
                assert form["client_id"] == CLIENT_ID
                assert "client_secret" not in form and "Authorization" not in self.headers
                if self.path == "/oauth2/revoke":  # Cognito answers 200 with an empty body
                    hosted.refresh_tokens.discard(form["token"])
                    return self._answer(200, {})
                assert self.path == "/oauth2/token"
                if form["grant_type"] == "authorization_code":
                    asked = hosted.codes.pop(form["code"])  # single use
                    verifier_hash = _b64url(hashlib.sha256(form["code_verifier"].encode()).digest())
                    if verifier_hash != asked["code_challenge"] or form["redirect_uri"] != asked["redirect_uri"]:
                        return self._answer(400, {"error": "invalid_grant"})
                    refresh = secrets.token_urlsafe(24)
                    hosted.refresh_tokens.add(refresh)
                    return self._answer(200, self._tokens(refresh_token=refresh))
                if form["grant_type"] == "refresh_token" and form["refresh_token"] in hosted.refresh_tokens:
                    return self._answer(200, self._tokens())  # Cognito sends no new refresh token
                return self._answer(400, {"error": "invalid_grant"})

            def _tokens(self, **extra):
                serial = len(hosted.issued) + 1
                hosted.issued.append(_token("access", serial))
                return {"access_token": hosted.issued[-1], "id_token": _token("id", serial),
                        "token_type": "Bearer", "expires_in": 3600, **extra}

            def _answer(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self._cors()
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def hosted() -> Iterator[tuple[FakeHostedUi, str]]:
    idp = FakeHostedUi()
    unreachable_api = "http://127.0.0.1:9"
    config = site.app_config(api_url=unreachable_api, auth=site.hosted_auth(domain_url=idp.url, client_id=CLIENT_ID),
                             max_upload_bytes=1024, categories=["other"])
    csp = site.content_security_policy(api_origins=[unreachable_api], storage_origins=[], auth_origins=[idp.url])
    app = devserver.serve(0, config, site.security_headers(csp, https=False))
    idp.app_origin = app.url
    yield idp, app.url
    app.stop()
    idp.stop()


def test_sign_in_through_the_hosted_ui_with_pkce_returns_to_the_same_screen(browser, hosted):  # noqa: F811
    idp, app_url = hosted
    page = _new_page(browser)
    try:
        page.goto(f"{app_url}/#/search?q=blue")
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{app_url}/#/search?q=blue")  # back, with the code gone from the URL
        expect(page.locator("#user-name")).to_have_text("person@example.com")
        session = page.evaluate("JSON.parse(sessionStorage.getItem('collections.session'))")
        assert session["accessToken"] == idp.issued[0] and session["refreshToken"] in idp.refresh_tokens
        token_calls = [form for path, form in idp.requests if path == "/oauth2/token"]
        assert [f["grant_type"] for f in token_calls] == ["authorization_code"]
        assert page.evaluate("sessionStorage.getItem('collections.pkce')") is None  # the verifier is spent
        assert page.evaluate("window.__cspViolations") == []

        # About to expire: the next load refreshes with the refresh token first.
        page.evaluate("""() => {
            const s = JSON.parse(sessionStorage.getItem('collections.session'));
            s.expiresAt = Date.now() + 30000;
            sessionStorage.setItem('collections.session', JSON.stringify(s));
        }""")
        page.reload()
        expect(page.locator("#user-name")).to_have_text("person@example.com")
        token_calls = [form for path, form in idp.requests if path == "/oauth2/token"]
        assert [f["grant_type"] for f in token_calls] == ["authorization_code", "refresh_token"]
        assert page.evaluate("JSON.parse(sessionStorage.getItem('collections.session')).accessToken") == idp.issued[1]

        refresh_token = session["refreshToken"]
        page.get_by_role("button", name="Sign out").click()
        # Sign-out forgets the session at once, then revokes and leaves for /logout, which sends the
        # tab back to the app: wait for that return, not for the first paint of the signed-out screen.
        page.wait_for_url(re.compile(rf"^{re.escape(app_url)}/(#/?)?$"))
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        assert ("/logout", {"client_id": CLIENT_ID, "logout_uri": f"{app_url}/"}) in idp.requests
        # The refresh token is revoked first: /logout alone would leave it usable.
        assert ("/oauth2/revoke", {"token": refresh_token, "client_id": CLIENT_ID}) in idp.requests
        assert refresh_token not in idp.refresh_tokens
        assert page.evaluate("sessionStorage.getItem('collections.session')") is None
    finally:
        page.context.close()


def test_a_forged_redirect_is_refused(browser, hosted):  # noqa: F811
    """A code arriving with a state this tab never sent (login CSRF) is not exchanged."""
    idp, app_url = hosted
    page = _new_page(browser)
    try:
        before = len(idp.requests)
        page.goto(f"{app_url}/?code=stolen&state=forged")
        expect(page.locator(".reason")).to_have_text("sign-in answer did not match its request")
        assert "code=" not in page.url
        assert [r for r in idp.requests[before:] if r[0] == "/oauth2/token"] == []
    finally:
        page.context.close()
