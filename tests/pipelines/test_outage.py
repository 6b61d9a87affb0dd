"""AWS itself failing: an unreachable endpoint, a silent one, throttling; a reader that leaves the pipe.

Each ends in one line on stderr naming the endpoint and what to try, and a documented exit code
(pipelines/errors.py), never a traceback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from pipelines import errors
from pipelines.cli import main
from pipelines.traffic import Traffic
from tests.conftest import reset_caches

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def outputs_path(deploy, tmp_path) -> str:
    path = tmp_path / "outputs.json"
    path.write_text(deploy(versions=2).outputs.model_dump_json())
    return str(path)


@pytest.mark.parametrize("command", [
    ["status"],
    ["shift", "--service", "api", "--strategy", "all-at-once"],
    ["rollback", "--service", "api"],
])
def test_unreachable_endpoint_is_one_line_and_exit_10(command, outputs_path, closed_port):
    endpoint = f"http://127.0.0.1:{closed_port}"
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_MAX_ATTEMPTS": "1"}
    result = subprocess.run([sys.executable, "-m", "pipelines", *command, "--outputs", outputs_path], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == errors.EXIT_UNREACHABLE == 10, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"cannot reach {endpoint} (EndpointConnectionError)" in lines[0]
    assert "run the same command again" in lines[0] and "Traceback" not in result.stderr


@pytest.fixture
def silent_server():
    """Accepts connections and never answers: a read timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_an_endpoint_that_never_answers_is_unreachable_not_a_hang(silent_server):
    lam = boto3.client("lambda", region_name="us-east-1", endpoint_url=silent_server,
                       config=Config(read_timeout=0.3, connect_timeout=0.3, retries={"max_attempts": 1}))
    with pytest.raises(errors.Unreachable) as caught:
        Traffic(lam, "collections-dev-api-blue").alias()
    message = str(caught.value)
    assert caught.value.exit_code == 10 and "\n" not in message
    assert message.startswith("reading alias collections-dev-api-blue:live: cannot reach")
    assert f"{silent_server} (ReadTimeoutError)" in message


def test_release_clients_honour_aws_max_attempts(monkeypatch):
    from pipelines.context import release_client

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    client = release_client("lambda", "us-east-1", "http://127.0.0.1:9")
    assert client.meta.config.retries["total_max_attempts"] == 1
    assert client.meta.config.connect_timeout == 5
    monkeypatch.delenv("AWS_MAX_ATTEMPTS")
    assert release_client("lambda", "us-east-1", None).meta.config.retries["total_max_attempts"] == 6


def test_status_json_into_a_closed_pipe_exits_quietly(outputs_path, aws):
    """`status --json | head`: the reader is gone before we write; no BrokenPipeError traceback."""
    env = {**os.environ, "AWS_ENDPOINT_URL": aws}
    process = subprocess.Popen([sys.executable, "-m", "pipelines", "status", "--json", "--outputs", outputs_path],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # like `head` after its lines: every write now fails with EPIPE
    _, err = process.communicate(timeout=120)
    assert process.returncode == errors.EXIT_BROKEN_PIPE == 141, err.decode()
    assert err.decode() == ""


def test_status_json_piped_into_head(outputs_path, aws):
    """The same through a real shell pipeline, as people type it."""
    env = {**os.environ, "AWS_ENDPOINT_URL": aws}
    command = (f"{sys.executable} -m pipelines status --json --outputs {outputs_path} | head -n 2; "
               'echo "rc=${PIPESTATUS[0]}" >&2')
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines()[0] == "{"
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] in ("rc=0", "rc=141")  # 0 if it all fit in the pipe's buffer


@pytest.mark.parametrize(("value", "expected"), [
    ("[1,2]", "are JSON, but an array where an object"),
    ('"prod"', "are JSON, but a string where an object"),
    ("42", "are JSON, but a number where an object"),
    ("{\"stack\": ", "is not valid JSON"),
    ("/nonexistent/outputs.json", "neither JSON nor an existing file"),
])
def test_outputs_from_the_environment_say_exactly_what_is_wrong(value, expected, monkeypatch, capsys):
    monkeypatch.setenv("COLLECTIONS_STACK_OUTPUTS", value)
    reset_caches()
    try:
        assert main(["status"]) == 1
    finally:
        monkeypatch.delenv("COLLECTIONS_STACK_OUTPUTS")
        reset_caches()
    err = capsys.readouterr().err
    assert expected in err and "COLLECTIONS_STACK_OUTPUTS" in err and len(err.strip().splitlines()) == 1


def test_an_outputs_file_holding_a_list_is_named_too(tmp_path, capsys):
    path = tmp_path / "o.json"
    path.write_text(json.dumps([1, 2]))
    assert main(["status", "--outputs", str(path)]) == 1
    assert f"stack outputs from {path} are JSON, but an array" in capsys.readouterr().err


def test_throttling_names_the_endpoint_and_what_to_try(monkeypatch):
    from botocore.exceptions import ClientError

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the regional endpoint, as on AWS
    error = ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}, "GetAlias")
    lam = boto3.client("lambda", region_name="eu-west-1")
    translated = errors.translate(error, "reading alias f:live", errors.endpoint_of(lam))
    assert isinstance(translated, errors.Throttled) and translated.exit_code == 7
    assert "at https://lambda.eu-west-1.amazonaws.com" in str(translated)
    assert "run the same command again" in str(translated)


def test_throttling_codes_cover_botocores_own():
    """Whatever botocore retries as throttling and then gives up on must end as exit 7, not as exit 1."""
    from botocore.exceptions import ClientError
    from botocore.retries.standard import ThrottledRetryableChecker

    botocores = set(ThrottledRetryableChecker._THROTTLED_ERROR_CODES)
    assert botocores <= errors.THROTTLING_CODES, botocores - errors.THROTTLING_CODES
    for code in sorted(botocores):
        error = ClientError({"Error": {"Code": code, "Message": "slow down"}}, "GetMetricData")
        assert isinstance(errors.translate(error, "reading"), errors.Throttled), code


@pytest.mark.parametrize("name", ["EndpointConnectionError", "SSLError", "ConnectionClosedError", "ReadTimeoutError",
                                  "ConnectTimeoutError", "ProxyConnectionError", "ResponseStreamingError"])
def test_every_botocore_transport_error_is_unreachable(name):
    import botocore.exceptions as bx

    kinds = {"endpoint_url": "https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions", "error": "boom",
             "proxy_url": "http://proxy:3128"}
    error = getattr(bx, name)(**kinds)
    translated = errors.translate(error, "reading the alias")
    assert isinstance(translated, errors.Unreachable) and translated.exit_code == 10
    assert name in str(translated)


def test_the_transport_error_list_is_complete():
    """botocore's transport failures all derive from ConnectionError or HTTPClientError (what translate catches)."""
    import botocore.exceptions as bx

    transport = {n for n, c in vars(bx).items() if isinstance(c, type) and issubclass(c, bx.BotoCoreError)
                 and ("Connection" in n or "Timeout" in n or "SSL" in n or "Streaming" in n)}
    caught = {n for n in transport if issubclass(getattr(bx, n), (bx.ConnectionError, bx.HTTPClientError))}
    assert transport - caught <= {"InvalidIMDSEndpointError"}, transport - caught
