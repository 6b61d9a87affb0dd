"""Errors a release can end with, each with its exit code, and the translation of AWS's errors.

The CLI prints the message (never a traceback) and exits with the code, so CI can tell an alarm
rollback from a held lock from a typo in a service name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


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


THROTTLING_CODES = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}
NOT_FOUND_CODES = {
    "ResourceNotFoundException",
    "ParameterNotFound",
    "ResourceNotFound",
    "ProvisionedConcurrencyConfigNotFoundException",
}


def aws_error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


@contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Turn botocore's exceptions into ReleaseErrors that say what we were doing.

    Throttling reaching us means botocore's own retries (standard mode, exponential backoff with
    jitter, configured in services.core.aws) were all used up.
    """
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as error:
        raise CredentialsMissing(
            f"{doing}: no AWS credentials ({error}). Set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY, or run where a role is available."
        ) from None
    except ClientError as error:
        code = aws_error_code(error)
        message = error.response.get("Error", {}).get("Message", str(error))
        if code in THROTTLING_CODES:
            raise Throttled(f"{doing}: AWS is throttling ({code}) even after backing off; try again shortly") from None
        if code in NOT_FOUND_CODES:
            raise NotFound(f"{doing}: {message}") from None
        raise ReleaseError(f"{doing}: {code}: {message}") from None
