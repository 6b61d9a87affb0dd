"""The variables each function requires on AWS Lambda, checked at cold start.

Standard library only: a handler checks its environment at import (services/core/observability.py
`for_function`) before anything loads pydantic-settings (~0.1 s of import that the pipeline handlers
otherwise pay on their first event only). The settings classes (services/core/settings.py) refuse the
same on Lambda, and tests/services/test_settings.py checks that every name here is a variable of the
function's settings class; tests/infra checks that the Pulumi program sets the first name of each group.
What a function requires follows from the settings groups its catalog entry names (`settings_groups`).

It also records which function this process runs (`for_function(name)` records it at import, before any
code reads a setting): on Lambda `get_settings()` builds that function's own settings class from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from services import catalog  # standard library only, like this module (tests/services/test_catalog.py)

LAMBDA_MARKER = "AWS_LAMBDA_FUNCTION_NAME"  # set by the Lambda runtime in every function's environment
DEFAULT_METRICS_NAMESPACE = "Collections"

# Groups of variables; one of each group must be set and not empty. The first is what the program sets.
DATABASE = ("COLLECTIONS_DATABASE_SECRET_ARN", "DATABASE_URL", "COLLECTIONS_DATABASE_URL")
BUCKET = ("COLLECTIONS_BUCKET",)  # else the local default collections-local
EVENT_BUS = ("COLLECTIONS_EVENT_BUS",)  # else the local default collections-local
METRICS_NAMESPACE = ("COLLECTIONS_METRICS_NAMESPACE",)  # else metrics the dashboard does not show
ANTHROPIC = ("COLLECTIONS_ANTHROPIC_SECRET_ARN", "ANTHROPIC_API_KEY")  # else the local analyzer
VOYAGE = ("COLLECTIONS_VOYAGE_SECRET_ARN", "VOYAGE_API_KEY")  # else the local embedder
COGNITO = (("COLLECTIONS_COGNITO_USER_POOL_ID",), ("COLLECTIONS_COGNITO_CLIENT_ID",))

# What each group of settings (a catalog Function's `settings_groups`) requires on AWS, in this order; every function
# also requires the metrics namespace. Groups without a local default that could pass unnoticed require nothing.
REQUIRED_BY_GROUP: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "database": (DATABASE,),
    "storage": (BUCKET,),
    "events": (EVENT_BUS,),
    "auth": COGNITO,
    "claude": (ANTHROPIC,),
    "voyage": (VOYAGE,),
    "uploads": (),
    "imaging": (),
    "stages": (),
    "cleanup": (),
    "api": (),
}


def _required(groups: tuple[str, ...], function: str) -> tuple[tuple[str, ...], ...]:
    unknown = [group for group in groups if group not in REQUIRED_BY_GROUP]
    if unknown:
        raise KeyError(f"function {function!r} names unknown settings groups {unknown} (services/catalog.py); "
                       f"known: {', '.join(REQUIRED_BY_GROUP)}")
    return (*(names for group in REQUIRED_BY_GROUP if group in groups for names in REQUIRED_BY_GROUP[group]),
            METRICS_NAMESPACE)


# Derived from the catalog (no third-party imports there): a new function's entry is all it takes.
REQUIRED_ON_AWS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    fn.name: _required(fn.settings_groups, fn.name) for fn in catalog.FUNCTIONS
}


class MissingSettings(RuntimeError):
    """Variables a program needs on AWS Lambda are not set (raised at cold start)."""


class UnknownFunction(RuntimeError):
    """On AWS Lambda, settings were asked for before the handler said which function this is."""


_current_function: str | None = None


def set_current_function(function: str) -> None:
    """Record the catalog function this process runs (services/core/observability.py `for_function`)."""
    global _current_function
    if function not in REQUIRED_ON_AWS:
        raise KeyError(f"{function!r} is not a function of the catalog: {', '.join(REQUIRED_ON_AWS)}")
    _current_function = function


def current_function() -> str | None:
    """The function recorded by `set_current_function`; None before a handler module recorded one."""
    return _current_function


def on_aws_lambda(environ: Mapping[str, str] | None = None) -> bool:
    return bool((os.environ if environ is None else environ).get(LAMBDA_MARKER))


def missing(groups: tuple[tuple[str, ...], ...], environ: Mapping[str, str] | None = None) -> list[str]:
    """The groups of which no variable is set, each as "FIRST (or OTHER / OTHER)"."""
    environ = os.environ if environ is None else environ
    return [
        group[0] if len(group) == 1 else f"{group[0]} (or {' / '.join(group[1:])})"
        for group in groups
        if not any(environ.get(name) for name in group)
    ]


def require(groups: tuple[tuple[str, ...], ...], program: str, environ: Mapping[str, str] | None = None) -> None:
    """On AWS Lambda, raise MissingSettings naming every missing group; elsewhere do nothing."""
    environ = os.environ if environ is None else environ
    if not on_aws_lambda(environ):
        return
    names = missing(groups, environ)
    if names:
        raise MissingSettings(
            f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} required on AWS Lambda "
            f"({program}, function {environ.get(LAMBDA_MARKER)}) and not set"
        )


def require_for_function(function: str) -> None:
    require(REQUIRED_ON_AWS[function], function)


def required_variables(function: str) -> list[str]:
    """What the Pulumi program must set for the function: the first variable of each group."""
    return [group[0] for group in REQUIRED_ON_AWS[function]]
