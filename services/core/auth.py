"""Cognito access tokens: who is calling. The caller's `sub` is the owner of everything they touch.

Two modes (settings.auth_mode):
- "jwks": verify the bearer token here — RS256 signature against the user pool's JWKS (cached,
  refetched when a token names an unknown `kid`, at most once per JWKS_MIN_REFETCH_S), `iss`,
  `exp`, `token_use == "access"` and `client_id`.
- "apigateway": API Gateway's JWT authorizer already checked signature, issuer, expiry and
  audience, and we read its claims (requestContext.authorizer.jwt.claims), still checking
  `token_use` and `client_id` (the authorizer accepts id tokens whose `aud` matches). Defence in
  depth: the forwarded bearer token is verified here as well, exactly as in "jwks" mode (cached
  JWKS), and must name the same user. The claims are only text in the invocation event: any
  principal allowed to invoke the function (lambda:InvokeFunction on the alias, a console test
  event, a misrouted integration) could write someone else's `sub` there, but cannot sign a token.

PyJWT (and through it cryptography) is imported on the first verified token, not at cold start.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from services.core.settings import ProgramSettings, get_settings

ALGORITHMS = ["RS256"]  # Cognito signs with RS256 only; anything else (none, HS256...) is refused
JWKS_MIN_REFETCH_S = 30.0  # a flood of tokens with made-up kids must not become a flood of fetches
JWKS_FETCH_TIMEOUT_S = 5.0
LEEWAY_S = 30  # clock skew between Cognito and us
# A verified token is remembered this long (never past its `exp`), so a client's next requests skip
# the RSA check: under load on `make dev` it was a third of the event loop's time. A signing key
# dropped from the JWKS stops being honoured for cached tokens within this bound; an access token
# cannot be revoked for third parties anyway (Cognito's revocation applies to its own APIs).
VERIFIED_TOKEN_CACHE_S = 60.0
VERIFIED_TOKEN_CACHE_SIZE = 1024
_SUB = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
# header.payload.signature (an empty signature is left to the full check to refuse by its alg: none)
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class AuthError(Exception):
    """The request is not authenticated (401). The message is safe to show to the caller."""


class AuthNotConfigured(RuntimeError):
    """The service lacks the settings it needs to check tokens (an operator problem, not the caller's)."""


@dataclass(frozen=True)
class Principal:
    sub: str
    username: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _fetch_json(url: str) -> dict[str, Any]:
    import urllib.request  # jwks mode only (http.client and email: ~10 ms the apigateway mode never needs)

    with urllib.request.urlopen(url, timeout=JWKS_FETCH_TIMEOUT_S) as response:  # noqa: S310 (URL from settings)
        return json.loads(response.read())


class JwksCache:
    """The user pool's signing keys by `kid`, refreshed after `ttl_s` or when an unknown kid shows up."""

    def __init__(
        self,
        url: str,
        ttl_s: float,
        *,
        min_refetch_s: float = JWKS_MIN_REFETCH_S,
        fetch: Callable[[str], dict[str, Any]] = _fetch_json,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.url = url
        self.ttl_s = ttl_s
        self.min_refetch_s = min_refetch_s
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def _refresh(self) -> None:
        import jwt

        try:
            document = self._fetch(self.url)
            key_set = jwt.PyJWKSet.from_dict(document)
        except Exception as error:
            # Remember the attempt anyway, so an unreachable JWKS is not hammered once per request.
            self._fetched_at = self._clock()
            raise AuthError("the token's signing keys could not be loaded") from error
        finally:
            self.fetches += 1
        self._keys = {k.key_id: k for k in key_set.keys if k.key_id}
        self._fetched_at = self._clock()

    def key(self, kid: str) -> Any:
        with self._lock:
            now = self._clock()
            age = None if self._fetched_at is None else now - self._fetched_at
            if age is None or age >= self.ttl_s:
                self._refresh()
            elif kid not in self._keys and age >= self.min_refetch_s:
                self._refresh()  # keys may have rotated since the last fetch
            try:
                return self._keys[kid]
            except KeyError:
                raise AuthError("the token is signed with an unknown key") from None


def _check_cognito_claims(claims: Mapping[str, Any], client_id: str) -> Principal:
    """What both modes check: an access token, for our app client, naming a user."""
    if claims.get("token_use") != "access":
        raise AuthError("an access token is required (token_use must be 'access')")
    if claims.get("client_id") != client_id:
        raise AuthError("the token was issued for another app client")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not _SUB.match(sub):
        # The sub becomes part of S3 keys and a bounded column: a Cognito sub is a UUID.
        raise AuthError("the token does not name a user (sub missing or malformed)")
    username = claims.get("username")
    # Read-only: a cached Principal is handed to every later request with the same token.
    return Principal(
        sub=sub, username=username if isinstance(username, str) else None, claims=MappingProxyType(dict(claims))
    )


class TokenVerifier:
    """Full verification of Cognito access tokens (auth_mode "jwks")."""

    def __init__(self, issuer: str, client_id: str, jwks: JwksCache, *, clock: Callable[[], float] = time.time):
        if not client_id:
            raise AuthNotConfigured("COLLECTIONS_COGNITO_CLIENT_ID is not set")
        self.issuer = issuer
        self.client_id = client_id
        self.jwks = jwks
        self._clock = clock
        # token -> (principal, wall-clock time it stops being trusted without a new check); LRU order.
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._verified_lock = threading.Lock()

    def verify(self, token: str) -> Principal:
        """The token's user, from a full check or from one made less than VERIFIED_TOKEN_CACHE_S ago
        (and before the token's `exp`). Only tokens that passed are remembered."""
        if not _COMPACT_JWS.fullmatch(token):
            # Base64url only: one token must not have many spellings, each taking a place in the cache.
            raise AuthError("the token is malformed")
        now = self._clock()
        with self._verified_lock:
            hit = self._verified.get(token)
            if hit is not None and now < hit[1]:
                self._verified.move_to_end(token)
                return hit[0]
        principal = self._verify(token)
        until = min(now + VERIFIED_TOKEN_CACHE_S, int(principal.claims["exp"]))  # PyJWT reads exp as int
        if until <= now:  # inside the leeway after exp: valid now, nothing to remember
            return principal
        with self._verified_lock:
            self._verified[token] = (principal, until)
            self._verified.move_to_end(token)
            while len(self._verified) > VERIFIED_TOKEN_CACHE_SIZE:
                self._verified.popitem(last=False)
        return principal

    def _verify(self, token: str) -> Principal:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("the token is malformed") from None
        if header.get("alg") not in ALGORITHMS:
            raise AuthError(f"the token's algorithm must be one of {', '.join(ALGORITHMS)}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("the token names no signing key (kid)")
        key = self.jwks.key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                issuer=self.issuer,
                leeway=LEEWAY_S,
                # Cognito access tokens carry client_id, not aud; it is checked below.
                options={"require": ["exp", "iss", "sub", "token_use"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired") from None
        except jwt.InvalidIssuerError:
            raise AuthError("the token was issued by another user pool") from None
        except jwt.MissingRequiredClaimError as error:
            raise AuthError(f"the token lacks the {error.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError("the token's signature is invalid") from None
        except jwt.PyJWTError:
            raise AuthError("the token is invalid") from None
        return _check_cognito_claims(claims, self.client_id)


def principal_from_authorizer(event: Mapping[str, Any] | None, client_id: str) -> Principal:
    """The caller from API Gateway's JWT authorizer claims in a payload 2.0 event (auth_mode "apigateway")."""
    if not client_id:
        raise AuthNotConfigured("COLLECTIONS_COGNITO_CLIENT_ID is not set")
    claims = ((((event or {}).get("requestContext") or {}).get("authorizer") or {}).get("jwt") or {}).get("claims")
    if not isinstance(claims, Mapping) or not claims:
        raise AuthError("no authorizer claims: this route must sit behind API Gateway's JWT authorizer")
    return _check_cognito_claims(claims, client_id)


def principal_from_api_gateway(
    event: Mapping[str, Any] | None, authorization: str | None, verifier: TokenVerifier
) -> Principal:
    """auth_mode "apigateway": the authorizer's claims, and the forwarded token verified here too;
    both must name the same user."""
    claimed = principal_from_authorizer(event, verifier.client_id)
    verified = verifier.verify(bearer_token(authorization))
    if verified.sub != claimed.sub:
        raise AuthError("the bearer token and the authorizer's claims name different users")
    return verified


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        raise AuthError("missing bearer token (Authorization: Bearer <access token>)")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("the Authorization header must be 'Bearer <access token>'")
    return token.strip()


@lru_cache(maxsize=4)
def _verifier(issuer: str, jwks_url: str, client_id: str, jwks_cache_s: int) -> TokenVerifier:
    return TokenVerifier(issuer, client_id, JwksCache(jwks_url, jwks_cache_s))


def forget_verifiers() -> None:
    """Fetch the JWKS again on next use (after a SnapStart restore)."""
    _verifier.cache_clear()


def get_verifier(settings: ProgramSettings | None = None) -> TokenVerifier:
    """One verifier (and JWKS cache) per process and configuration."""
    settings = settings or get_settings()
    if not settings.cognito_user_pool_id and not settings.cognito_issuer:
        raise AuthNotConfigured("COLLECTIONS_COGNITO_USER_POOL_ID (or COLLECTIONS_COGNITO_ISSUER) is not set")
    return _verifier(settings.issuer, settings.jwks_url, settings.cognito_client_id, settings.jwks_cache_s)
