"""`collections` CLI: argument errors are clear, commands find (or refuse without) an environment,
and the operator commands act on the database and the bus."""

from __future__ import annotations

import json
import os
import socket
import uuid

import pytest

from services.cli import main
from services.core import migrations
from services.core.settings import get_settings


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLECTIONS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def _error(capsys) -> str:
    return capsys.readouterr().err


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "required" in _error(capsys)


def test_unknown_command_lists_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["deploy"])
    assert exit_info.value.code == 2
    err = _error(capsys)
    assert "invalid choice: 'deploy'" in err and "migrate" in err


def test_retry_needs_a_uuid(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["retry", "item-42"])
    assert exit_info.value.code == 2
    assert "'item-42' is not an item id (a UUID)" in _error(capsys)


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_demo_timeout_must_be_a_positive_number(capsys, value):
    with pytest.raises(SystemExit):
        main(["demo", "--timeout", value])
    assert "--timeout" in _error(capsys)


def test_token_without_a_running_dev_environment_says_so(data_dir, capsys):
    assert main(["token"]) == 2
    err = _error(capsys)
    assert "no dev environment is running" in err and "make dev" in err
    assert "Traceback" not in err


def test_token_with_a_stale_runtime_file_says_it_is_gone(data_dir, capsys):
    data_dir.mkdir(parents=True)
    dead_pid = 2**22 + 12345  # above any pid_max default: never a live process
    state = {
        "pid": dead_pid, "api_url": "http://127.0.0.1:1", "aws_endpoint_url": "http://127.0.0.1:2",
        "region": "us-east-1", "bucket": "b", "event_bus": "e", "user_pool_id": "p", "client_id": "c",
        "jwks_url": "j", "database_url": "postgresql://x", "demo_user": "demo@example.com",
    }  # fmt: skip
    (data_dir / "runtime.json").write_text(json.dumps(state))
    assert main(["token"]) == 2
    assert f"(pid {dead_pid}) is gone" in _error(capsys)


def test_corrupt_runtime_file_is_a_clear_error(data_dir, capsys):
    data_dir.mkdir(parents=True)
    (data_dir / "runtime.json").write_text("{not json")
    assert main(["token"]) == 2
    assert "unreadable" in _error(capsys)


def test_cleanup_without_any_environment_refuses(data_dir, monkeypatch, capsys):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    assert main(["cleanup", "--dry-run"]) == 2
    assert "no dev environment is running" in _error(capsys)


def test_dev_refuses_a_taken_port_before_starting_anything(data_dir, monkeypatch):
    from services.local.dev import DevEnvironment, DevError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("COLLECTIONS_API_PORT", str(port))
        get_settings.cache_clear()
        environment = DevEnvironment()
        with pytest.raises(DevError, match=f"port {port} on 127.0.0.1 is taken.*COLLECTIONS_API_PORT"):
            environment.start()
    assert environment.postgres is None and environment.moto is None
    assert not (data_dir / "pgdata").exists()


def test_dev_refuses_to_start_twice(data_dir):
    from services.local.dev import DevEnvironment, DevError

    data_dir.mkdir(parents=True)
    state = {
        "pid": os.getpid(), "api_url": "http://127.0.0.1:8000", "aws_endpoint_url": "http://127.0.0.1:5000",
        "region": "us-east-1", "bucket": "b", "event_bus": "e", "user_pool_id": "p", "client_id": "c",
        "jwks_url": "j", "database_url": "postgresql://x", "demo_user": "demo@example.com",
    }  # fmt: skip
    (data_dir / "runtime.json").write_text(json.dumps(state))
    with pytest.raises(DevError, match=f"already running \\(pid {os.getpid()}"):
        DevEnvironment().start()
    # The running environment's file is left alone.
    assert (data_dir / "runtime.json").exists()


class TestWithDatabase:
    """Operator commands against this module's database and bus (DATABASE_URL, AWS_ENDPOINT_URL set)."""

    def test_migrate_reports_the_revision(self, db_url, data_dir, capsys):
        assert main(["migrate"]) == 0
        head = migrations.head()
        assert f"database at revision {head} (was {head})" in capsys.readouterr().out

    def test_retry_of_an_unknown_item_is_a_clear_error(self, db_url, aws, data_dir, capsys):
        item_id = uuid.uuid4()
        assert main(["retry", str(item_id)]) == 2
        assert f"item {item_id} not found" in _error(capsys)

    def test_retry_resets_a_failed_item_and_its_event_reaches_the_processor(
        self, db_url, aws, wiring, recorder, data_dir, capsys
    ):
        from services.core.database import session_scope
        from services.core.models import Item, ItemStatus, Stage
        from services.local.worker import Worker

        item_id = uuid.uuid4()
        key = f"uploads/u/{item_id}/a.png"
        with session_scope() as session:
            session.add(
                Item(id=item_id, owner_id="u", status=ItemStatus.failed, filename="a.png", original_key=key,
                     failed_stage=Stage.process, failure_reason="boom")
            )  # fmt: skip

        assert main(["retry", str(item_id)]) == 0
        assert "is pending again" in capsys.readouterr().out

        Worker(wiring, handlers=recorder.handlers()).drain(timeout=30)
        [event] = recorder.events["image_processor"]
        assert event["detail-type"] == "ProcessingRequested"
        assert event["detail"] == {**event["detail"], "item_id": str(item_id), "key": key}
        with session_scope() as session:
            item = session.get(Item, item_id)
            assert item.status is ItemStatus.pending and item.failure_reason is None

    def test_retry_of_a_ready_item_is_refused(self, db_url, aws, data_dir, capsys):
        from services.core.database import session_scope
        from services.core.models import Item, ItemStatus

        item_id = uuid.uuid4()
        with session_scope() as session:
            session.add(
                Item(id=item_id, owner_id="u", status=ItemStatus.ready, filename="b.png",
                     original_key=f"uploads/u/{item_id}/b.png")
            )  # fmt: skip
        assert main(["retry", str(item_id)]) == 2
        assert "only failed items can be retried" in _error(capsys)

    def test_cleanup_dry_run_prints_the_report(self, db_url, aws, data_dir, capsys):
        assert main(["cleanup", "--dry-run"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["dry_run"] is True
        assert {"deleted_items", "orphan_objects", "stale_pending"} <= set(report)

    def test_reembed_reports_the_model(self, db_url, data_dir, capsys):
        assert main(["reembed", "--limit", "5"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["model"] == "local-hash-v1" and report["remaining"] == 0

    def test_reembed_batch_size_over_the_limit_is_refused(self, db_url, data_dir, capsys):
        assert main(["reembed", "--batch-size", "5000"]) == 2
        assert "--batch-size must be at most 1000" in _error(capsys)


# --- `collections token --user NAME` against a (fake) running environment on moto ------------------
@pytest.fixture
def running(data_dir, moto_server, monkeypatch):
    """runtime.json naming this process and a Cognito pool on moto, as `make dev` writes it."""
    from dataclasses import asdict

    from services.local import aws as local_aws
    from services.local.dev import RuntimeState

    settings = get_settings().model_copy(update={"aws_endpoint_url": moto_server.endpoint_url})
    app = local_aws.ensure_cognito(settings, pool_name=f"cli-{uuid.uuid4().hex[:8]}")
    state = RuntimeState(
        pid=os.getpid(), api_url="http://127.0.0.1:1", aws_endpoint_url=moto_server.endpoint_url,
        region="us-east-1", bucket="b", event_bus="e", user_pool_id=app.user_pool_id, client_id=app.client_id,
        jwks_url="http://127.0.0.1:1/jwks", database_url="postgresql+psycopg://nobody@/none", demo_user="d@example.com",
    )  # fmt: skip
    for key, value in state.environment().items():  # restored after the test (the command sets them)
        monkeypatch.setenv(key, os.environ.get(key, value))
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "runtime.json").write_text(json.dumps(asdict(state)))
    yield state
    from tests.conftest import reset_caches

    monkeypatch.undo()
    reset_caches()


def test_token_for_a_bare_name_uses_its_example_address(running, capsys):
    import jwt

    assert main(["token", "--user", "bob"]) == 0
    out, err = capsys.readouterr()
    assert err.strip() == "(user bob@example.com)"
    claims = jwt.decode(out.strip(), options={"verify_signature": False})
    assert claims["token_use"] == "access" and claims["client_id"] == running.client_id


def test_token_for_a_name_the_pool_refuses_is_one_clear_line(running, capsys):
    assert main(["token", "--user", "not an address@"]) == 2
    err = _error(capsys)
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("collections: error: the user pool refused user 'not an address@'")
    assert "Traceback" not in err
