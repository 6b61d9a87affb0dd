"""Errors a release can end with, each with its exit code, and the translation of AWS's errors.

The CLI prints the message (never a traceback) and exits with the code, so CI can tell an alarm
rollback from a held lock from a typo in a service name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # argparse's own code
EXIT_ROLLED_BACK = 3
EXIT_NOT_FOUND = 4
EXIT_LOCKED = 5
EXIT_CREDENTIALS = 6
EXIT_THROTTLED = 7
EXIT_BLOCKED = 8  # the preview guard refused a preview
EXIT_SMOKE_FAILED = 9
EXIT_UNREACHABLE = 10  # AWS's endpoint could not be reached or did not answer in time
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: whoever read our output (`| head`) stopped reading


class ReleaseError(Exception):
    exit_code = EXIT_ERROR


class NotFound(ReleaseError):
    """Unknown service, slot, version or alias."""

    exit_code = EXIT_NOT_FOUND


class LockHeld(ReleaseError):
    exit_code = EXIT_LOCKED


class RolledBack(ReleaseError):
    """An alarm fired: the alias is back on the stable version."""

    exit_code = EXIT_ROLLED_BACK


class CredentialsMissing(ReleaseError):
    exit_code = EXIT_CREDENTIALS


class Throttled(ReleaseError):
    exit_code = EXIT_THROTTLED


class Blocked(ReleaseError):
    exit_code = EXIT_BLOCKED


class SmokeFailed(ReleaseError):
    exit_code = EXIT_SMOKE_FAILED


class Interrupted(ReleaseError):
    exit_code = EXIT_INTERRUPTED


class Unreachable(ReleaseError):
    """AWS could not be reached: connection refused or reset, DNS, a connect or read timeout."""

    exit_code = EXIT_UNREACHABLE


# The error codes botocore itself treats as throttling (botocore/retries/standard.py,
# ThrottledRetryableChecker._THROTTLED_ERROR_CODES, botocore 1.44): they reach us only once its retries
# are used up. tests/pipelines/test_outage.py checks this set still covers the installed botocore's.
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown",
    "PriorRequestNotComplete", "EC2ThrottledException",
})
NOT_FOUND_CODES = {
    "ResourceNotFoundException",
    "ParameterNotFound",
    "ResourceNotFound",
    "ProvisionedConcurrencyConfigNotFoundException",
}


def aws_error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def endpoint_of(client: Any) -> str:
    """The URL a boto3 client talks to (AWS_ENDPOINT_URL or the regional endpoint)."""
    try:
        return str(client.meta.endpoint_url)
    except Exception:  # a stub or a half-made client: the message must still be written
        return "AWS"


def translate(error: Exception, doing: str, endpoint: str = "") -> ReleaseError | None:
    """The ReleaseError for one of botocore's exceptions (None if it is not one we know).

    Transport failures come from botocore.exceptions: ConnectionError (EndpointConnectionError,
    ConnectTimeoutError, ProxyConnectionError) and HTTPClientError (ReadTimeoutError,
    ConnectionClosedError). They and throttling reach us only after botocore's own retries
    (standard mode: exponential backoff with jitter) were used up.
    """
    from botocore.exceptions import (
        ClientError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )
    from botocore.exceptions import ConnectionError as TransportError

    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return CredentialsMissing(
            f"{doing}: no AWS credentials ({error}). Set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY, or run where a role is available."
        )
    if isinstance(error, (TransportError, HTTPClientError)):
        where = getattr(error, "kwargs", {}).get("endpoint_url") or endpoint or "AWS"
        kind = type(error).__name__
        return Unreachable(
            f"{doing}: cannot reach {_origin(where)} ({kind}); check the network, proxy or VPN, AWS_ENDPOINT_URL "
            "and the stack's region, see https://health.aws.amazon.com for an AWS outage, then run the same "
            "command again"
        )
    if isinstance(error, ClientError):
        code = aws_error_code(error)
        message = error.response.get("Error", {}).get("Message", str(error))
        if code in THROTTLING_CODES:
            at = f" at {_origin(endpoint)}" if endpoint else ""
            return Throttled(
                f"{doing}: AWS is throttling ({code}){at} even after backing off; wait a minute and run the same "
                "command again, or ask for a higher API rate quota"
            )
        if code in NOT_FOUND_CODES:
            return NotFound(f"{doing}: {message}")
        return ReleaseError(f"{doing}: {code}: {message}")
    return None


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL: the endpoint, without the API path of the request that failed."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else url


@contextmanager
def aws_errors(doing: str, client: Any = None) -> Iterator[None]:
    """Turn botocore's exceptions into ReleaseErrors that say what we were doing, and where."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as error:
        translated = translate(error, doing, endpoint_of(client) if client is not None else "")
        if translated is None:
            raise
        raise translated from None
