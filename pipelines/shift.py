"""The traffic shift: move a service's `live` alias to a new version step by step, watching alarms.

    resolve target -> lock -> for each step:
        provisioned concurrency READY? -> alarms? -> route weight
        -> bake, polling alarms and the canary's own figures, renewing the lock
        -> canary verdict for the step's window (too few invocations: wait or fail, as configured)
    -> alias on target, weights cleared -> stable version recorded -> unlock

An alarm in ALARM at any check rolls back (alias on the stable version, weights cleared) and ends
with RolledBack. So does a canary judged bad by its own version's metrics (pipelines/canary.py):
at any poll once it has enough invocations, and at the end of each step's bake. A re-run continues
from the alias's current weights. If the alias changes under a running shift (someone ran
`rollback` or `promote`), the shift stops without touching it again.
Ctrl-C releases the lock and says how to resume or roll back; the alias keeps its weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines import concurrency
from pipelines.canary import CanaryMetrics, CanaryThresholds, Verdict
from pipelines.clock import Clock
from pipelines.context import ServiceContext
from pipelines.errors import Interrupted, ReleaseError, RolledBack
from pipelines.lock import Lock
from pipelines.records import StableRecord
from pipelines.strategies import Step, Strategy
from pipelines.traffic import AliasState


@dataclass
class ShiftResult:
    service: str
    outcome: str  # completed | noop | dry-run
    stable: str
    target: str
    steps: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)  # the canary's verdict at the end of each step


class AliasChanged(ReleaseError):
    pass


class _RenewingClock:
    """The context's clock, renewing the lock after every wait (provisioned concurrency can take minutes)."""

    def __init__(self, clock: Clock, lock: Lock):
        self.clock, self.lock = clock, lock

    def now(self) -> float:
        return self.clock.now()

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)
        self.lock.renew()


class Shift:
    def __init__(self, ctx: ServiceContext, strategy: Strategy, *, to: str = "latest", poll_s: float = 30,
                 pc_timeout_s: float = 900, canary: CanaryThresholds | None = None):
        if poll_s <= 0:
            raise ReleaseError("--poll must be positive")
        self.ctx = ctx
        self.strategy = strategy
        self.to = to
        self.poll_s = poll_s
        self.pc_timeout_s = pc_timeout_s
        self.traffic = ctx.traffic
        self.name = ctx.service.name
        self._expected: AliasState | None = None
        self.canary = canary
        self._result: ShiftResult | None = None

    # -- planning --------------------------------------------------------------------------------
    def plan(self) -> tuple[AliasState, str, str, tuple[Step, ...]]:
        """(alias now, stable version, target version, steps still to do)."""
        alias = self.traffic.alias()
        target = self.traffic.resolve(self.to)
        canary = alias.canary
        if canary is not None:
            in_flight, weight = canary
            if in_flight != target:
                raise ReleaseError(
                    f"{self.name}: a shift to version {in_flight} is under way ({alias.describe()}); "
                    f"resume it with --to {in_flight}, or finish it with `promote` / undo it with `rollback` first"
                )
            return alias, alias.version, target, self.strategy.remaining(weight)
        if alias.version == target:
            return alias, alias.version, target, ()
        return alias, alias.version, target, self.strategy.steps

    # -- running ---------------------------------------------------------------------------------
    def run(self, dry_run: bool = False) -> ShiftResult:
        ctx, say = self.ctx, self.ctx.progress
        if ctx.service.release_mode != "gradual":
            raise ReleaseError(
                f"{self.name}: release_mode is 'direct' in this stack: `pulumi up` moves its alias; "
                "set the service's release mode to gradual to shift it with this tool"
            )
        alias, stable, target, steps = self.plan()
        result = ShiftResult(self.name, "completed", stable, target, [s.percent for s in steps])
        self._result = result
        if not steps:
            say(f"{self.name}: alias already on version {target}; nothing to shift")
            result.outcome = "noop"
            return result
        resumed = " (resuming)" if alias.canary else ""
        say(f"{self.name}: {ctx.service.function_name}:{ctx.service.alias_name} {alias.describe()} -> v{target} "
            f"with {self.strategy.text}{resumed}: " + " -> ".join(
                f"{s.percent}" + (f" ({s.bake_s:g}s)" if s.bake_s else "") for s in steps))
        if self.canary is not None:
            say(f"{self.name}: the canary is judged by its own figures: {self.canary.describe()}")
        if dry_run:
            result.outcome = "dry-run"
            return result

        lock = ctx.lock()
        lock.acquire(purpose=f"shift {self.name} to v{target} ({self.strategy.text})", target=target)
        try:
            self._record_initial_stable(stable)
            self._check_alarms(stable, target, before="before the first step")
            self._expected = alias
            for step in steps:
                self._wait_for_provisioned_concurrency(target, lock)
                self._check_unchanged()
                self._check_alarms(stable, target, before=f"before {step.percent}")
                self._expected = self.traffic.route(stable, target, step.weight)
                started = ctx.clock.now()
                say(f"{self.name}: {self._expected.describe()}")
                self._bake(step, stable, target, lock, started)
                self._await_metrics(step, stable, target, lock, started)
                self._settle(step, stable, target, lock, started)
            ctx.records.write(StableRecord(
                function=ctx.service.function_name, stable=target, previous=stable, at=ctx.clock.now(), by=lock.owner,
            ))
            say(f"{self.name}: done, version {target} is live and recorded as stable")
            return result
        except KeyboardInterrupt:
            now = self._safe_describe()
            raise Interrupted(
                f"{self.name}: interrupted with the alias at {now}; the lock is released.\n"
                f"  resume:   collections-release shift --stack {ctx.stack} --service {self.name} --to {target} "
                f"--strategy {self.strategy.text}\n"
                f"  rollback: collections-release rollback --stack {ctx.stack} --service {self.name}"
            ) from None
        finally:
            lock.release()

    def _bake(self, step: Step, stable: str, target: str, lock: Lock, started: float) -> None:
        clock = self.ctx.clock
        end = clock.now() + step.bake_s
        while clock.now() < end:
            clock.sleep(min(self.poll_s, end - clock.now()))
            lock.renew()
            self._check_unchanged()
            self._check_alarms(stable, target, before=f"while holding {step.percent}")
            verdict = self._judge(step, stable, target, started, before=f"while holding {step.percent}")
            left = max(0.0, end - clock.now())
            if left:
                canary = f", {verdict.outcome} ({verdict.canary.describe()})" if verdict else ""
                self.ctx.progress(
                    f"{self.name}: holding {step.percent} on v{target}, {left:.0f}s left, alarms OK{canary}")

    def _judge(self, step: Step, stable: str, target: str, started: float, before: str) -> Verdict | None:
        """The canary's own figures since the step began; a bad verdict rolls back at once."""
        if self.canary is None or step.weight >= 1:
            return None
        metrics = CanaryMetrics(self.ctx.cloudwatch, self.ctx.service.function_name, self.ctx.service.alias_name,
                                self.canary)
        verdict = metrics.verdict(stable, target, started, self.ctx.clock.now())
        if verdict.outcome == "bad":
            self._roll_back(stable, target, f"canary judged bad {before}", verdict.describe())
        return verdict

    def _await_metrics(self, step: Step, stable: str, target: str, lock: Lock, started: float) -> None:
        """Hold the step until the bake's last minutes are in CloudWatch, still polling alarms and the canary.

        Without it the step's verdict would be taken on a window whose last minutes have not been
        published yet: a canary that turns bad at the end of a step would look healthy, and the next
        step's window starts after those minutes, so they would never be judged.
        """
        if self.canary is None or step.weight >= 1 or not self.canary.metrics_delay_s:
            return
        clock = self.ctx.clock
        end = clock.now() + self.canary.metrics_delay_s
        self.ctx.progress(f"{self.name}: holding {step.percent} {self.canary.metrics_delay_s:g}s more for the "
                          "bake's last metrics to reach CloudWatch")
        while clock.now() < end:
            clock.sleep(min(self.poll_s, end - clock.now()))
            lock.renew()
            self._check_unchanged()
            self._check_alarms(stable, target, before=f"while holding {step.percent}")
            self._judge(step, stable, target, started, before=f"while holding {step.percent}")

    def _settle(self, step: Step, stable: str, target: str, lock: Lock, started: float) -> None:
        """The step's verdict: healthy goes on; too few invocations waits or fails, as configured."""
        if self.canary is None or step.weight >= 1:
            return
        clock, say = self.ctx.clock, self.ctx.progress
        verdict = self._judge(step, stable, target, started, before=f"after holding {step.percent}")
        give_up = clock.now() + self.canary.max_wait_minutes * 60
        while verdict is not None and verdict.outcome == "insufficient":
            if self.canary.on_insufficient_data == "fail" or clock.now() >= give_up:
                waited = "" if self.canary.on_insufficient_data == "fail" else \
                    f" after waiting {self.canary.max_wait_minutes:g} min"
                self._roll_back(stable, target, f"canary unproven at {step.percent}{waited}", verdict.describe())
            say(f"{self.name}: waiting at {step.percent} for the canary's invocations ({verdict.describe()})")
            clock.sleep(min(self.poll_s, max(0.0, give_up - clock.now())))
            lock.renew()
            self._check_unchanged()
            self._check_alarms(stable, target, before=f"while waiting at {step.percent}")
            verdict = self._judge(step, stable, target, started, before=f"while waiting at {step.percent}")
        if verdict is not None:
            say(f"{self.name}: {step.percent}: {verdict.describe()}")
            if self._result is not None:
                self._result.verdicts.append(f"{step.percent}: {verdict.describe()}")

    def _wait_for_provisioned_concurrency(self, target: str, lock: Lock) -> None:
        """Where the stack configures it, the next share of traffic goes to warm environments only."""
        if self.ctx.service.provisioned_concurrency > 0:
            concurrency.wait_before_shift(
                self.ctx.lambda_client, self.ctx.service.function_name, target, self.ctx.service.alias_name,
                _RenewingClock(self.ctx.clock, lock), poll_s=self.poll_s, timeout_s=self.pc_timeout_s,
                progress=self.ctx.progress,
            )

    def _record_initial_stable(self, stable: str) -> None:
        """The first shift of a function records what was live before it, so rollback has a target."""
        records, fn = self.ctx.records, self.ctx.service.function_name
        if records.read(fn) is None:
            records.write(StableRecord(function=fn, stable=stable, at=self.ctx.clock.now()))

    def _check_unchanged(self) -> None:
        if self._expected is None:
            return
        now = self.traffic.alias()
        if (now.version, now.weights) != (self._expected.version, self._expected.weights):
            raise AliasChanged(
                f"{self.name}: the alias changed under this shift (now {now.describe()}, expected "
                f"{self._expected.describe()}); someone else is moving it, so this shift stops here"
            )

    def _check_alarms(self, stable: str, target: str, before: str) -> None:
        firing = self.ctx.alarms.firing()
        if not firing:
            return
        reasons = "; ".join(f"{a.name}: {a.reason or a.state}" for a in firing)
        self._roll_back(stable, target, f"alarm {before}", reasons)

    def _roll_back(self, stable: str, target: str, why: str, details: str) -> None:
        self.traffic.point(stable)
        self.ctx.progress(f"{self.name}: {why}: rolled back to version {stable}")
        raise RolledBack(
            f"{self.name}: {why} -> rolled back to version {stable} (version {target} not released). {details}"
        )

    def _safe_describe(self) -> str:
        try:
            return self.traffic.alias().describe()
        except Exception:  # the interruption message must not fail on a second error
            return "(unknown)"
