"""Observability on Lambda: one JSON log shape per function (powertools and stdlib records alike) with
cold_start and the executed function_version, and stage outcomes as EMF metrics."""

from __future__ import annotations

import functools
import io
import json
import logging

import pytest

from services.core import observability
from services.core.observability import OUTCOME_METRICS, FunctionObservability, UnknownOutcome
from services.core.pipeline_store import Outcome
from services.core.settings import settings_for

# What every line of a function's log group carries (besides the message's own extra keys).
SHAPE = {"level", "location", "message", "timestamp", "service", "name", "cold_start", "function_name",
         "function_arn", "function_request_id", "function_memory_size", "function_version"}


class FakeLambdaContext:
    function_name = "collections-test-cleanup-green"
    function_version = "7"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:collections-test-cleanup-green:live"
    memory_limit_in_mb = 512
    log_group_name = "/aws/lambda/collections-test-cleanup-green"
    log_stream_name = "stream"

    def __init__(self, request_id: str):
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture
def cold_process(monkeypatch):
    """A process that has not been invoked yet (powertools keeps cold start in module globals)."""
    from aws_lambda_powertools.logging import logger as powertools_logger
    from aws_lambda_powertools.metrics.provider import cold_start

    monkeypatch.setattr(powertools_logger, "is_cold_start", True)
    monkeypatch.setattr(cold_start, "is_cold_start", True)


@pytest.fixture
def services_logger_restored():
    tree = logging.getLogger(observability.LOGGED_TREE)
    saved = (tree.handlers[:], tree.propagate, tree.level)
    yield
    tree.handlers, tree.propagate = saved[0], saved[1]
    tree.setLevel(saved[2])


@pytest.fixture
def cleanup_on_lambda(monkeypatch, cold_process, services_logger_restored):
    """The cleanup handler as Lambda runs it, its logic stubbed with one stdlib log line; its log output."""
    import services.cleanup.logic
    from services.cleanup import handler as module

    def run(dry_run: bool) -> dict:
        logging.getLogger("services.cleanup.logic").info("removed what was due")
        return {"orphans": 0, "failed": 1, "dry_run": dry_run}

    monkeypatch.setattr(services.cleanup.logic, "run", run)
    for name, value in {"AWS_LAMBDA_FUNCTION_NAME": FakeLambdaContext.function_name,
                        "COLLECTIONS_DATABASE_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:db",
                        "COLLECTIONS_BUCKET": "collections-test-bucket",
                        "COLLECTIONS_METRICS_NAMESPACE": "Collections/test"}.items():
        monkeypatch.setenv(name, value)
    for attribute, value in {"_routed": False, "_metrics": None, "_namespace": None}.items():
        monkeypatch.setattr(module.observe, attribute, value)
    settings_for.cache_clear()
    stream = io.StringIO()
    previous = module.observe.logger.registered_handler.setStream(stream)
    yield module.handler, stream
    module.observe.logger.registered_handler.setStream(previous)
    settings_for.cache_clear()


def test_every_line_of_an_invocation_has_one_shape_with_cold_start_and_version(cleanup_on_lambda, capsys):
    handler, stream = cleanup_on_lambda
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    handler(event, FakeLambdaContext("first"))
    handler(event, FakeLambdaContext("second"))
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]

    assert [(line["function_request_id"], line["name"]) for line in lines] == [
        ("first", "services.cleanup.logic"), ("first", "cleanup"),
        ("second", "services.cleanup.logic"), ("second", "cleanup"),
    ]
    for line in lines:
        assert set(line) >= SHAPE, SHAPE - set(line)
        assert line["function_version"] == "7" and line["service"] == "cleanup"
    stdlib_line, powertools_line = lines[0], lines[1]
    assert set(stdlib_line) == set(powertools_line) - {"orphans", "failed", "dry_run", "trigger"}
    assert [line["cold_start"] for line in lines] == [True, True, False, False]

    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [(m["_aws"]["CloudWatchMetrics"][0]["Namespace"], m["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"])
            for m in metrics] == [("Collections/test", "ColdStart")]  # once: the first invocation only


def emf_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]


def test_a_stage_outcome_is_an_emf_metric_with_the_service_and_stage(monkeypatch, capsys):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "collections-test-analyzer-blue")
    observe = FunctionObservability("analyzer", "Collections/test")
    outcome = observe.stage("analyze", lambda: Outcome(None, "failed", "the model refused the image"))
    assert outcome.result == "failed"

    (blob,) = emf_lines(capsys.readouterr().out)
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Collections/test"
    assert [sorted(dimensions) for dimensions in directive["Dimensions"]] == [["service", "stage"]]
    assert directive["Metrics"] == [{"Name": "Failed", "Unit": "Count"}]
    assert (blob["Failed"], blob["service"], blob["stage"]) == ([1.0], "analyzer", "analyze")


def test_an_unknown_result_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "collections-test-analyzer-blue")
    observe = FunctionObservability("analyzer", "Collections/test")
    with pytest.raises(UnknownOutcome, match="'exploded' has no metric"):
        observe.stage("analyze", lambda: Outcome(None, "exploded"))
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    with pytest.raises(UnknownOutcome):  # locally too: a test catches it before a deploy
        observe.record_outcome("analyze", "exploded")
    assert emf_lines(capsys.readouterr().out) == []


def test_off_lambda_no_metrics_are_printed(monkeypatch, capsys):
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    observe = FunctionObservability("analyzer", "Collections/test")
    observe.stage("analyze", lambda: {"result": "analyzed", "item_id": None})
    assert emf_lines(capsys.readouterr().out) == []


def test_every_result_a_stage_can_return_has_a_metric():
    from typing import get_args

    assert set(get_args(observability.Result)) == set(OUTCOME_METRICS)
    assert len(set(OUTCOME_METRICS.values())) == len(OUTCOME_METRICS)


def test_on_lambda_the_services_loggers_take_the_functions_shape_at_init(monkeypatch, services_logger_restored):
    for name, value in {"AWS_LAMBDA_FUNCTION_NAME": "collections-test-migrate-blue", "DATABASE_URL": "postgresql://h/db",
                        "COLLECTIONS_METRICS_NAMESPACE": "Collections/test"}.items():
        monkeypatch.setenv(name, value)
    # a process of its own: the handler modules' objects stay the ones other tests see
    for_function = functools.cache(observability.for_function.__wrapped__)
    observe = for_function("migrate")
    assert for_function("migrate") is observe  # the stage runner gets the same one
    tree = logging.getLogger(observability.LOGGED_TREE)
    assert tree.handlers == [observe.logger.registered_handler] and tree.propagate is False


def test_the_api_handler_answers_through_the_whole_decorator_on_lambda(monkeypatch, cold_process,
                                                                        services_logger_restored, capsys):
    """Mangum behind inject_lambda_context and log_metrics: the request is answered, the ColdStart
    metric is flushed, and an invocation without stage outcomes warns about nothing."""
    import warnings

    from services.api import handler as module
    from tests.services.api.lambda_events import LambdaContext, http_api_event

    for name, value in {"AWS_LAMBDA_FUNCTION_NAME": LambdaContext.function_name,
                        "COLLECTIONS_METRICS_NAMESPACE": "Collections/test"}.items():
        monkeypatch.setenv(name, value)
    for attribute, value in {"_routed": False, "_metrics": None, "_namespace": "Collections/test"}.items():
        monkeypatch.setattr(module.observe, attribute, value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = module.handler(http_api_event("GET", "/_init_probe"), LambdaContext())
        second = module.handler(http_api_event("GET", "/_init_probe"), LambdaContext())
    assert first["statusCode"] == second["statusCode"] == 404
    names = [m["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] for m in emf_lines(capsys.readouterr().out)]
    assert names == ["ColdStart"]


def test_a_first_invocation_that_fails_is_still_the_cold_start(cleanup_on_lambda, monkeypatch, capsys):
    """ColdStart counts the process's first invocation whatever its outcome, and only that one."""
    import services.cleanup.logic

    handler, stream = cleanup_on_lambda
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    succeed = services.cleanup.logic.run

    def fail(dry_run: bool) -> dict:
        raise RuntimeError("the database is down")

    monkeypatch.setattr(services.cleanup.logic, "run", fail)
    with pytest.raises(RuntimeError, match="the database is down"):
        handler(event, FakeLambdaContext("first"))
    first = [m["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] for m in emf_lines(capsys.readouterr().out)]
    assert first == ["ColdStart"]

    monkeypatch.setattr(services.cleanup.logic, "run", succeed)
    handler(event, FakeLambdaContext("second"))
    handler(event, FakeLambdaContext("third"))
    assert emf_lines(capsys.readouterr().out) == []  # the second invocation is not a cold start
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["function_request_id"], line["cold_start"]) for line in lines if line["name"] == "cleanup"] == [
        ("second", False), ("third", False)]
