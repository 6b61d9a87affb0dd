"""`collections-release`: release and roll back Collections' services with one command each.

    collections-release status   [--service S] [--json]
    collections-release shift    --service S [--to VERSION|latest] [--strategy STRATEGY] [--poll S] [--dry-run]
    collections-release rollback --service S
    collections-release promote  --service S
    collections-release prune    --service S --keep N [--slot blue|green] [--dry-run]
    collections-release flip     --service S (--to blue|green [--version N] | --back)
    collections-release guard    PREVIEW.json [--allow URN_OR_NAME ...] [--allow-file FILE] [--outputs FILE]

Every command but guard reads the stack outputs (guard only with --outputs/--stack): --outputs FILE,
COLLECTIONS_STACK_OUTPUTS, or `pulumi stack output --json --stack S`. Exit codes are in pipelines/errors.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from pipelines import errors
from pipelines.errors import ReleaseError
from pipelines.strategies import USAGE, StrategyError
from pipelines.strategies import parse as parse_strategy


def _say(message: str) -> None:
    print(message, flush=True)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack", help="Pulumi stack (dev, prod, org/prod)")
    common.add_argument("--outputs", metavar="FILE", help="the stack outputs as JSON (`pulumi stack output --json`)")

    parser = argparse.ArgumentParser(
        prog="collections-release",
        description="Release, roll back and inspect Collections' Lambda aliases; guard Pulumi previews.",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 rolled back by an alarm, 4 not found, 5 lock held, "
        "6 no credentials, 7 throttled, 8 preview blocked, 9 smoke test failed, 10 AWS unreachable, "
        "130 interrupted, 141 output pipe closed.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    status = commands.add_parser("status", parents=[common], help="aliases, versions, alarms, locks")
    status.add_argument("--service", help="one service (default: all)")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    shift = commands.add_parser("shift", parents=[common], help="move the live alias to a new version by steps")
    shift.add_argument("--service", required=True, help="a service, or 'all' (every gradual service)")
    shift.add_argument("--to", default="latest", help="version number or 'latest' (default)")
    shift.add_argument("--strategy", help=f"{USAGE} (default: the stack's releaseSteps/releaseStepMinutes)")
    shift.add_argument("--poll", type=float, default=30.0, help="seconds between alarm checks (default 30)")
    shift.add_argument("--lock-ttl", type=float, default=900.0, help="seconds a lock lives unless renewed")
    shift.add_argument("--pc-timeout", type=float, default=900.0,
                       help="seconds to wait for provisioned concurrency to be READY")
    shift.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")

    rollback = commands.add_parser("rollback", parents=[common], help="alias back on the last stable version")
    rollback.add_argument("--service", required=True)

    promote = commands.add_parser("promote", parents=[common], help="finish a shift under way now")
    promote.add_argument("--service", required=True)

    prune = commands.add_parser("prune", parents=[common], help="delete old, unreferenced versions")
    prune.add_argument("--service", required=True)
    prune.add_argument("--keep", type=int, required=True, help="newest versions to keep in any case")
    prune.add_argument("--slot", choices=("blue", "green"), help="default: the active slot")
    prune.add_argument("--dry-run", action="store_true")

    flip = commands.add_parser("flip", parents=[common],
                               help="prepare the idle slot (version, provisioned concurrency, smoke), then make it "
                               "active; --back returns to the other slot as it was left")
    flip.add_argument("--service", required=True)
    where = flip.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", choices=("blue", "green"), help="the slot to make active")
    where.add_argument("--back", action="store_true", help="return consumers to the other (previous) slot")
    flip.add_argument("--version", default="latest", help="the version the slot's alias should serve (default latest)")
    flip.add_argument("--pc-timeout", type=float, default=900.0,
                      help="seconds to wait for provisioned concurrency to be READY")

    guard = commands.add_parser("guard", parents=[common],
                                help="fail a `pulumi preview --json` that replaces consumed resources or, with the "
                                "stack outputs, moves a gradual service's live alias off what AWS runs")
    guard.add_argument("preview", metavar="PREVIEW.json")
    guard.add_argument("--allow", action="append", default=[], metavar="URN_OR_NAME",
                       help="a URN (glob allowed) or resource name that may be replaced (repeatable)")
    guard.add_argument("--allow-file", metavar="FILE", help="more --allow entries, one per line (# comments)")
    return parser


def _outputs(args: argparse.Namespace):
    from pipelines import outputs
    from services.core.settings import ReleaseSettings

    return outputs.load(args.outputs, args.stack, ReleaseSettings().stack_outputs)


def _context(args: argparse.Namespace, stack_outputs, service, **options: Any):
    from pipelines.context import for_service

    return for_service(stack_outputs, service, progress=_say, **options)


def _status(args: argparse.Namespace) -> int:
    from pipelines.status import service_status, table

    stack_outputs = _outputs(args)
    rows = []
    for service in stack_outputs.select(args.service):
        try:
            rows.append(service_status(_context(args, stack_outputs, service)))
        except (errors.NotFound, errors.CredentialsMissing, errors.Throttled) as error:
            if args.service not in (None, "all") or not isinstance(error, errors.NotFound):
                raise
            rows.append({"service": service.name, "error": str(error)})  # one broken service, not the report
    if args.json:
        print(json.dumps({"stack": stack_outputs.stack, "services": rows}, indent=2))
    else:
        print(f"stack {stack_outputs.stack} ({stack_outputs.region})")
        print(table(rows))
    return errors.EXIT_OK


def _shift(args: argparse.Namespace) -> int:
    from pipelines.shift import Shift

    stack_outputs = _outputs(args)
    strategy_text = args.strategy
    if strategy_text is None:
        if stack_outputs.release is None:
            raise StrategyError("give --strategy: the stack's outputs carry no default release")
        strategy_text = stack_outputs.release.strategy
        _say(f"strategy from the stack's config: {strategy_text}")
    strategy = parse_strategy(strategy_text)
    services = stack_outputs.select(args.service)
    if args.service == "all":
        skipped = [s.name for s in services if s.release_mode != "gradual"]
        services = [s for s in services if s.release_mode == "gradual"]
        if skipped:
            _say(f"direct release mode (pulumi up moves their alias), skipped: {', '.join(skipped)}")
    for service in services:
        ctx = _context(args, stack_outputs, service, lock_ttl_s=args.lock_ttl)
        Shift(ctx, strategy, to=args.to, poll_s=args.poll, pc_timeout_s=args.pc_timeout,
              canary=stack_outputs.canary_for(service)).run(dry_run=args.dry_run)
    return errors.EXIT_OK


def _rollback(args: argparse.Namespace) -> int:
    from pipelines.rollback import rollback

    stack_outputs = _outputs(args)
    rollback(_context(args, stack_outputs, stack_outputs.service(args.service)))
    return errors.EXIT_OK


def _promote(args: argparse.Namespace) -> int:
    from pipelines.rollback import promote

    stack_outputs = _outputs(args)
    promote(_context(args, stack_outputs, stack_outputs.service(args.service)))
    return errors.EXIT_OK


def _prune(args: argparse.Namespace) -> int:
    from pipelines.prune import prune

    stack_outputs = _outputs(args)
    prune(_context(args, stack_outputs, stack_outputs.service(args.service)), args.keep, args.slot, args.dry_run)
    return errors.EXIT_OK


def _flip(args: argparse.Namespace) -> int:
    from pipelines.context import aws_clients
    from pipelines.flip import LambdaInvoker, default_configurator, flip

    stack_outputs = _outputs(args)
    service = stack_outputs.service(args.service)
    lambda_client = aws_clients(stack_outputs)["lambda_client"]
    to = service.idle_slot if args.back else args.to
    configurator = default_configurator(stack_outputs.stack, _say)
    result = flip(stack_outputs, service, to, LambdaInvoker(lambda_client), configurator, _say,
                  lambda_client=lambda_client, version=args.version, back=args.back, pc_timeout_s=args.pc_timeout)
    if result.outcome == "commands":
        print(json.dumps(asdict(result), indent=2))
    return errors.EXIT_OK


def _guard(args: argparse.Namespace) -> int:
    from pipelines.guard import NoStackOutputs, StackLiveAliases, check_file, enforce, read_allow_file

    allow = args.allow + (read_allow_file(args.allow_file) if args.allow_file else [])
    live = None
    if args.outputs or args.stack:  # then also: would an update move a gradual alias off what AWS runs?
        from pipelines import outputs
        from pipelines.context import aws_clients

        stack_outputs = outputs.load_unless_new(args.outputs, args.stack)
        if stack_outputs is None:
            print("preview guard: the stack has no outputs yet (a new stack): no live alias to compare with")
            live = NoStackOutputs()
        else:
            live = StackLiveAliases(stack_outputs, aws_clients(stack_outputs)["lambda_client"])
    report = check_file(args.preview, allow, live)
    enforce(report)
    print(report.render())
    return errors.EXIT_OK


HANDLERS = {"status": _status, "shift": _shift, "rollback": _rollback, "promote": _promote, "prune": _prune,
            "flip": _flip, "guard": _guard}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code = HANDLERS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at exit
        return code
    except BrokenPipeError:
        # `status --json | head`: the reader left. Python's documented recipe: point stdout at
        # devnull so the interpreter's final flush does not fail again, and exit quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return errors.EXIT_BROKEN_PIPE
    except StrategyError as error:
        print(f"collections-release: error: {error}", file=sys.stderr)
        return errors.EXIT_USAGE
    except ReleaseError as error:
        print(f"collections-release {args.command}: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"collections-release {args.command}: interrupted", file=sys.stderr)
        return errors.EXIT_INTERRUPTED
    except Exception as error:
        # An AWS failure outside the places that translate their own (a transport error while a
        # client is made, say) still gets one line; anything else is a bug and keeps its traceback.
        translated = errors.translate(error, args.command)
        if translated is None:
            raise
        print(f"collections-release {args.command}: {translated}", file=sys.stderr)
        return translated.exit_code
