"""Release tooling against moto (real clock): how fast an alarm undoes a shift, and how fast `rollback` is.

1. alarm -> stable: a canary shift polls its alarms every POLL_S; at a random moment of the bake
   the alarm goes to ALARM (set_alarm_state); we time until the alias, watched every 10 ms from
   outside, is back on the stable version with weights cleared. Target: median <= POLL_S + 1 s.
2. rollback: wall time of `rollback` on a half-shifted alias, in-process (the command's own work)
   and as a fresh `python -m pipelines rollback` process (imports included). Target: under 1 s.
3. bad canary -> stable: a canary shift judged by its own version's metrics (ExecutedVersion) every
   POLL_S; healthy figures are published for both versions until, at a random moment, the canary's
   first bad window begins (its errors published with put_metric_data); we time until the alias is
   back on stable. Target: median <= POLL_S + 1 s.
4. flip phases: prepare (idle alias moved, smoke), up (the Automation API stand-in, which on AWS is a
   `pulumi up --refresh` of minutes), verify, on moto.
"""

from __future__ import annotations

import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

POLL_S = 1.0
ALARM_RUNS = 7
ROLLBACK_RUNS = 15
PROCESS_RUNS = 5
FLIP_RUNS = 5
ROOT = Path(__file__).resolve().parents[2]


def _zip(marker: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", f"def handler(event, context):\n    return {marker!r}\n")
    return buffer.getvalue()


class _Env:
    def __init__(self, endpoint: str):
        import boto3

        self.endpoint = endpoint
        make = lambda name: boto3.client(name, region_name="us-east-1", endpoint_url=endpoint)  # noqa: E731
        self.clients = {"lambda_client": make("lambda"), "cloudwatch": make("cloudwatch"), "ssm": make("ssm")}
        iam = make("iam")
        iam.create_role(RoleName="bench", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))

    def deploy(self) -> tuple[Any, str, str]:
        """A function with versions 1, 2, `live` on 1, one alarm; returns (outputs, function, alarm)."""
        from pipelines.outputs import StackOutputs

        stack = f"b{uuid.uuid4().hex[:8]}"
        function = f"collections-{stack}-api-blue"
        lam = self.clients["lambda_client"]
        lam.create_function(FunctionName=function, Runtime="python3.12", Role="arn:aws:iam::123456789012:role/bench",
                            Handler="handler.handler", Code={"ZipFile": _zip("0")})
        for marker in ("1", "2"):
            lam.update_function_code(FunctionName=function, ZipFile=_zip(marker))
            lam.publish_version(FunctionName=function)
        arn = lam.create_alias(FunctionName=function, Name="live", FunctionVersion="1")["AliasArn"]
        alarm = f"{function}-errors"
        cw = self.clients["cloudwatch"]
        cw.put_metric_alarm(AlarmName=alarm, MetricName="Errors", Namespace="AWS/Lambda", Statistic="Sum", Period=60,
                            EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
        cw.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="bench")
        outputs = StackOutputs.model_validate({"stack": stack, "region": "us-east-1", "services": {"api": {
            "active_slot": "blue", "alias_arn": arn, "function_names": {"blue": function}, "release_mode": "gradual",
            "alarm_names": [alarm], "triggers": ["http"]}}})
        return outputs, function, alarm

    def context(self, outputs: Any) -> Any:
        from pipelines.context import ServiceContext

        return ServiceContext(stack=outputs.stack, service=outputs.service("api"), progress=lambda m: None,
                              **self.clients)

    def alias(self, function: str) -> tuple[str, dict]:
        raw = self.clients["lambda_client"].get_alias(FunctionName=function, Name="live")
        weights = (raw.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return raw["FunctionVersion"], {k: v for k, v in weights.items() if v}


def _alarm_to_stable(env: _Env) -> float:
    from pipelines.errors import RolledBack
    from pipelines.shift import Shift
    from pipelines.strategies import parse

    outputs, function, alarm = env.deploy()
    outcome: dict[str, Any] = {}

    def shift() -> None:
        try:
            Shift(env.context(outputs), parse("canary:50:5"), poll_s=POLL_S).run()
        except RolledBack as error:
            outcome["rolled_back"] = str(error)

    worker = threading.Thread(target=shift, daemon=True)
    worker.start()
    while env.alias(function)[1] == {}:
        time.sleep(0.01)
    time.sleep(random.uniform(0, POLL_S))  # the alarm fires at any point of the poll cycle
    env.clients["cloudwatch"].set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="bench")
    fired = time.perf_counter()
    while env.alias(function) != ("1", {}):
        time.sleep(0.01)
    elapsed = time.perf_counter() - fired
    worker.join(timeout=30)
    if "rolled_back" not in outcome:
        raise RuntimeError("the shift did not roll back")
    return elapsed


def _publish(env: _Env, function: str, version: str, invocations: int, errors: int) -> None:
    from datetime import UTC, datetime

    dimensions = [{"Name": "FunctionName", "Value": function}, {"Name": "Resource", "Value": f"{function}:live"},
                  {"Name": "ExecutedVersion", "Value": version}]
    at = datetime.now(UTC)
    env.clients["cloudwatch"].put_metric_data(Namespace="AWS/Lambda", MetricData=[
        {"MetricName": "Invocations", "Dimensions": dimensions, "Value": invocations, "Timestamp": at},
        {"MetricName": "Errors", "Dimensions": dimensions, "Value": errors, "Timestamp": at}])


def _bad_canary_to_stable(env: _Env) -> float:
    """From the first bad window's data being published to the alias back on stable."""
    from pipelines.canary import CanaryThresholds
    from pipelines.errors import RolledBack
    from pipelines.shift import Shift
    from pipelines.strategies import parse

    outputs, function, _ = env.deploy()
    limits = CanaryThresholds(max_error_rate=0.05, min_invocations=50)
    outcome: dict[str, Any] = {}

    def shift() -> None:
        try:
            Shift(env.context(outputs), parse("canary:50:5"), poll_s=POLL_S, canary=limits).run()
        except RolledBack as error:
            outcome["rolled_back"] = str(error)

    worker = threading.Thread(target=shift, daemon=True)
    worker.start()
    while env.alias(function)[1] == {}:
        time.sleep(0.01)
    time.sleep(random.uniform(0, POLL_S))  # the bad window starts at any point of the poll cycle
    _publish(env, function, "1", 100, 0)
    _publish(env, function, "2", 100, 40)
    started = time.perf_counter()
    while env.alias(function) != ("1", {}):
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    worker.join(timeout=30)
    if "rolled_back" not in outcome:
        raise RuntimeError("the bad canary was not rolled back")
    return elapsed


def _flip_phases(env: _Env) -> dict[str, float]:
    from pipelines.flip import Invocation, flip
    from pipelines.outputs import StackOutputs

    outputs, function, _ = env.deploy()
    green = function.replace("-blue", "-green")
    lam = env.clients["lambda_client"]
    lam.create_function(FunctionName=green, Runtime="python3.12", Role="arn:aws:iam::123456789012:role/bench",
                        Handler="handler.handler", Code={"ZipFile": _zip("g0")})
    lam.update_function_code(FunctionName=green, ZipFile=_zip("g1"))
    lam.publish_version(FunctionName=green)
    lam.create_alias(FunctionName=green, Name="live", FunctionVersion="1")
    lam.update_function_code(FunctionName=green, ZipFile=_zip("g2"))
    lam.publish_version(FunctionName=green)
    data = outputs.model_dump()
    data["services"]["api"]["function_names"]["green"] = green
    outputs = StackOutputs.model_validate(data)

    class Invoker:  # moto cannot run Lambda code: the smoke invoke answers at once
        def invoke(self, function_name, qualifier, event):
            return Invocation(200, None, {"statusCode": 200, "body": "{}"})

    class AutomationStub:
        def active(self, service):
            return "blue"

        def set_active(self, service, slot):
            pass

        def up(self):
            pass

    result = flip(outputs, outputs.service("api"), "green", Invoker(), AutomationStub, lambda m: None,
                  lambda_client=lam)
    return result.phases


def _half_shift(env: _Env, function: str) -> None:
    env.clients["lambda_client"].update_alias(FunctionName=function, Name="live", FunctionVersion="1",
                                              RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})


def run() -> dict:
    import logging

    from services.local.aws import start_moto

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = start_moto(port=0)
    try:
        env = _Env(server.endpoint_url)
        alarm_times = [_alarm_to_stable(env) for _ in range(ALARM_RUNS)]
        canary_times = [_bad_canary_to_stable(env) for _ in range(ALARM_RUNS)]
        flips = [_flip_phases(env) for _ in range(FLIP_RUNS)]

        from pipelines.rollback import rollback

        outputs, function, _ = env.deploy()
        ctx = env.context(outputs)
        in_process = []
        for _ in range(ROLLBACK_RUNS):
            _half_shift(env, function)
            started = time.perf_counter()
            rollback(ctx)
            in_process.append(time.perf_counter() - started)
            assert env.alias(function) == ("1", {})

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "outputs.json"
            path.write_text(outputs.model_dump_json())
            process_env = {**os.environ, "AWS_ENDPOINT_URL": server.endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
            processes = []
            for _ in range(PROCESS_RUNS):
                _half_shift(env, function)
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "pipelines", "rollback", "--outputs", str(path), "--service",
                                "api"], cwd=ROOT, env=process_env, check=True, capture_output=True)
                processes.append(time.perf_counter() - started)
                assert env.alias(function) == ("1", {})
    finally:
        server.stop()

    def row(what: str, values: list[float], target: str, ok: bool) -> dict:
        return {"measure": what, "runs": len(values), "median_s": round(statistics.median(values), 3),
                "min_s": round(min(values), 3), "max_s": round(max(values), 3), "target": target,
                "met": "yes" if ok else "NO"}

    alarm_median = statistics.median(alarm_times)
    return {
        "title": "Release: alarm-triggered rollback and manual rollback on moto",
        "rows": [
            row(f"alarm -> alias on stable (poll {POLL_S:g} s)", alarm_times, f"<= {POLL_S + 1:g} s",
                alarm_median <= POLL_S + 1),
            row("rollback (in-process)", in_process, "< 1 s", statistics.median(in_process) < 1),
            row("rollback (new process, imports included)", processes, "< 1 s", statistics.median(processes) < 1),
            row(f"bad canary's first bad window -> alias on stable (poll {POLL_S:g} s)", canary_times,
                f"<= {POLL_S + 1:g} s", statistics.median(canary_times) <= POLL_S + 1),
            *[row(f"flip: {phase}", [f[phase] for f in flips], "-", True) for phase in ("prepare", "up", "verify")],
        ],
        "notes": [
            "moto server on 127.0.0.1 over HTTP; real clock; the alarm fires at a uniformly random moment of the "
            "poll cycle, so the expected delay is about half a poll interval plus the AWS calls",
            "the alias is observed from outside (get_alias every 10 ms), not taken from the tool's own log",
            "rollback = get_alias + get_parameter (stable record) + update_alias + put_parameter",
            "bad canary: the canary's and stable's figures (ExecutedVersion) are read with one GetMetricData per "
            "poll; on AWS, Lambda's metrics reach CloudWatch about a minute after the invocations, which adds to this",
            "flip: prepare = list versions + get/update alias + one smoke invoke per trigger (answered at once here: "
            "moto cannot run Lambda code; on AWS each is a real, possibly cold, invocation); up = the Automation API "
            "stand-in (on AWS a `pulumi up --refresh`, minutes); verify = get_alias + the smoke invokes again",
            "a new process pays Python start-up, imports (boto3, pydantic) and two boto3 clients before its first "
            "call; the machine's 2 cores were shared with other test runs while measuring",
        ],
    }
