"""A deploy lock: one file on the router host, taken atomically, released even on failure.

Two deploy or rollback runs against one environment must never interleave. The lock is a
file created with O_EXCL; it records who holds it, why, and until when. A run that died keeps
it only until it expires (ttl), after which the next run may break it. Checking and breaking an
expired lock happens under flock on a guard file, so two waiters never both break it.

Plain Python, no Ansible imports.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


class LockBusy(Exception):
    """The lock is held by another run and did not come free in time."""


class LockNotOwned(Exception):
    """A release was asked for with a token that does not hold the lock."""


@dataclass
class LockInfo:
    token: str
    owner: str
    purpose: str
    acquired_at: float
    expires_at: float
    host: str

    def describe(self, now: float) -> str:
        return (
            f"held by {self.owner!r} for {self.purpose!r} since "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(self.acquired_at))} "
            f"({now - self.acquired_at:.0f} s ago, expires in {self.expires_at - now:.0f} s)"
        )


def read_lock(path: str) -> LockInfo | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        # a half-written or corrupt lock still means someone was there: treat as held until
        # its file is older than any ttl could be
        st = os.stat(path)
        return LockInfo("?", "unknown", "unreadable lock file", st.st_mtime, st.st_mtime + 3600, "?")
    return LockInfo(**{k: data[k] for k in LockInfo.__dataclass_fields__})


@contextlib.contextmanager
def _guard(path: str):
    with open(path + ".guard", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _try_create(path: str, info: LockInfo) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(asdict(info), fh)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def acquire(
    path: str,
    token: str,
    owner: str,
    purpose: str = "deploy",
    *,
    ttl: float = 1800,
    timeout: float = 300,
    poll: float = 0.5,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Take the lock, waiting up to `timeout` seconds. Re-entrant for the same token.

    Returns {"acquired": LockInfo, "waited": seconds, "broke": LockInfo of an expired lock or None,
    "already_held": bool}.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    started = clock()
    broke = None
    while True:
        now = clock()
        with _guard(path):
            holder = read_lock(path)
            if holder and holder.token == token:
                return {"acquired": holder, "waited": now - started, "broke": broke, "already_held": True}
            if holder and holder.expires_at <= now:
                os.unlink(path)
                broke = holder
                holder = None
            if holder is None:
                info = LockInfo(token, owner, purpose, now, now + ttl, socket.gethostname())
                if _try_create(path, info):
                    return {"acquired": info, "waited": now - started, "broke": broke, "already_held": False}
                holder = read_lock(path)
        if now - started >= timeout:
            detail = holder.describe(now) if holder else "by another run"
            raise LockBusy(f"deploy lock {path} is {detail}; waited {now - started:.0f} s (timeout {timeout:.0f} s)")
        sleep(poll)


def release(path: str, token: str) -> dict:
    """Release the lock if `token` holds it. Releasing a lock nobody holds is not an error."""
    with _guard(path):
        holder = read_lock(path)
        if holder is None:
            return {"released": False, "holder": None}
        if holder.token != token:
            raise LockNotOwned(f"deploy lock {path} is {holder.describe(time.time())}, not by this run; left in place")
        os.unlink(path)
        return {"released": True, "holder": holder}


def status(path: str) -> LockInfo | None:
    return read_lock(path)
