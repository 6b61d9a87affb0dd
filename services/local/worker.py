"""The local stand-in for Lambda's event invocations: polls each wired function's SQS queue and
calls the catalog handler with the delivered EventBridge event.

Retry semantics follow SQS: a handler that raises leaves its message in the queue, which comes
back after the queue's visibility timeout; after `maxReceiveCount` receives moto's redrive moves it
to the dead-letter queue. A handler that returns normally (including after marking an item
failed: a permanent error) has its message deleted. The worker itself never dies of a handler.

Two ways to run it:
  - `start()`/`stop()`: one polling thread per function plus a scheduler thread (`make dev`);
  - `drain(timeout)`: process on the calling thread until every queue is empty (tests, demo, bench).
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.core.settings import Settings, get_settings
from services.local.runtime import FunctionQueue, Wiring

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
LOCAL_ACCOUNT = "123456789012"  # moto's default account

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int:
    """Seconds between firings of an EventBridge `rate(...)` expression; ValueError otherwise."""
    match = _RATE.match(expression.strip())
    if not match:
        raise ValueError(
            f"unsupported schedule {expression!r}: the local scheduler understands rate(N minute[s]|hour[s]|day[s])"
        )
    value, unit = int(match.group(1)), match.group(2).rstrip("s")
    if value < 1:
        raise ValueError(f"schedule {expression!r} must have a positive rate")
    return value * _UNIT_SECONDS[unit]


def scheduled_event(rule_arn: str, region: str, now: datetime | None = None) -> dict[str, Any]:
    """The event EventBridge Scheduler sends for a schedule rule (AWS's shape)."""
    now = now or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": LOCAL_ACCOUNT,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


@dataclass
class LocalContext:
    """The parts of Lambda's context object handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_s: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))


@dataclass
class FunctionStats:
    succeeded: int = 0
    failed: int = 0  # failed invocations (each retry counts)
    last_error: str | None = None


class Worker:
    def __init__(
        self,
        wiring: Wiring,
        settings: Settings | None = None,
        *,
        handlers: Mapping[str, Handler] | None = None,
        batch_size: int = 10,
        poll_wait_s: int = 1,
    ):
        """`handlers` overrides the catalog's handler per function name (tests)."""
        from services.core.aws import client

        self.wiring = wiring
        self.settings = settings or get_settings()
        self.sqs = client("sqs", self.settings)
        self.batch_size = batch_size
        self.poll_wait_s = poll_wait_s
        self.stats = {name: FunctionStats() for name in wiring.functions}
        self._handlers: dict[str, Handler] = dict(handlers or {})
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # When the last message a handler failed becomes visible again (monotonic time): drain() does not
        # end before it, whatever the queue's message counts say meanwhile.
        self._retry_due = 0.0

    # --- invoking ---------------------------------------------------------------------------
    def handler_for(self, function_name: str) -> Handler:
        with self._lock:
            handler = self._handlers.get(function_name)
        if handler is None:
            function = self.wiring.queue(function_name).function
            handler = getattr(importlib.import_module(function.module), function.attribute)
            with self._lock:
                self._handlers[function_name] = handler
        return handler

    def _context(self, queue: FunctionQueue) -> LocalContext:
        function = queue.function
        name = f"collections-local-{function.name.replace('_', '-')}"
        return LocalContext(
            function_name=name,
            memory_limit_in_mb=function.memory_mb,
            invoked_function_arn=f"arn:aws:lambda:{self.settings.aws_region}:{LOCAL_ACCOUNT}:function:{name}:live",
            timeout_s=function.timeout_s,
        )

    def _deliver(self, queue: FunctionQueue, message: dict[str, Any]) -> bool:
        name = queue.function.name
        attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        try:
            event = json.loads(message["Body"])
            self.handler_for(name)(event, self._context(queue))
        except Exception as error:
            with self._lock:
                self.stats[name].failed += 1
                self.stats[name].last_error = f"{type(error).__name__}: {error}"
                self._retry_due = max(self._retry_due, time.monotonic() + queue.visibility_timeout_s)
            if attempt >= queue.max_receive_count:
                log.exception(
                    "%s failed (attempt %d of %d); the event goes to the dead-letter queue %s",
                    name, attempt, queue.max_receive_count, queue.dlq_url,
                )  # fmt: skip
            else:
                # Usually transient (that is why it raised): one line, the traceback only on the last attempt.
                log.warning(
                    "%s failed (attempt %d of %d): %s: %s; retried in %ss",
                    name, attempt, queue.max_receive_count, type(error).__name__, error, queue.visibility_timeout_s,
                )  # fmt: skip
            return False
        self.sqs.delete_message(QueueUrl=queue.queue_url, ReceiptHandle=message["ReceiptHandle"])
        with self._lock:
            self.stats[name].succeeded += 1
        return True

    def poll_once(self, function_name: str, wait_s: int = 0) -> int:
        """Receive one batch for the function and invoke its handler on each message."""
        queue = self.wiring.queue(function_name)
        response = self.sqs.receive_message(
            QueueUrl=queue.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_s,
            AttributeNames=["ApproximateReceiveCount"],
        )
        messages = response.get("Messages", [])
        for message in messages:
            self._deliver(queue, message)
        return len(messages)

    def trigger_schedule(self, function_name: str) -> int:
        """Send each of the function's schedule rules' events to its queue, as EventBridge would."""
        queue = self.wiring.queue(function_name)
        sent = 0
        for rule in queue.rules:
            if rule.schedule_expression is not None:
                event = scheduled_event(queue.rule_arns[rule.name], self.settings.aws_region)
                self.sqs.send_message(QueueUrl=queue.queue_url, MessageBody=json.dumps(event))
                sent += 1
        return sent

    # --- draining (deterministic) -----------------------------------------------------------
    def pending(self) -> dict[str, int]:
        """Messages per function still in its queue: visible, in flight (awaiting retry) or delayed."""
        counts = {}
        names = (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        )
        for name, queue in self.wiring.functions.items():
            attributes = self.sqs.get_queue_attributes(QueueUrl=queue.queue_url, AttributeNames=list(names))
            counts[name] = sum(int(attributes["Attributes"].get(n, 0)) for n in names)
        return counts

    def dead_letters(self, function_name: str) -> list[dict[str, Any]]:
        """The events in the function's DLQ (read without consuming them for long)."""
        queue = self.wiring.queue(function_name)
        response = self.sqs.receive_message(QueueUrl=queue.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [json.loads(m["Body"]) for m in response.get("Messages", [])]

    def drain(self, timeout: float = 60.0) -> dict[str, FunctionStats]:
        """Process until every queue is empty, retries included. TimeoutError if it never is."""
        deadline = time.monotonic() + timeout
        while True:
            received = sum(self.poll_once(name) for name in self.wiring.functions)
            if received == 0:
                pending = self.pending()
                # A failed message comes back after its visibility timeout (or goes to the DLQ on that
                # receive): the counts alone have been seen at zero under load while one was in flight.
                if not any(pending.values()) and time.monotonic() > self._retry_due:
                    return self.stats
                if time.monotonic() > deadline:
                    raise TimeoutError(f"queues still hold messages after {timeout}s: {pending}")
                time.sleep(0.05)  # messages in flight: wait for their visibility timeout
            elif time.monotonic() > deadline:
                raise TimeoutError(f"queues still busy after {timeout}s: {self.pending()}")

    # --- background threads (make dev) ------------------------------------------------------
    def _poll_loop(self, function_name: str) -> None:
        while not self._stopping.is_set():
            try:
                self.poll_once(function_name, wait_s=self.poll_wait_s)
            except Exception:
                if self._stopping.is_set():
                    return
                log.exception("polling %s failed; retrying in 1s", function_name)
                self._stopping.wait(1.0)

    def _schedule_loop(self) -> None:
        periods: dict[str, int] = {}
        for name, queue in self.wiring.functions.items():
            for rule in queue.rules:
                if rule.schedule_expression is None:
                    continue
                try:
                    periods[name] = rate_seconds(rule.schedule_expression)
                except ValueError as error:
                    log.warning("%s: %s; it will not fire locally", name, error)
        next_fire = {name: time.monotonic() + period for name, period in periods.items()}
        while next_fire and not self._stopping.is_set():
            name = min(next_fire, key=next_fire.__getitem__)
            if self._stopping.wait(max(0.0, next_fire[name] - time.monotonic())):
                return
            try:
                self.trigger_schedule(name)
            except Exception:
                log.exception("could not fire the schedule of %s", name)
            next_fire[name] += periods[name]

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("worker already started")
        self._stopping.clear()
        for name in self.wiring.functions:
            self._threads.append(threading.Thread(target=self._poll_loop, args=(name,), name=f"worker-{name}"))
        self._threads.append(threading.Thread(target=self._schedule_loop, name="worker-schedules"))
        for thread in self._threads:
            thread.daemon = True  # never keep the process alive on its own
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
