"""backup_verify: a backup proves itself by being restored and checked.

For a pgBackRest set:
    structure   the WAL the set needs is in the archive (a listing); in check mode, which
                restores nothing, also pgbackrest verify of the set (every file's checksum)
    restore     pgbackrest restore into a scratch instance, which compares every file with its
                checksum, recovered to the manifest's restore point (or to consistency when there
                is no manifest), promoted; after a failed restore, pgbackrest verify names the file
    amcheck     pg_amcheck --heapallindexed over every database of the copy
    manifest    row counts and checksums of the copy against the manifest recorded at backup time
    assertions  the caller's SQL, each returning true
For a logical dump: the files' sha256 and size against its manifest and `pg_restore --list`
(structure), pg_restore into a fresh scratch instance (restore), then the same three checks.

The files are read once (by the restore). amcheck runs alongside the manifest comparison; each
phase is timed on its own (Verification.phases).
"""

from __future__ import annotations

import json
import os
import threading
import time

from . import manifest as manifest_mod
from .database import fetch_all
from .pgbackrest import PgBackRestError
from .runner import CommandFailed, stop_group
from .scratch import Scratch, ScratchFailed, remove_leftovers
from .store import UnreadableObject, decrypt_file, sha256_file, stanza_prefix

CHECKS = ("structure", "restore", "amcheck", "manifest", "assertions")


class Verification:
    """Collects each check's result and time."""

    def __init__(self, kind: str):
        self.kind = kind
        self.started = time.monotonic()
        self.checks: dict[str, dict] = {}
        self.result: dict = {"kind": kind}

    def record(self, name: str, ok: bool, seconds: float, reason: str = "", **details) -> bool:
        self.checks[name] = {"name": name, "ok": ok, "seconds": round(seconds, 3), "reason": reason, **details}
        return ok

    def skip(self, name: str, why: str) -> None:
        self.checks[name] = {"name": name, "ok": None, "seconds": 0.0, "reason": "", "skipped": why}

    def phases(self) -> dict[str, float]:
        """Seconds of each phase: the restore check's time split into the files (restore) and
        the recovery when both were measured."""
        out = {name: self.checks[name]["seconds"] for name in CHECKS if name in self.checks}
        restore = self.checks.get("restore", {})
        if "files_seconds" in restore:
            out["restore"] = restore["files_seconds"]
            out["recovery"] = restore.get("recovery_seconds", round(restore["seconds"] - restore["files_seconds"], 3))
        order = ("structure", "restore", "recovery", "amcheck", "manifest", "assertions")
        return {name: out[name] for name in order if name in out}

    def finish(self) -> dict:
        for name in CHECKS:
            if name not in self.checks:
                self.skip(name, "not reached")
        failed = [c for c in self.checks.values() if c["ok"] is False]
        structural_only = all(self.checks[n]["ok"] is None for n in CHECKS[1:])
        verified = not failed and self.checks["structure"]["ok"] is True
        verified = verified and (structural_only or self.checks["restore"]["ok"] is True)
        self.result.update(
            phases=self.phases(),
            verified=verified,
            structural_only=structural_only,
            reason="; ".join(f"{c['name']}: {c['reason']}" for c in failed),
            checks=[self.checks[n] for n in CHECKS],
            seconds=round(time.monotonic() - self.started, 3),
        )
        return self.result


def run_assertions(scratch: Scratch, assertions, default_db: str) -> tuple[bool, str, list]:
    """Each assertion: {name, sql, database}. It passes when its first column is true."""
    results, failures = [], []
    for i, assertion in enumerate(assertions or ()):
        name = assertion.get("name") or f"assertion {i + 1}"
        db = assertion.get("database") or default_db
        t0 = time.monotonic()
        try:
            conn = scratch.connect(db)
            try:
                for statement in manifest_mod.SESSION_SETTINGS:
                    conn.cursor().execute(statement)
                rows = fetch_all(conn, assertion["sql"])
            finally:
                conn.close()
            ok = bool(rows) and rows[0][0] is True
            reason = "" if ok else f"{name} returned {rows[0][0] if rows else 'no row'!r}, not true"
        except Exception as exc:  # an assertion's SQL error is its failure
            ok, reason = False, f"{name} failed: {str(exc).strip().splitlines()[0]}"
        results.append({"name": name, "database": db, "ok": ok, "seconds": round(time.monotonic() - t0, 3)})
        if not ok:
            failures.append(reason)
    return not failures, "; ".join(failures), results


def _check_copy(
    v: Verification, scratch: Scratch, recorded: dict | None, *, assertions, exclude, jobs: int, timeout: float
) -> None:
    """amcheck (in the background) while the manifest is compared, then the assertions."""
    amcheck = scratch.runner.start(scratch.amcheck_command(jobs))
    t_amcheck = time.monotonic()
    # amcheck's own time, taken when it ends (not when the manifest comparison is done with it)
    done: dict = {}

    def wait_amcheck() -> None:
        done["out"], done["err"] = amcheck.communicate()
        done["at"] = time.monotonic()

    waiter = threading.Thread(target=wait_amcheck, name="amcheck", daemon=True)
    waiter.start()
    try:
        if recorded is not None:
            t0 = time.monotonic()
            try:
                skip = [*(exclude or ()), *recorded.get("excluded", ())]
                restored = manifest_mod.capture(
                    scratch.connect, databases=list(recorded["databases"]), exclude=skip, like=recorded
                )
                cmp = manifest_mod.compare(recorded, restored, skip)
                v.record(
                    "manifest",
                    cmp["ok"],
                    time.monotonic() - t0,
                    "; ".join(cmp["mismatches"][:10]),
                    tables=cmp["tables_checked"],
                    rows=restored["rows"],
                    rows_recorded=recorded.get("rows"),
                    extra_tables=cmp["extra_tables"],
                    mismatches=cmp["mismatches"],
                )
            except Exception as exc:
                v.record("manifest", False, time.monotonic() - t0, f"could not read the restored copy: {exc}")
        else:
            v.skip("manifest", "no manifest was recorded for this backup")
    finally:
        waiter.join(timeout)
        if waiter.is_alive():
            stop_group(amcheck)
            waiter.join(10)
            done["err"] = done.get("err", "") + f"\nstopped after the verification timeout of {timeout} s"
        # pg_amcheck passes only with rc 0 and nothing printed: it reports corruption on stdout
        output = (done.get("out", "") + done.get("err", "")).strip()
        ok = amcheck.returncode == 0 and not output
        reason = "" if ok else f"pg_amcheck (rc {amcheck.returncode}): {' / '.join(output.splitlines()[:6])}"
        v.record("amcheck", ok, done.get("at", time.monotonic()) - t_amcheck, reason)
    if assertions:
        default_db = next(iter(recorded["databases"])) if recorded else "postgres"
        t0 = time.monotonic()
        ok, reason, results = run_assertions(scratch, assertions, default_db)
        v.record("assertions", ok, time.monotonic() - t0, reason, results=results)
    else:
        v.skip("assertions", "none given")


def backup_summary(backup: dict) -> dict:
    return {
        "label": backup["label"],
        "type": backup["type"],
        "repo": backup.get("repo"),
        "prior": backup.get("prior"),
        "time_start": backup["timestamp"]["start"],
        "time_stop": backup["timestamp"]["stop"],
        "lsn_start": backup.get("lsn", {}).get("start"),
        "lsn_stop": backup.get("lsn", {}).get("stop"),
        "wal_start": backup.get("archive", {}).get("start"),
        "wal_stop": backup.get("archive", {}).get("stop"),
        "size": backup.get("info", {}).get("size"),
        "delta": backup.get("info", {}).get("delta"),
        "repo_size": backup.get("info", {}).get("repository", {}).get("size"),
        "repo_delta": backup.get("info", {}).get("repository", {}).get("delta"),
        "annotation": backup.get("annotation") or {},
    }


def manifest_key(stanza: str, label: str) -> str:
    return f"{stanza_prefix(stanza)}/manifest/{label}.json"


def record_key(stanza: str, name: str) -> str:
    return f"{stanza_prefix(stanza)}/verified/{name}.json"


def load_json(store, key: str) -> dict | None:
    """A JSON object stored at key, or None when there is none or it does not read as one
    (a verification record that cannot be read, or does not decrypt, is no record)."""
    try:
        text = store.get_text(key)
    except UnreadableObject:
        return None
    if text is None:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


MANIFEST_SHA256 = "f4a-manifest-sha256"


def load_manifest(store, key: str, *, restore_point: bool = False, sha256: str | None = None) -> dict | None:
    """The data manifest at key, checked (manifest.parse), or None when none was stored.
    Raises ManifestError naming the file when it is there but cannot be trusted (including when
    it does not decrypt). A plaintext manifest in an encrypted repository (written before manifests
    were encrypted) is read as it is and goes through the same sha256 check."""
    try:
        text = store.get_text(key)
    except UnreadableObject as exc:
        raise manifest_mod.ManifestError(str(exc)) from exc
    if text is None:
        if sha256:
            raise manifest_mod.ManifestError(
                f"{store.description}/{key} is missing, though the backup's annotation records its sha256"
            )
        return None
    return manifest_mod.parse(text, f"{store.description}/{key}", restore_point=restore_point, sha256=sha256)


def verify_physical(
    pgbr,
    store,
    *,
    repo: int,
    label: str = "latest",
    scratch_base: str,
    bindir: str,
    assertions=(),
    exclude=(),
    require_manifest: bool = True,
    structural_only: bool = False,
    process_max: int = 2,
    jobs: int = 2,
    timeout: float = 3600,
    settings=None,
    now: float | None = None,
) -> dict:
    v = Verification("physical")
    try:
        backup = pgbr.find(repo, label)
    except (PgBackRestError, CommandFailed) as exc:
        v.record("structure", False, 0.0, str(exc))
        return v.finish()
    summary = backup_summary(backup)
    now = time.time() if now is None else now
    v.result.update(
        backup=summary,
        repo=repo,
        stanza=pgbr.stanza,
        store=store.description,
        backup_age_seconds=round(now - summary["time_stop"], 1),
        sizes={"backup": summary["size"], "repository": summary["repo_size"]},
    )
    try:
        recorded = load_manifest(
            store,
            manifest_key(pgbr.stanza, summary["label"]),
            restore_point=True,
            sha256=summary["annotation"].get(MANIFEST_SHA256),
        )
    except manifest_mod.ManifestError as exc:
        v.record("structure", False, 0.0, str(exc))
        return v.finish()
    if recorded is None and require_manifest:
        v.record(
            "structure",
            False,
            0.0,
            f"no data manifest was recorded for backup {summary['label']} in {store.description}",
        )
        return v.finish()
    point = (recorded or {}).get("point", {})
    if recorded is not None:
        v.result["manifest"] = {
            "restore_point": point.get("restore_point"),
            "lsn": point.get("lsn"),
            "time": point.get("time"),
            "tables": recorded.get("tables"),
            "rows": recorded.get("rows"),
        }
    if structural_only:
        # check mode restores nothing: pgBackRest reads every file of the set against its checksum
        s = pgbr.verify_set(repo, backup, point.get("lsn"), timeout)
        v.record("structure", s["ok"], s["seconds"], s["reason"], wal_needed=s.get("wal_needed"))
        for name in CHECKS[1:]:
            v.skip(name, "structural check only (check mode)")
        return v.finish()

    # A full verification reads the files once: the restore compares every file with its
    # checksum as it writes it (a second pass, pgbackrest verify beside it, read them all again
    # and took CPU from the restore). What the restore cannot see first is WAL missing from the
    # archive, which only shows at the end of recovery: a listing checks it in seconds.
    s = pgbr.wal_check(repo, backup, point.get("lsn"), timeout=min(600.0, timeout))
    v.record(
        "structure",
        s["ok"],
        s["seconds"],
        s["reason"],
        wal_needed=s.get("wal_needed"),
        files="each compared with its checksum by pgbackrest restore",
    )
    if not s["ok"]:
        v.skip("restore", "the structural check failed")
        return v.finish()

    remove_leftovers(scratch_base, pgbr.runner)
    with Scratch(pgbr.runner, scratch_base, bindir, settings=settings) as scratch:
        scratch.make_data_dir()
        if point.get("restore_point"):
            target = {"target_type": "name", "target": point["restore_point"]}
        else:
            target = {"target_type": "immediate"}
        t0 = time.monotonic()
        timed_out = False
        try:
            restore = pgbr.runner.run(
                pgbr.restore_command(repo, summary["label"], scratch.data, process_max=process_max, **target),
                check=False,
                timeout=timeout,
            )
            rc, out, err = restore.returncode, restore.stdout, restore.stderr
        except CommandFailed as exc:  # stopped at the timeout (the runner stops its process group)
            timed_out = exc.returncode == -1
            rc, out = exc.returncode, ""
            err = str(exc)
            if timed_out:
                err = f"did not finish within the verification timeout of {timeout} s and was stopped"
        restore_files = time.monotonic() - t0
        if rc:
            text = (err or out).strip().splitlines()
            reason = f"pgbackrest restore failed: {' / '.join(text[-3:])}"
            if not timed_out:
                # the restore does not always name the file (a corrupt compressed or encrypted one
                # fails in the decoder): only now, read the set with pgbackrest verify to name it
                named = pgbr.verify_set(repo, backup, point.get("lsn"), timeout)
                if not named["ok"]:
                    reason += f"; pgbackrest verify of the set: {named['reason']}"
            v.record("restore", False, restore_files, reason)
            return v.finish()
        scratch.configure()
        try:
            started = scratch.start(timeout)
        except ScratchFailed as exc:
            v.record("restore", False, time.monotonic() - t0, str(exc), files_seconds=round(restore_files, 3))
            return v.finish()
        v.result["restore_seconds"] = round(time.monotonic() - t0, 3)
        v.result["sizes"]["restored"] = scratch.size()
        v.record(
            "restore",
            True,
            time.monotonic() - t0,
            files_seconds=round(restore_files, 3),
            recovery_seconds=round(started, 3),
            target=target,
        )
        _check_copy(v, scratch, recorded, assertions=assertions, exclude=exclude, jobs=jobs, timeout=timeout)
    return v.finish()


# ---------------------------------------------------------------------------- logical dumps


def logical_prefix(stanza: str) -> str:
    return f"{stanza_prefix(stanza)}/logical"


def load_logical_manifest(store, key: str) -> dict:
    """A logical backup's manifest.json, checked: its JSON, its files (each with a size and a
    sha256) and the data manifest inside it (manifest.validate). Raises ManifestError naming the
    file and what is wrong."""
    name = f"{store.description}/{key}"
    try:
        text = store.get_text(key)
    except UnreadableObject as exc:
        raise manifest_mod.ManifestError(str(exc)) from exc
    if text is None:
        raise manifest_mod.ManifestError(f"{name} is missing")
    meta = manifest_mod.load_json(text, name)
    if not isinstance(meta, dict):
        raise manifest_mod.ManifestError(f"{name} is a JSON {type(meta).__name__}, not an object")
    problems = []
    if meta.get("format") != 1:
        problems.append(f"format is {meta.get('format')!r}, expected 1")
    if not manifest_mod.is_number(meta.get("time")):
        problems.append(f"time is {meta.get('time')!r}, not a number")
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        problems.append("no files")
    else:
        for fname, info in sorted(files.items()):
            if not (
                isinstance(info, dict)
                and isinstance(info.get("size"), int)
                and isinstance(info.get("sha256"), str)
                and len(info["sha256"]) == 64
            ):
                problems.append(f"file {fname} has no size or sha256")
            elif info.get("database") is not None and not isinstance(info["database"], str):
                problems.append(f"file {fname} names no database")
    problems += [f"data: {p}" for p in manifest_mod.validate(meta.get("data"))]
    if not problems:
        dumped = {info["database"] for info in files.values() if info.get("database")}
        missing = sorted(set(meta["data"]["databases"]) - dumped)
        if missing:
            problems.append(f"no dump for database(s) {', '.join(missing)} that the data manifest lists")
    if problems:
        raise manifest_mod.ManifestError(f"{name} is not a valid logical backup manifest: {'; '.join(problems[:5])}")
    return meta


def logical_backups(store, stanza: str) -> list[str]:
    """Stamps of complete logical backups (those with a manifest.json), oldest first."""
    prefix = logical_prefix(stanza) + "/"
    stamps = set()
    for key in store.list(prefix):
        rest = key[len(prefix) :] if key.startswith(prefix) else key
        stamp, _sep, name = rest.partition("/")
        if name == "manifest.json":
            stamps.add(stamp)
    return sorted(stamps)


def verify_logical(
    store,
    runner,
    *,
    stanza: str,
    stamp: str = "latest",
    scratch_base: str,
    bindir: str,
    passphrase: str | None = None,
    assertions=(),
    exclude=(),
    structural_only: bool = False,
    jobs: int = 2,
    timeout: float = 3600,
    settings=None,
    now: float | None = None,
) -> dict:
    v = Verification("logical")
    t0 = time.monotonic()
    stamps = logical_backups(store, stanza)
    if not stamps:
        v.record("structure", False, 0.0, f"no logical backup of stanza {stanza} in {store.description}")
        return v.finish()
    if stamp in ("", "latest"):
        stamp = stamps[-1]
    elif stamp not in stamps:
        v.record("structure", False, 0.0, f"no logical backup {stamp} (there are: {', '.join(stamps)})")
        return v.finish()
    prefix = f"{logical_prefix(stanza)}/{stamp}"
    try:
        meta = load_logical_manifest(store, f"{prefix}/manifest.json")
    except manifest_mod.ManifestError as exc:
        v.result.update(backup={"label": stamp, "type": "logical"}, stanza=stanza, store=store.description)
        v.record("structure", False, time.monotonic() - t0, str(exc))
        return v.finish()
    now = time.time() if now is None else now
    v.result.update(
        backup={"label": stamp, "type": "logical", "time_stop": meta["time"], "files": meta["files"]},
        stanza=stanza,
        store=store.description,
        backup_age_seconds=round(now - meta["time"], 1),
        sizes={"backup": sum(f["size"] for f in meta["files"].values())},
        manifest={"tables": meta["data"].get("tables"), "rows": meta["data"].get("rows"), **meta["data"]["point"]},
    )
    if meta.get("encrypted") and not passphrase:
        v.record("structure", False, 0.0, "the logical backup is encrypted and no passphrase was given")
        return v.finish()
    remove_leftovers(scratch_base, runner)
    with Scratch(runner, scratch_base, bindir, settings=settings) as scratch:
        work = runner.make_dir(os.path.join(scratch.dir, "files"))
        problems, local = [], {}
        for name, info in sorted(meta["files"].items()):
            path = os.path.join(work, name)
            try:
                store.get_file(f"{prefix}/{name}", path)
            except FileNotFoundError:
                problems.append(f"{name} is missing from {store.description}")
                continue
            size, digest = os.path.getsize(path), sha256_file(path)
            if size != info["size"] or digest != info["sha256"]:
                problems.append(
                    f"{name} is not the file written at backup time: {size} bytes (recorded {info['size']}), "
                    f"sha256 {digest[:12]}... (recorded {info['sha256'][:12]}...)"
                )
                continue
            if meta.get("encrypted"):
                plain = path[: -len(".enc")] if path.endswith(".enc") else path + ".plain"
                try:
                    decrypt_file(runner, path, plain, passphrase)
                except CommandFailed as exc:
                    problems.append(f"{name} does not decrypt: {exc}")
                    continue
                os.unlink(path)
                path = plain
            runner.own(path)
            local[name] = path
        if not problems:
            for name, info in meta["files"].items():
                if info.get("database"):
                    listed = runner.run([os.path.join(bindir, "pg_restore"), "--list", local[name]], check=False)
                    if listed.returncode:
                        problems.append(f"pg_restore --list {name}: {listed.stderr.strip()[-300:]}")
        v.record("structure", not problems, time.monotonic() - t0, "; ".join(problems))
        if problems or structural_only:
            for name in CHECKS[1:]:
                v.skip(name, "structural check only (check mode)" if structural_only else "the structural check failed")
            return v.finish()
        t1 = time.monotonic()
        try:
            scratch.initdb()
            scratch.configure()
            scratch.start(timeout)
            host = ["-h", scratch.dir, "-p", str(scratch.port), "-U", "postgres"]
            # stored as globals.sql, or globals.sql.enc (decrypted above) in an encrypted repository
            roles = local.get("globals.sql") or local.get("globals.sql.enc")
            if roles:
                # roles first (owners of the restored objects); existing ones (postgres) are left as they are
                runner.run([os.path.join(bindir, "psql"), *host, "-X", "-q", "-d", "postgres", "-f", roles])
            for name, info in sorted(meta["files"].items()):
                db = info.get("database")
                if not db:
                    continue
                attrs = meta["data"]["databases"].get(db, {})
                if db != "postgres":
                    create = [
                        os.path.join(bindir, "createdb"),
                        *host,
                        "-T",
                        "template0",
                        "-E",
                        attrs.get("encoding", "UTF8"),
                    ]
                    if attrs.get("collate"):
                        create += ["--lc-collate", attrs["collate"], "--lc-ctype", attrs.get("ctype", attrs["collate"])]
                    runner.run([*create, db])
                runner.run(
                    [
                        os.path.join(bindir, "pg_restore"),
                        *host,
                        "-d",
                        db,
                        "--exit-on-error",
                        "-j",
                        str(jobs),
                        local[name],
                    ],
                    timeout=timeout,
                )
        except (CommandFailed, ScratchFailed) as exc:
            v.record("restore", False, time.monotonic() - t1, str(exc))
            return v.finish()
        v.result["restore_seconds"] = round(time.monotonic() - t0, 3)
        v.result["sizes"]["restored"] = scratch.size()
        v.record("restore", True, time.monotonic() - t1)
        recorded = meta["data"]
        _check_copy(v, scratch, recorded, assertions=assertions, exclude=exclude, jobs=jobs, timeout=timeout)
    return v.finish()


def record(store, stanza: str, name: str, result: dict) -> str:
    key = record_key(stanza, name)
    store.put_text(key, json.dumps({**result, "recorded_at": time.time()}, indent=1, default=str))
    return key


def newest_verified(
    pgbr,
    store,
    *,
    repo: int,
    before: float | None = None,
    trust_records: bool = True,
    max_candidates: int = 3,
    verify_kwargs: dict,
) -> dict:
    """The newest backup (stopped before `before`, if given) that verifies: one whose recorded
    verification passed (when trust_records), else the first of up to max_candidates, newest
    first, that passes verification now."""
    candidates = [b for b in reversed(pgbr.backups(repo)) if before is None or b["timestamp"]["stop"] < before]
    if not candidates:
        raise PgBackRestError(f"repo{repo} holds no backup" + (" before the target time" if before else ""))
    attempts = []
    if trust_records:
        for b in candidates:
            rec = load_json(store, record_key(pgbr.stanza, b["label"]))
            if rec and rec.get("verified"):
                return {"label": b["label"], "how": "recorded verification", "record": rec, "attempts": attempts}
    for b in candidates[:max_candidates]:
        try:
            result = verify_physical(pgbr, store, repo=repo, label=b["label"], **verify_kwargs)
        except Exception as exc:  # one backup that cannot be verified must not stop the search
            result = {"verified": False, "reason": f"verification raised {type(exc).__name__}: {exc}"}
        attempts.append({"label": b["label"], "verified": result["verified"], "reason": result["reason"]})
        if result["verified"]:
            record(store, pgbr.stanza, b["label"], result)
            return {"label": b["label"], "how": "verified now", "record": result, "attempts": attempts}
    raise PgBackRestError(
        "no backup verifies: " + "; ".join(f"{a['label']}: {a['reason']}" for a in attempts)
        if attempts
        else "none tried"
    )
