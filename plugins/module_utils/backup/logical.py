"""Logical backups: pg_dump -Fc of each database, the roles (pg_dumpall --globals-only), and a
manifest, stored beside the physical backups (the same bucket or directory).

A second format that does not depend on the engine's files: it restores into any PostgreSQL
version that can read the dump, and it works where pgBackRest cannot reach the files (RDS).
Each dump runs in the very snapshot its manifest was computed in (`pg_dump --snapshot`), so the
manifest describes the dump exactly without stopping any writer. With a passphrase, every file is
encrypted (openssl AES-256-CBC, PBKDF2) before it leaves the host.
"""

from __future__ import annotations

import datetime
import json
import os
import time

from . import manifest as manifest_mod
from .store import encrypt_file, sha256_file
from .verify import logical_backups, logical_prefix


def stamp_now(now: float | None = None) -> str:
    at = datetime.datetime.fromtimestamp(time.time() if now is None else now, tz=datetime.UTC)
    return at.strftime("%Y%m%dT%H%M%SZ")


def stamp_time(stamp: str) -> float:
    return datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC).timestamp()


def logical_backup(
    *,
    runner,
    connect,
    store,
    stanza: str,
    host: str,
    port: int,
    bindir: str,
    spool: str,
    databases=None,
    exclude=(),
    passphrase: str | None = None,
) -> dict:
    """Dump `databases` (default: every database that accepts connections except postgres)."""
    started = time.time()
    stamp = stamp_now(started)
    work = runner.make_dir(os.path.join(spool, f"logical-{stamp}"))
    conn_args = ["-h", host, "-p", str(port), "-U", "postgres"]
    try:
        if not databases:
            admin = connect("postgres")
            try:
                found = list(manifest_mod.list_databases(admin))
                databases = [d for d in found if d != "postgres"] or found
            finally:
                admin.close()
        plain: dict[str, str] = {}

        def dump(database: str, snapshot: str) -> None:
            path = os.path.join(work, f"{database}.dump")
            runner.run(
                [os.path.join(bindir, "pg_dump"), *conn_args, "-Fc", f"--snapshot={snapshot}", "-f", path, database],
                timeout=24 * 3600,
            )
            plain[f"{database}.dump"] = path

        data = manifest_mod.capture(connect, databases=databases, exclude=exclude, on_snapshot=dump)
        globals_path = os.path.join(work, "globals.sql")
        runner.run([os.path.join(bindir, "pg_dumpall"), *conn_args, "--globals-only", "-f", globals_path])
        plain["globals.sql"] = globals_path
        files = {}
        prefix = f"{logical_prefix(stanza)}/{stamp}"
        for name, path in sorted(plain.items()):
            stored_name, stored_path = name, path
            if passphrase:
                stored_name, stored_path = name + ".enc", path + ".enc"
                encrypt_file(runner, path, stored_path, passphrase)
            entry = {"size": os.path.getsize(stored_path), "sha256": sha256_file(stored_path)}
            if name.endswith(".dump"):
                entry["database"] = name[: -len(".dump")]
            store.put_file(f"{prefix}/{stored_name}", stored_path)
            files[stored_name] = entry
        meta = {
            "format": 1,
            "kind": "logical",
            "stanza": stanza,
            "stamp": stamp,
            "time": started,
            "encrypted": bool(passphrase),
            "files": files,
            "data": data,
        }
        # the manifest goes last: a logical backup without one is incomplete and never listed (the
        # store encrypts it too when the repository has a passphrase)
        store.put_text(f"{prefix}/manifest.json", json.dumps(meta, indent=1))
        return {
            "stamp": stamp,
            "databases": databases,
            "files": files,
            "size": sum(f["size"] for f in files.values()),
            "tables": data["tables"],
            "rows": data["rows"],
            "seconds": round(time.time() - started, 3),
            "store": store.description,
        }
    finally:
        runner.remove_tree(work)


def expire_logical(store, stanza: str, retention_days: float, now: float | None = None) -> list[str]:
    """Delete logical backups older than the retention, always keeping the newest."""
    now = time.time() if now is None else now
    stamps = logical_backups(store, stanza)
    expired = [s for s in stamps[:-1] if now - stamp_time(s) > retention_days * 86400]
    prefix = logical_prefix(stanza)
    for stamp in expired:
        keys = store.list(f"{prefix}/{stamp}/")
        # the manifest first, so a half-deleted backup is never taken for a complete one
        for key in sorted(keys, key=lambda k: not k.endswith("manifest.json")):
            store.delete(key)
    return expired
