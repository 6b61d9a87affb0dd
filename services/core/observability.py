"""Logs and metrics of a Lambda function, through aws-lambda-powertools: one structured log shape per
function, with `cold_start` and the executed `function_version`, and stage outcomes as CloudWatch
metrics in embedded metric format (EMF).

A handler module:

    from services.core.observability import for_function

    observe = for_function("analyzer")        # at import (cold start); also checks the environment

    @observe.handler
    def handler(event, context): ...

`for_function(name)` checks the function's environment (services/core/environment.py: on AWS a missing
variable fails the cold start, naming it), records `name` as the function this process runs (on Lambda
`services.core.settings.get_settings()` then returns that function's own settings class, so a handler
module calls it before importing anything that reads settings) and makes its powertools `Logger` (service=name); its
`Metrics` (namespace `COLLECTIONS_METRICS_NAMESPACE`, from the function's settings class) is made on
first use. `observe.handler` wraps the handler:
- `Logger.inject_lambda_context`: every line carries cold_start, function_name, function_arn,
  function_request_id, function_memory_size, plus `function_version` (the version that ran: during a
  weighted alias shift this tells blue from green and a canary from stable);
- on AWS Lambda, `Metrics.log_metrics` (flushes metrics added during the invocation) and a ColdStart
  metric on the first invocation of the process, emitted before it runs so that it counts even when that
  invocation fails (powertools' `capture_cold_start_metric` adds it only after a handler returned), and
  the stdlib loggers under `services` (the logic modules log with `logging.getLogger(__name__)`) are
  given the same powertools handler and formatter (`copy_config_to_registered_loggers`), so the log
  group holds one JSON shape;
- without a Lambda context (None or a stub: the API's init probe, tests calling handlers directly)
  the handler runs as it is. Off AWS (`make dev`, tests, benchmarks) stdlib logging stays as the
  program configured it and no EMF is printed;
- on an on-demand cold start the cyclic garbage collector, paused by `for_function` at the handler
  module's import, is back on (init's objects frozen) once the first event's imports are done, at the
  latest when the first invocation ends (services/core/coldstart.py).

`for_function` also registers the SnapStart hooks every function needs (services/core/snapstart.py): a
function with `snapStart: true` closes its connections before the snapshot and renews its state after
each restore, whichever handler module it runs.

Stage outcomes, for the stage runner (`for_function(name)` returns the same object on every call):

    observe = for_function("analyzer")
    outcome = observe.stage("analyze", lambda: work(item))   # runs work, records and logs its outcome
    observe.record_outcome("analyze", "skipped")            # or record a result directly

`stage(stage_name, work)` calls `work()`, which returns an outcome with a `result` attribute (or a
dict with a "result" key; `as_dict()` is logged when it has one), records one EMF metric named by
`OUTCOME_METRICS[result]` with dimensions {service, stage} and value 1, logs "stage outcome", and
returns the outcome. An exception from `work` propagates untouched (Lambda's Errors metric counts it).
A result missing from `OUTCOME_METRICS` raises `UnknownOutcome` (fail closed: a new result needs its
metric, and the dashboard its line, before it can ship).
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, get_args

from services.core import coldstart
from services.core.environment import on_aws_lambda, require_for_function, set_current_function

Result = Literal["processed", "analyzed", "ready", "duplicate", "skipped", "refused", "failed"]
# A stage's result → its metric (Count). Closed: tests/infra checks the dashboard shows each one.
OUTCOME_METRICS: Mapping[str, str] = {
    "processed": "Processed",  # thumbnails made
    "analyzed": "Analyzed",  # described by the model
    "ready": "Ready",  # embedded: searchable
    "duplicate": "Duplicate",  # the owner already has this image
    "skipped": "Skipped",  # redelivery, another delivery at work, item gone or in another status
    "refused": "Refused",  # an upload that is not a valid image for its item (removed)
    "failed": "Failed",  # permanent failure: the item is marked failed with a reason
}
assert set(OUTCOME_METRICS) == set(get_args(Result))
STAGE_DIMENSIONS = ("service", "stage")
LOGGED_TREE = "services"  # stdlib loggers routed through the function's powertools handler on Lambda

T = TypeVar("T")


class UnknownOutcome(ValueError):
    """A stage returned a result that has no metric."""


def metric_name(result: str) -> str:
    try:
        return OUTCOME_METRICS[result]
    except KeyError:
        raise UnknownOutcome(
            f"stage result {result!r} has no metric; add it to OUTCOME_METRICS "
            f"(services/core/observability.py): {', '.join(OUTCOME_METRICS)}"
        ) from None


def _is_lambda_context(context: Any) -> bool:
    return context is not None and hasattr(context, "aws_request_id") and hasattr(context, "function_name")


class FunctionObservability:
    """A function's powertools Logger and Metrics, its handler decorator and stage-outcome metrics."""

    def __init__(self, name: str, namespace: str | None = None):
        from aws_lambda_powertools import Logger

        self.name, self._namespace = name, namespace
        self.logger = Logger(service=name)
        self._metrics: Any = None
        self._routed = False
        self._lock = threading.Lock()

    @property
    def namespace(self) -> str:
        if self._namespace is None:
            from services.core.settings import settings_for  # pydantic-settings: not at cold import

            self._namespace = settings_for(self.name).metrics_namespace
        return self._namespace

    @property
    def metrics(self) -> Any:
        """The function's powertools Metrics (EMF)."""
        if self._metrics is None:
            from aws_lambda_powertools import Metrics

            self._metrics = Metrics(namespace=self.namespace, service=self.name)
        return self._metrics

    # --- the handler ------------------------------------------------------------------------
    def handler(self, fn: Callable[[Any, Any], T]) -> Callable[..., T]:
        """Decorate a Lambda handler: logging context (cold start, executed version) and metrics."""

        def with_version(event: Any, context: Any) -> T:
            self.logger.append_keys(function_version=getattr(context, "function_version", None))
            return fn(event, context)

        logged = self.logger.inject_lambda_context(with_version)
        measured: list[Callable[[Any, Any], T]] = []

        @functools.wraps(fn)
        def run(event: Any, context: Any = None) -> T:
            try:
                return invoke(event, context)
            finally:
                coldstart.init_over()  # at the latest when the first invocation ends (e.g. it failed first)

        def invoke(event: Any, context: Any) -> T:
            if not _is_lambda_context(context):
                return fn(event, context)
            if not on_aws_lambda():
                return logged(event, context)
            self.route_stdlib_logs()
            if not measured:
                # Not capture_cold_start_metric: powertools adds ColdStart only after the handler returned,
                # so a first invocation that raised went uncounted (and a later one was counted instead).
                measured.append(self.metrics.log_metrics(logged))
            self.count_cold_start(context)
            with warnings.catch_warnings():
                # An invocation without a stage outcome (the API, cleanup) has only the ColdStart metric.
                warnings.filterwarnings("ignore", message="No application metrics to publish")
                return measured[0](event, context)

        return run

    def count_cold_start(self, context: Any) -> None:
        """The ColdStart metric, once per process, before the first invocation runs: it counts whatever that
        invocation's outcome. powertools' own flag says whether this is a cold start (not under provisioned
        concurrency), as for the log lines' cold_start key."""
        from aws_lambda_powertools.metrics.provider import cold_start

        with self._lock:
            if not cold_start.is_cold_start:
                return
            cold_start.is_cold_start = False
        self.metrics.provider.add_cold_start_metric(context=context)

    def route_stdlib_logs(self) -> None:
        """Give the `services` stdlib loggers this Logger's handler and formatter (once)."""
        with self._lock:
            if self._routed:
                return
            from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

            logging.getLogger(LOGGED_TREE)  # registered, so powertools finds it (children propagate to it)
            copy_config_to_registered_loggers(source_logger=self.logger, include={LOGGED_TREE})
            self._routed = True

    # --- stage outcomes ---------------------------------------------------------------------
    def stage(self, stage_name: str, work: Callable[[], T]) -> T:
        """Run one stage's work; record and log its outcome; return it."""
        outcome = work()
        result = outcome["result"] if isinstance(outcome, Mapping) else outcome.result  # type: ignore[attr-defined]
        self.record_outcome(stage_name, result)
        details = outcome if isinstance(outcome, Mapping) else getattr(outcome, "as_dict", lambda: {})()
        self.logger.info("stage outcome", extra={**details, "stage": stage_name, "result": result})
        return outcome

    def record_outcome(self, stage_name: str, result: str) -> None:
        """One EMF metric `OUTCOME_METRICS[result]` = 1 with dimensions {service, stage} (on AWS Lambda)."""
        name = metric_name(result)  # fails closed everywhere, not only on AWS
        if not on_aws_lambda():
            return
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=self.namespace) as metric:
            metric.add_dimension(name="service", value=self.name)
            metric.add_dimension(name="stage", value=stage_name)


@functools.cache
def for_function(name: str) -> FunctionObservability:
    """The function's observability, one per process (the stage runner may ask again); checks the
    function's environment first (MissingSettings on AWS, at cold start). On Lambda the `services` stdlib
    loggers are routed at once, so what they log during init has the function's shape too. Records the
    function as the process's own: on Lambda `get_settings()` returns its settings class."""
    coldstart.pause_collector()  # on-demand: until the first event's imports are done (long-lived objects only)
    from services.core import snapstart  # noqa: F401  (registers the runtime hooks every function needs)

    require_for_function(name)
    set_current_function(name)
    observe = FunctionObservability(name)
    if on_aws_lambda():
        observe.route_stdlib_logs()
    return observe

