"""One shift at a time per service: a lock with owner and expiry, kept in SSM Parameter Store.

Taking it is a conditional create (`put_parameter(Overwrite=False)` fails with
ParameterAlreadyExists when someone holds it). A lock past its expiry (its owner died without
releasing) is taken over through a second conditional create, a takeover marker named after the
expired lock's id: of two processes racing for the same expired lock only one creates the marker,
so only one wins. A shift renews its lock while it waits, and gives it up when it ends, fails or
is interrupted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from pipelines.clock import Clock
from pipelines.errors import LockHeld, NotFound, ReleaseError, aws_error_code, aws_errors


def default_owner() -> str:
    """Who holds the lock, as a person reads it: user@host:pid (plus the CI run when there is one)."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # containers often run as a uid without a passwd entry
        user = f"uid{os.getuid()}"
    run = os.environ.get("GITHUB_RUN_ID")
    where = f"{user}@{socket.gethostname()}:{os.getpid()}"
    return f"{where} (GitHub run {run})" if run else where


@dataclass(frozen=True)
class LockRecord:
    id: str
    owner: str
    expires_at: float
    purpose: str = ""
    target: str = ""  # the version being shifted to: prune keeps it
    took_over: str = ""  # id of the expired lock this one replaced

    def expires(self) -> str:
        return datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    @classmethod
    def parse(cls, text: str) -> LockRecord:
        try:
            data = json.loads(text)
            return cls(**{k: data[k] for k in ("id", "owner", "expires_at")},
                       purpose=data.get("purpose", ""), target=data.get("target", ""),
                       took_over=data.get("took_over", ""))
        except (ValueError, KeyError, TypeError):
            # Unreadable: treat as expired long ago so it can be taken over, not as held forever.
            digest = hashlib.sha256(text.encode()).hexdigest()[:16]  # the same id in every racer's process
            return cls(id=f"unreadable-{digest}", owner="(unreadable lock record)", expires_at=0)


class Lock:
    def __init__(self, ssm: Any, name: str, clock: Clock, ttl_s: float = 900, owner: str | None = None):
        self.ssm = ssm
        self.name = name  # e.g. /collections/dev/release/api/lock
        self.clock = clock
        self.ttl_s = ttl_s
        self.owner = owner or default_owner()
        self.record: LockRecord | None = None

    # -- reading -------------------------------------------------------------------------------
    def current(self) -> LockRecord | None:
        try:
            with aws_errors(f"reading lock {self.name}", self.ssm):
                value = self.ssm.get_parameter(Name=self.name)["Parameter"]["Value"]
        except NotFound:
            return None
        return LockRecord.parse(value)

    # -- taking and giving up ------------------------------------------------------------------
    def _new_record(self, purpose: str, target: str, took_over: str = "") -> LockRecord:
        return LockRecord(uuid.uuid4().hex, self.owner, self.clock.now() + self.ttl_s, purpose, target, took_over)

    def _create(self, name: str, value: str) -> bool:
        """Conditional create: True if we created it, False if it already existed."""
        from botocore.exceptions import ClientError

        try:
            self.ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=False)
        except ClientError as error:
            if aws_error_code(error) == "ParameterAlreadyExists":
                return False
            with aws_errors(f"writing {name}", self.ssm):
                raise
        return True

    def acquire(self, purpose: str = "", target: str = "") -> LockRecord:
        record = self._new_record(purpose, target)
        with aws_errors(f"taking lock {self.name}", self.ssm):
            if self._create(self.name, json.dumps(asdict(record))):
                self.record = record
                return record
            held = self.current()
            if held is None:  # released between our create and our read: try once more
                if self._create(self.name, json.dumps(asdict(record))):
                    self.record = record
                    return record
                held = self.current()
            if held is not None and held.expires_at > self.clock.now():
                raise LockHeld(
                    f"{self.name} is held by {held.owner} until {held.expires()}"
                    + (f" ({held.purpose})" if held.purpose else "")
                    + "; wait for it to finish, or roll back with `collections-release rollback`"
                )
            expired_id = held.id if held is not None else "none"
            marker = f"{self.name}-takeover/{expired_id}"
            if not self._create(marker, json.dumps({"by": self.owner, "at": self.clock.now()})):
                raise LockHeld(f"{self.name}: another process is taking over the expired lock {expired_id}")
            record = self._new_record(purpose, target, took_over=expired_id)
            self.ssm.put_parameter(Name=self.name, Value=json.dumps(asdict(record)), Type="String", Overwrite=True)
        self.record = record
        return record

    def renew(self) -> None:
        """Push the expiry out; fails if the lock is no longer ours (taken over after it expired)."""
        if self.record is None:
            raise ReleaseError(f"{self.name}: renew without holding the lock")
        held = self.current()
        if held is None or held.id != self.record.id:
            owner = held.owner if held else "nobody"
            raise LockHeld(f"{self.name} was lost (now held by {owner}); stopping this shift")
        record = LockRecord(self.record.id, self.owner, self.clock.now() + self.ttl_s, self.record.purpose,
                            self.record.target, self.record.took_over)
        with aws_errors(f"renewing lock {self.name}", self.ssm):
            self.ssm.put_parameter(Name=self.name, Value=json.dumps(asdict(record)), Type="String", Overwrite=True)
        self.record = record

    def release(self) -> None:
        """Give the lock up if it is still ours (never delete someone else's)."""
        if self.record is None:
            return
        mine, self.record = self.record, None
        held = self.current()
        if held is None or held.id != mine.id:
            return
        with aws_errors(f"releasing lock {self.name}", self.ssm):
            self.ssm.delete_parameter(Name=self.name)
            if mine.took_over:
                # The marker guarded the takeover that made this lock; with this lock gone it has no use.
                with contextlib.suppress(self.ssm.exceptions.ParameterNotFound):
                    self.ssm.delete_parameter(Name=f"{self.name}-takeover/{mine.took_over}")

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
