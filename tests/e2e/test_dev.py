"""`collections dev` (what `make dev` runs) as a real process: it serves, its printed curl commands
work, other commands reach it through runtime.json, Ctrl-C stops everything, and it starts again."""

from __future__ import annotations

import json
import shlex

import httpx
import jwt
import psutil

from services.core import migrations


def _curl_commands(banner: str) -> list[list[str]]:
    return [shlex.split(line.strip()) for line in banner.splitlines() if line.strip().startswith("curl ")]


def _run_curl(argv: list[str]) -> httpx.Response:
    """Run a printed `curl -s [-H 'K: V'] URL` with httpx (no curl binary needed)."""
    assert argv[0] == "curl"
    headers, url, args = {}, None, iter(argv[1:])
    for arg in args:
        if arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg.startswith("http"):
            url = arg
        else:
            assert arg == "-s", f"unexpected curl option {arg!r}"
    assert url is not None
    return httpx.get(url, headers=headers, timeout=30)


def _postgres_running(data_dir) -> bool:
    for process in psutil.process_iter(attrs=["name", "cmdline"]):
        cmdline = " ".join(process.info.get("cmdline") or [])
        if process.info.get("name") == "postgres" and str(data_dir) in cmdline:
            return True
    return False


def _banner_token(banner: str) -> str:
    header = _curl_commands(banner)[1][3]  # curl -s -H "Authorization: Bearer <token>" URL
    assert header.startswith("Authorization: Bearer ")
    return header.rsplit(" ", 1)[1]


def _sub(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["sub"]


def test_dev_serves_and_its_printed_commands_work(dev_factory):
    dev = dev_factory()
    banner = dev.start()

    assert f"http://127.0.0.1:{dev.api_port}" in banner
    commands = _curl_commands(banner)
    assert len(commands) == 2
    health = _run_curl(commands[0])
    assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok"}
    items = _run_curl(commands[1])
    assert items.status_code == 200, items.text
    assert items.json()["items"] == []  # a fresh data folder: the demo user has nothing yet

    state = json.loads((dev.data_dir / "runtime.json").read_text())
    assert state["api_url"] == f"http://127.0.0.1:{dev.api_port}"
    assert state["aws_endpoint_url"] == f"http://127.0.0.1:{dev.moto_port}"

    # `collections token` reaches the same pool through runtime.json; a new user is created on demand.
    fresh = dev.cli("token", "--user", "someone@example.com")
    assert fresh.returncode == 0, fresh.stderr
    token = fresh.stdout.strip()
    mine = httpx.get(f"{state['api_url']}/items", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert mine.status_code == 200 and mine.json()["items"] == []

    # An unauthenticated request is refused with the API's JSON error, not a traceback.
    refused = httpx.get(f"{state['api_url']}/items", timeout=30)
    assert refused.status_code == 401 and "error" in refused.json()

    migrated = dev.cli("migrate")
    assert migrated.returncode == 0 and f"revision {migrations.head()}" in migrated.stdout

    assert dev.interrupt() == 0


def test_ctrl_c_stops_everything_and_a_second_run_works(dev_factory, scratch):
    data_dir = scratch / "shared"
    first = dev_factory(data_dir)
    banner = first.start()
    first_token = _banner_token(banner)
    assert _postgres_running(data_dir / "pgdata")

    # `make demo`: uploads through the API, the worker threads run the pipeline, search finds them.
    demo = first.cli("demo", "--timeout", "120")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert demo.stdout.count(" ready: ") == 3
    assert "1. sunset.png" in demo.stdout  # the search is for "red"

    assert first.interrupt() == 0
    assert "Stopped." in first.lines
    assert any(line.startswith("Saved 9 object(s) from the bucket") for line in first.lines)
    assert not (data_dir / "runtime.json").exists()
    assert not _postgres_running(data_dir / "pgdata")
    with httpx.Client(timeout=2) as client:
        for port in (first.api_port, first.moto_port, first.web_port):
            try:
                client.get(f"http://127.0.0.1:{port}/")
            except httpx.ConnectError:
                continue
            raise AssertionError(f"port {port} still answers after Ctrl-C")
    gone = first.cli("token")
    assert gone.returncode == 2 and "no dev environment is running" in gone.stderr

    # Same data folder, same ports: the database is reused and the demo user keeps its identity.
    second = dev_factory(data_dir)
    second.api_port, second.moto_port = first.api_port, first.moto_port
    second.env.update(COLLECTIONS_API_PORT=str(first.api_port), COLLECTIONS_MOTO_PORT=str(first.moto_port))
    banner = second.start()
    assert "Starting embedded PostgreSQL" in banner
    health = _run_curl(_curl_commands(banner)[0])
    assert health.status_code == 200
    second_token = _banner_token(banner)
    assert _sub(second_token) == _sub(first_token)
    assert "Restored 9 object(s)" in banner  # 3 originals and their 256/1024 thumbnails
    # The demo's items survived: same owner, rows in PostgreSQL, objects put back into moto's S3.
    api_url = f"http://127.0.0.1:{second.api_port}"
    listed = httpx.get(f"{api_url}/items", headers={"Authorization": f"Bearer {second_token}"}, timeout=30)
    items = listed.json()["items"]
    assert sorted(i["filename"] for i in items) == ["forest.png", "ocean.png", "sunset.png"]
    assert {i["status"] for i in items} == {"ready"}
    thumbnail = httpx.get(items[0]["thumbnail_url"], timeout=30)
    assert thumbnail.status_code == 200 and thumbnail.content[8:12] == b"WEBP"
    assert second.interrupt() == 0
    assert not _postgres_running(data_dir / "pgdata")


def test_dev_exits_clearly_when_its_postgresql_dies(dev_factory):
    import os
    import signal

    dev = dev_factory()
    dev.start()
    postmaster = int((dev.data_dir / "pgdata" / "postmaster.pid").read_text().split("\n", 1)[0])
    os.kill(postmaster, signal.SIGKILL)

    output = dev.wait_for("stopped unexpectedly", timeout=60)
    assert "PostgreSQL (data in" in output and "start `make dev` again" in output
    assert dev.process.wait(60) == 1
    assert not (dev.data_dir / "runtime.json").exists()
