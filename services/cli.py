"""`collections`: the local runtime and the operator commands.

    collections dev                    the whole service locally (what `make dev` runs)
    collections demo                   upload sample images to the running dev environment and search them
    collections token [--user NAME]    a fresh access token from the running dev environment (bob → bob@example.com)
    collections migrate                apply migrations (DATABASE_URL, or the embedded PostgreSQL)
    collections reembed [...]          re-embed items with the current embedding model
    collections cleanup [--dry-run]    remove orphans, stale pending rows, deleted and expired failed items
    collections retry ITEM_ID          retry a failed item (any owner)

Commands other than `dev` find the running dev environment through `{data_dir}/runtime.json`;
explicit environment variables (DATABASE_URL, AWS_ENDPOINT_URL, ...) win over it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import uuid
import warnings
from collections.abc import Iterator, Sequence

from services.core.settings import get_settings


class CommandError(Exception):
    """A usage or environment problem: printed as `collections: error: ...`, exit status 2."""


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an item id (a UUID)") from None


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be at least 1")
    return number


# --- reaching an environment ----------------------------------------------------------------
@contextlib.contextmanager
def _environment(*, needs_aws: bool) -> Iterator[None]:
    """Point settings at a database (and AWS when `needs_aws`): explicit env vars, else the running
    dev environment, else (database only) the embedded server, started for this command."""
    from services.local.dev import DevError, apply_environment, embedded_database, read_state

    settings = get_settings()
    try:
        state = read_state(settings)
    except DevError:
        state = None
    if state is not None:
        apply_environment(state.environment(), override=False)
        yield
        return
    if needs_aws and not settings.aws_endpoint_url and not settings.database_url:
        raise CommandError("no dev environment is running: start `make dev` (or set DATABASE_URL and AWS settings)")
    if settings.database_url:
        yield
        return
    server, url = embedded_database(settings)
    try:
        apply_environment({"DATABASE_URL": url})
        yield
    finally:
        from services.core import database

        database.reset()
        server.stop()


# --- commands ---------------------------------------------------------------------------------
def cmd_dev(args: argparse.Namespace) -> int:
    from services.local.dev import run

    return run()


def cmd_demo(args: argparse.Namespace) -> int:
    from services.local.demo import run

    return run(timeout=args.timeout)


LOCAL_EMAIL_DOMAIN = "example.com"  # `--user bob` means bob@example.com (the pool signs in by email)


def user_address(name: str) -> str:
    """The sign-in address for `--user`: an email as given, a bare name at LOCAL_EMAIL_DOMAIN."""
    name = name.strip()
    if not name:
        raise CommandError("--user must not be empty")
    return name if "@" in name else f"{name}@{LOCAL_EMAIL_DOMAIN}"


def cmd_token(args: argparse.Namespace) -> int:
    from botocore.exceptions import ClientError

    from services.local import aws as local_aws
    from services.local.dev import apply_environment, read_state

    state = read_state()
    apply_environment(state.environment(), override=False)
    settings = get_settings().model_copy(
        update={"aws_endpoint_url": state.aws_endpoint_url, "aws_region": state.region}
    )
    app = local_aws.CognitoApp(user_pool_id=state.user_pool_id, client_id=state.client_id)
    user = user_address(args.user)
    try:
        local_aws.ensure_user(settings, app, user)
        token = local_aws.access_token(settings, app, user)
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message") or str(error)
        raise CommandError(f"the user pool refused user {user!r}: {message}") from None
    if user != args.user:
        print(f"(user {user})", file=sys.stderr)
    print(token)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from services.core import migrations
    from services.core.database import database_url

    with _environment(needs_aws=False):
        url = database_url()
        before = migrations.current(url)
        migrations.upgrade(url)
        print(f"database at revision {migrations.current(url)} (was {before or 'empty'})")
    return 0


def cmd_reembed(args: argparse.Namespace) -> int:
    with _environment(needs_aws=False):
        from services.embedder import reembed

        batch_size = args.batch_size or reembed.DEFAULT_BATCH
        if batch_size > reembed.MAX_BATCH:
            raise CommandError(f"--batch-size must be at most {reembed.MAX_BATCH}, not {batch_size}")
        result = reembed.run(batch_size=batch_size, only_stale=not args.all, limit=args.limit)
    print(json.dumps(result, default=str, indent=2))
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    with _environment(needs_aws=True):
        from services.cleanup import logic

        result = logic.run(dry_run=args.dry_run)
    print(json.dumps(result, default=str, indent=2))
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from services.core.database import session_scope
    from services.core.events import get_publisher
    from services.core.retry import RetryError, retry_item

    with _environment(needs_aws=True):
        try:
            with session_scope() as session:
                item = retry_item(session, args.item_id, get_publisher())
                status = item.status.value
        except RetryError as error:
            raise CommandError(str(error)) from None
    print(f"item {args.item_id} is {status} again; its stage's event was published")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="collections", description="Collections: the local runtime and operator commands."
    )
    commands = root.add_subparsers(dest="command", metavar="COMMAND", required=True)

    dev = commands.add_parser("dev", help="run the whole service locally (embedded PostgreSQL, moto, API)")
    dev.set_defaults(func=cmd_dev)

    demo = commands.add_parser("demo", help="upload sample images to the running dev environment and search")
    demo.add_argument("--timeout", type=_positive, default=120, help="seconds to wait for the pipeline")
    demo.set_defaults(func=cmd_demo)

    token = commands.add_parser("token", help="print a fresh access token from the running dev environment")
    token.add_argument(
        "--user",
        default=None,
        help=f"an email, or a name that becomes NAME@{LOCAL_EMAIL_DOMAIN}; created if missing; default: demo user",
    )
    token.set_defaults(func=cmd_token)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(func=cmd_migrate)

    reembed = commands.add_parser("reembed", help="re-embed items with the current embedding model")
    reembed.add_argument("--all", action="store_true", help="every ready item, not only other models' vectors")
    reembed.add_argument("--batch-size", type=_positive, default=None, help="items per transaction (default 128)")
    reembed.add_argument("--limit", type=_positive, default=None, help="stop after this many items")
    reembed.set_defaults(func=cmd_reembed)

    cleanup = commands.add_parser("cleanup", help="remove orphans, stale rows, deleted and expired failed items")
    cleanup.add_argument("--dry-run", action="store_true", help="report what would be removed; change nothing")
    cleanup.set_defaults(func=cmd_cleanup)

    retry = commands.add_parser("retry", help="retry a failed item")
    retry.add_argument("item_id", type=_uuid, metavar="ITEM_ID")
    retry.set_defaults(func=cmd_retry)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    # pgserver's platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
    from services.local.dev import DEMO_USER, DevError

    arguments = parser().parse_args(argv)
    if getattr(arguments, "user", "") is None:
        arguments.user = DEMO_USER
    try:
        return arguments.func(arguments)
    except (CommandError, DevError) as error:
        print(f"collections: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
