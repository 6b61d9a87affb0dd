"""Lambda SnapStart: what a restored snapshot must not reuse, and the hooks that renew it.

With SnapStart, Lambda runs a version's init once when the version is published, snapshots the
whole execution environment, and starts every new instance by resuming a copy of it, possibly
days later and many times over. So nothing made during init may assume it is unique or fresh:
- database connections: sockets the server (or RDS Proxy) closed long ago, shared by every copy;
- Python's `random` state: every copy would draw the same numbers (uuid4 and `secrets` read
  os.urandom and are safe);
- credentials and API keys read during init: the secret may have been rotated since;
- clients holding HTTP connections (boto3, the AI adapters) and caches timed by the clock (JWKS).

The runtime's `snapshot_restore_py` module (in Lambda's Python 3.12+ managed runtimes) runs
before-snapshot hooks in reverse order of registration and after-restore hooks in order; the
after-restore ones must finish within Lambda's 10 s restore timeout
(docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-python.html). Elsewhere the module
does not exist: hooks are kept here, and `run_before_snapshot` / `run_after_restore` do what the
runtime would (tests simulate snapshot → restore in-process with them).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

try:  # only inside Lambda's managed Python runtime
    from snapshot_restore_py import register_after_restore as _runtime_after_restore
    from snapshot_restore_py import register_before_snapshot as _runtime_before_snapshot
except ImportError:
    _runtime_after_restore = _runtime_before_snapshot = None

log = logging.getLogger(__name__)
Hook = Callable[[], None]
_before: dict[str, Hook] = {}
_after: dict[str, Hook] = {}


def _key(hook: Hook) -> str:
    return f"{hook.__module__}.{hook.__qualname__}"


def before_snapshot(hook: Hook) -> Hook:
    """Register `hook` to run before Lambda snapshots the environment (once per hook, however
    often its module is imported)."""
    if _key(hook) not in _before and _runtime_before_snapshot is not None:
        _runtime_before_snapshot(hook)
    _before[_key(hook)] = hook
    return hook


def after_restore(hook: Hook) -> Hook:
    """Register `hook` to run when an instance resumes from the snapshot."""
    if _key(hook) not in _after and _runtime_after_restore is not None:
        _runtime_after_restore(hook)
    _after[_key(hook)] = hook
    return hook


def run_before_snapshot() -> None:
    """What the runtime does before the snapshot: the hooks in reverse order of registration."""
    for hook in reversed(list(_before.values())):
        hook()


def run_after_restore() -> None:
    """What the runtime does on restore: the hooks in order of registration."""
    for hook in _after.values():
        hook()


def runtime_hooks_available() -> bool:
    return _runtime_after_restore is not None


# --- the hooks every function needs ---------------------------------------------------------
@before_snapshot
def close_database_connections() -> None:
    """No open connection goes into the snapshot."""
    from services.core import database

    database.reset()


@after_restore
def renew_process_state() -> None:
    """Fresh connections, credentials, clients and randomness for this copy of the snapshot."""
    from services.core import aws, database, secrets
    from services.core.ai import forget_adapters
    from services.core.auth import forget_verifiers

    database.reset()  # pooled connections dropped; the URL (and its secret) is read again on next use
    secrets.forget()  # API keys and the database secret: read again
    forget_adapters()  # AI clients keep keys and HTTP connections
    aws.reset()  # boto3 clients keep connection pools and the credentials resolved at init
    forget_verifiers()  # JWKS fetched at init, its age measured on a clock that did not run
    random.seed()  # from os.urandom: each restored copy its own sequence
    log.info("restored from a snapshot: connections, credentials and random state renewed")
