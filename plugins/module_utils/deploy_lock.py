"""The deploy lock: taken atomically, released even on failure, in a file or a Kubernetes Lease.

Two deploy or rollback runs against one environment must never interleave. The lock records who
holds it (a run token), who runs it, why, and until when. A run that died keeps it only until it
expires (ttl), after which the next run may take it over.

One policy, two stores. `acquire` and `release` (the waiting, expiry, re-entry and ownership
rules, the messages) are written once against a store that offers only compare-and-swap:

- `read()` gives the holder (or None) and a revision, an opaque value naming what was read;
- `write(rev, info)` puts `info` in place only if the lock is still at `rev` (None: absent),
  and returns what it stored, or None when someone else got there first;
- `remove(rev)` deletes the lock only if it is still at `rev`.

FileStore keeps a JSON file created with O_EXCL; each compare-and-swap happens under flock on a
guard file beside it (the lock for hosts, on the load balancer host). LeaseStore keeps a
coordination.k8s.io/v1 Lease, the compare-and-swap being the API server's own (create is
refused with 409 when the Lease exists, update and delete when its resourceVersion moved on):
the lock for Kubernetes and EKS, reachable wherever the cluster's API is.

Plain Python, no Ansible imports.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from ansible_collections.free4allweb.devops.plugins.module_utils import k8s_rest

DEFAULT_PATH = "/var/lib/free4allweb/deploy.lock"
DEFAULT_LEASE = "free4allweb-deploy"


class LockBusy(Exception):
    """The lock is held by another run and did not come free in time."""


class LockNotOwned(Exception):
    """A release was asked for with a token that does not hold the lock."""


class LockError(Exception):
    """The store could not be read or written (API unreachable, forbidden, ...)."""


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


# -- the file store --------------------------------------------------------------------------
def read_lock(path: str) -> LockInfo | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        # a half-written or corrupt lock still means someone was there: treat as held until
        # its file is older than any ttl could be
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
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


class FileStore:
    """A lock file; the revision is the content read (a LockInfo), compared under the guard."""

    poll = 0.5

    def __init__(self, path: str = DEFAULT_PATH):
        self.path = path
        self.where = path

    def read(self):
        holder = read_lock(self.path)
        return holder, holder

    def write(self, rev, info: LockInfo) -> LockInfo | None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with _guard(self.path):
            if read_lock(self.path) != rev:
                return None
            if rev is not None:
                os.unlink(self.path)
            return info if _try_create(self.path, info) else None

    def remove(self, rev) -> bool:
        with _guard(self.path):
            if read_lock(self.path) != rev:
                return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            return True

    def close(self) -> None:
        pass


# -- the Lease store -------------------------------------------------------------------------
ANNOTATION = "free4allweb.io/"
_MICROTIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def format_microtime(t: float) -> str:
    """A MicroTime as the API writes it: RFC 3339, microseconds, UTC with Z."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> float | None:
    """Epoch seconds from an RFC 3339 time (with or without fraction; Z or an offset)."""
    if not value:
        return None
    m = _MICROTIME.match(value)
    if not m:
        return None
    base, frac, zone = m.groups()
    stamp = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        stamp -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return stamp + (float(frac) if frac else 0.0)


def lease_info(lease: dict) -> LockInfo | None:
    """The holder recorded in a Lease; None when nobody holds it (no holderIdentity)."""
    spec = lease.get("spec") or {}
    token = spec.get("holderIdentity")
    if not token:
        return None
    notes = (lease.get("metadata") or {}).get("annotations") or {}
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    acquired = parse_time(spec.get("acquireTime")) or renewed
    if renewed is None:  # a holder but no time: someone else's Lease, held from its creation
        renewed = acquired = parse_time((lease.get("metadata") or {}).get("creationTimestamp")) or 0.0
    duration = spec.get("leaseDurationSeconds")
    # no duration: not one of ours; held for an hour from its last renewal, like a corrupt lock file
    expires = renewed + (duration if duration is not None else 3600)
    return LockInfo(
        token=token,
        owner=notes.get(ANNOTATION + "owner", "unknown"),
        purpose=notes.get(ANNOTATION + "purpose", "?"),
        acquired_at=acquired,
        expires_at=expires,
        host=notes.get(ANNOTATION + "host", "?"),
    )


class LeaseStore:
    """A coordination.k8s.io/v1 Lease; the revision is (uid, resourceVersion, the Lease read).

    holderIdentity is the run token, leaseDurationSeconds the ttl (whole seconds, at least 1),
    acquireTime and renewTime when it was taken; owner, purpose and host are annotations.
    Expiry is judged against this host's clock (renewTime + leaseDurationSeconds < now), like
    the file lock: hosts running deploys need roughly synchronised clocks (NTP).
    """

    poll = 1.0

    def __init__(self, client, namespace: str, name: str = DEFAULT_LEASE):
        self.client = client
        self.namespace = namespace
        self.name = name
        self.where = f"Lease {namespace}/{name}"
        self.created_namespace = False

    @property
    def _collection(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    @property
    def _path(self) -> str:
        return f"{self._collection}/{self.name}"

    def _call(self, method, path, **kw):
        try:
            return self.client.request(method, path, self.where, **kw)
        except (k8s_rest.NotFound, k8s_rest.Conflict):
            raise
        except k8s_rest.K8sError as exc:
            raise LockError(f"deploy lock {exc}") from None

    def read(self):
        try:
            lease = self._call("GET", self._path)
        except k8s_rest.NotFound:  # no Lease (or no namespace yet)
            return None, None
        meta = lease.get("metadata") or {}
        return lease_info(lease), (meta.get("uid"), meta.get("resourceVersion"), lease)

    def _lease(self, info: LockInfo, old: dict | None) -> dict:
        meta = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": dict(k8s_rest.MANAGED_BY),
            "annotations": {ANNOTATION + k: getattr(info, k) for k in ("owner", "purpose", "host")},
        }
        transitions = 0
        if old is not None:
            # keep what others put on it; the resourceVersion makes the update conditional
            old_meta = old.get("metadata") or {}
            meta["labels"] = {**(old_meta.get("labels") or {}), **meta["labels"]}
            meta["annotations"] = {**(old_meta.get("annotations") or {}), **meta["annotations"]}
            meta["resourceVersion"] = old_meta.get("resourceVersion")
            transitions = int((old.get("spec") or {}).get("leaseTransitions") or 0) + 1
        stamp = format_microtime(info.acquired_at)
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": info.token,
                "leaseDurationSeconds": max(1, math.ceil(info.expires_at - info.acquired_at)),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": transitions,
            },
        }

    def write(self, rev, info: LockInfo) -> LockInfo | None:
        try:
            if rev is None:
                try:
                    stored = self._call("POST", self._collection, body=self._lease(info, None))
                except k8s_rest.NotFound:
                    # the namespace does not exist yet (a first deploy into a fresh namespace):
                    # create it, then try once more
                    self.created_namespace = self._ensure_namespace() or self.created_namespace
                    stored = self._call("POST", self._collection, body=self._lease(info, None))
            else:
                stored = self._call("PUT", self._path, body=self._lease(info, rev[2]))
        except (k8s_rest.Conflict, k8s_rest.NotFound):
            # 409: someone created it first, or changed it since we read it; 404: it was
            # deleted since we read it. Either way someone else moved: read again.
            return None
        return lease_info(stored)

    def _ensure_namespace(self) -> bool:
        try:
            return k8s_rest.ensure_namespace(self.client, self.namespace)
        except k8s_rest.K8sError as exc:
            raise LockError(f"deploy lock {self.where}: cannot create namespace {self.namespace}: {exc}") from None

    def remove(self, rev) -> bool:
        # DELETE rather than a PUT that clears holderIdentity: a free lock is then simply an
        # absent Lease (one state, not two), the next run takes it with a plain create, and no
        # stale object outlives the environment. The preconditions make it a compare-and-swap:
        # a Lease taken over since we read it (new resourceVersion) or recreated (new uid) is
        # left alone (409).
        uid, version = rev[0], rev[1]
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid, "resourceVersion": version}}
        try:
            self._call("DELETE", self._path, body=body)
        except k8s_rest.Conflict:
            return False
        except k8s_rest.NotFound:
            return True
        return True

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close:
            close()


def _store(where) -> FileStore | LeaseStore:
    return FileStore(where) if isinstance(where, str | os.PathLike) else where


# -- the policy, the same for every store ----------------------------------------------------
def acquire(
    store,
    token: str,
    owner: str,
    purpose: str = "deploy",
    *,
    ttl: float = 1800,
    timeout: float = 300,
    poll: float | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Take the lock, waiting up to `timeout` seconds. Re-entrant for the same token.

    `store` is a FileStore or LeaseStore (a path means a FileStore). Polls every `poll` seconds
    (the store's default when None), never sleeping past the deadline.

    Returns {"acquired": LockInfo, "waited": seconds, "broke": LockInfo of an expired lock or None,
    "already_held": bool}.
    """
    store = _store(store)
    poll = store.poll if poll is None else poll
    started = clock()
    broke = None
    while True:
        now = clock()
        holder, rev = store.read()
        if holder and holder.token == token:
            return {"acquired": holder, "waited": now - started, "broke": broke, "already_held": True}
        if holder is None or holder.expires_at <= now:
            info = LockInfo(token, owner, purpose, now, now + ttl, socket.gethostname())
            stored = store.write(rev, info)
            if stored is not None:
                if holder is not None:
                    broke = holder
                return {"acquired": stored, "waited": now - started, "broke": broke, "already_held": False}
            holder = store.read()[0]  # someone else won the swap: who, for the message
        if now - started >= timeout:
            detail = holder.describe(now) if holder else "by another run"
            raise LockBusy(
                f"deploy lock {store.where} is {detail}; waited {now - started:.0f} s (timeout {timeout:.0f} s)"
            )
        sleep(max(0.0, min(poll, started + timeout - now)))


def release(store, token: str, *, attempts: int = 5) -> dict:
    """Release the lock if `token` holds it. Releasing a lock nobody holds is not an error."""
    store = _store(store)
    for _attempt in range(attempts):
        holder, rev = store.read()
        if holder is None:
            return {"released": False, "holder": None}
        if holder.token != token:
            raise LockNotOwned(
                f"deploy lock {store.where} is {holder.describe(time.time())}, not by this run; left in place"
            )
        if store.remove(rev):
            return {"released": True, "holder": holder}
        # changed between the read and the delete (a re-entrant acquire, a takeover): look again
    raise LockError(f"deploy lock {store.where} kept changing while it was being released; try again")


def status(store) -> LockInfo | None:
    return _store(store).read()[0]
