"""The command line: exit codes and messages for what people get wrong, and for AWS failing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.errors import Throttled
from pipelines.traffic import Traffic
from tests.conftest import reset_caches

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def outputs_file(deploy, tmp_path):
    d = deploy(versions=2)
    path = tmp_path / "outputs.json"
    path.write_text(d.outputs.model_dump_json())
    return d, str(path)


def test_shift_and_rollback_through_the_command_line(outputs_file, capsys):
    d, path = outputs_file
    assert main(["shift", "--outputs", path, "--service", "api", "--strategy", "all-at-once"]) == 0
    assert d.alias()["version"] == "2"
    assert main(["rollback", "--outputs", path, "--service", "api"]) == 0
    assert d.alias()["version"] == "1"
    assert main(["rollback", "--outputs", path, "--service", "api"]) == 0  # idempotent
    assert "nothing to roll back" in capsys.readouterr().out


def test_alarm_rollback_exits_3(outputs_file, capsys):
    d, path = outputs_file
    d.set_alarm("ALARM", reason="5xx above 1%")
    assert main(["shift", "--outputs", path, "--service", "api", "--strategy", "canary:10:1", "--poll", "1"]) == 3
    assert "5xx above 1%" in capsys.readouterr().err


def test_unknown_service_exits_4_and_lists_the_known(outputs_file, capsys):
    _, path = outputs_file
    assert main(["rollback", "--outputs", path, "--service", "billing"]) == 4
    err = capsys.readouterr().err
    assert "unknown service 'billing'" in err and "the stack has: api" in err


def test_missing_version_exits_4(outputs_file, capsys):
    _, path = outputs_file
    assert main(["shift", "--outputs", path, "--service", "api", "--to", "42", "--strategy", "all-at-once"]) == 4
    assert "has no version 42" in capsys.readouterr().err


def test_bad_strategy_exits_2(outputs_file, capsys):
    _, path = outputs_file
    assert main(["shift", "--outputs", path, "--service", "api", "--strategy", "canary:x:5"]) == 2
    assert "not a percentage" in capsys.readouterr().err


def test_shift_without_strategy_and_without_stack_default_exits_2(outputs_file, capsys):
    _, path = outputs_file
    assert main(["shift", "--outputs", path, "--service", "api"]) == 2
    assert "give --strategy" in capsys.readouterr().err


def test_shift_without_strategy_uses_the_stacks_release_steps(outputs_file, tmp_path, capsys):
    d, path = outputs_file
    data = json.loads(Path(path).read_text())
    data["release"] = {"steps": [1.0], "step_minutes": 0}
    with_default = tmp_path / "with-default.json"
    with_default.write_text(json.dumps(data))
    assert main(["shift", "--outputs", str(with_default), "--service", "api"]) == 0
    assert d.alias()["version"] == "2"
    assert "strategy from the stack's config: steps:100:0" in capsys.readouterr().out


def test_stack_release_defaults_read_as_a_steps_strategy():
    from pipelines.outputs import ReleaseDefaults
    from pipelines.strategies import parse

    defaults = ReleaseDefaults(steps=[0.05, 0.25, 0.5, 1.0], step_minutes=10)
    assert defaults.strategy == "steps:5,25,50,100:10"
    plan = parse(defaults.strategy).steps
    assert [(step.weight, step.bake_s) for step in plan] == [(0.05, 600), (0.25, 600), (0.5, 600), (1.0, 0.0)]


def test_outputs_from_the_environment(outputs_file, monkeypatch, capsys):
    d, path = outputs_file
    monkeypatch.setenv("COLLECTIONS_STACK_OUTPUTS", Path(path).read_text())
    reset_caches()
    try:
        assert main(["status", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["stack"] == d.stack
        assert main(["status", "--stack", "prod"]) == 1
        assert "not 'prod'" in capsys.readouterr().err
    finally:
        monkeypatch.delenv("COLLECTIONS_STACK_OUTPUTS")
        reset_caches()


def test_outputs_that_break_the_contract_are_named(tmp_path, capsys):
    bad = tmp_path / "o.json"
    bad.write_text(json.dumps({"stack": "dev", "services": {"api": {"active_slot": "purple"}}}))
    assert main(["status", "--outputs", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "services.api.active_slot" in err and "do not match the contract" in err


def test_no_outputs_at_all_says_where_they_come_from(capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no pulumi CLI
    assert main(["status", "--stack", "dev"]) == 1
    assert "--outputs FILE" in capsys.readouterr().err


def test_missing_credentials_exit_6(outputs_file, aws):
    _, path = outputs_file
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=aws, AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_CONFIG_FILE="/nonexistent",
               AWS_EC2_METADATA_DISABLED="true")
    result = subprocess.run([sys.executable, "-m", "pipelines", "status", "--outputs", path], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 6, result.stderr
    assert "no AWS credentials" in result.stderr and "Traceback" not in result.stderr


class _Throttling(BaseHTTPRequestHandler):
    """Lambda's REST API answering 429 TooManyRequestsException `throttle` times, then an alias."""

    throttle = 0
    requests = 0

    def do_GET(self):  # noqa: N802 (http.server's naming)
        cls = type(self)
        cls.requests += 1
        if cls.requests <= cls.throttle:
            body = json.dumps({"Type": "User", "message": "Rate exceeded", "Reason": "CallerRateLimitExceeded"})
            self.send_response(429)
            self.send_header("x-amzn-ErrorType", "TooManyRequestsException")
        else:
            body = json.dumps({"AliasArn": "arn:aws:lambda:us-east-1:1:function:f:live", "Name": "live",
                               "FunctionVersion": "7", "RoutingConfig": {"AdditionalVersionWeights": {"8": 0.1}}})
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def throttling_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Throttling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield _Throttling, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_throttling_is_backed_off_and_retried(throttling_server):
    """The clients come from services.core.aws (standard retry mode): two 429s, then the answer."""
    from services.core.aws import client
    from services.core.settings import get_settings

    handler, url = throttling_server
    handler.throttle, handler.requests = 2, 0
    settings = get_settings().model_copy(update={"aws_endpoint_url": url})
    alias = Traffic(client("lambda", settings), "f").alias()
    assert (alias.version, alias.weights) == ("7", {"8": 0.1})
    assert handler.requests == 3


def test_throttling_that_outlasts_the_retries_is_a_clear_error(throttling_server):
    import boto3
    from botocore.config import Config

    handler, url = throttling_server
    handler.throttle, handler.requests = 100, 0
    lam = boto3.client("lambda", region_name="us-east-1", endpoint_url=url,
                       config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    with pytest.raises(Throttled, match="throttling") as caught:
        Traffic(lam, "f").alias()
    assert caught.value.exit_code == 7


def test_ctrl_c_mid_shift_releases_the_lock_and_says_how_to_resume(outputs_file, aws):
    """A real process, a real SIGINT while it bakes the canary step."""
    import signal
    import time

    d, path = outputs_file
    env = {**os.environ, "AWS_ENDPOINT_URL": aws}
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "shift", "--outputs", path, "--service", "api", "--strategy",
         "canary:10:5", "--poll", "1"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if d.alias()["weights"]:
                break
            time.sleep(0.05)
        assert d.alias()["weights"] == {"2": 0.1}
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "resume:" in err and "--to 2 --strategy canary:10:5" in err and "Traceback" not in err
    assert d.alias() == {"version": "1", "weights": {"2": 0.1}}
    assert d.context().lock().current() is None
