"""free4allweb-backup: what the systemd timers and playbooks/backup.yml run on the database host.

    free4allweb-backup backup --type full|diff|incr [--repo N]   pgBackRest backup + data manifest
    free4allweb-backup logical                                   pg_dump -Fc of every database + manifest
    free4allweb-backup list [--repo N]                           backups, manifests, verifications

Runs as the postgres user. Reads /etc/free4allweb/backup.json (written by the backup role) and
pgBackRest's own configuration (the repositories, their credentials and passphrases). Prints
one JSON document; exits non-zero, naming the cause, when anything fails.

A physical backup is complete when: pgBackRest has backed up every repository, the manifest
has been captured at a restore point written after the last of them, the WAL holding that
restore point has been archived, and each repository holds the manifest under the backup's
label (the backup is also annotated with the restore point). pgBackRest expires old backups at
the end of each backup; manifests and verification records of expired backups go with them.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time

from . import manifest as manifest_mod
from .database import connect as db_connect
from .database import fetch_one
from .logical import expire_logical, logical_backup
from .pgbackrest import PgBackRest, PgBackRestError, read_config, repo_options, repositories, wal_segment
from .runner import CommandFailed, Runner
from .store import StoreError, stanza_prefix, store_for
from .verify import MANIFEST_SHA256, backup_summary, load_json, manifest_key, record_key

CONFIG = "/etc/free4allweb/backup.json"
DEFAULTS = {
    "stanza": "main",
    "pgbackrest_config": "/etc/pgbackrest/pgbackrest.conf",
    "pg_host": "/var/run/postgresql",
    "pg_port": 5432,
    "pg_bindir": "/usr/lib/postgresql/15/bin",
    "repositories": [],
    "manifest_exclude": [],
    "manifest_lock_timeout": 10,
    "archive_wait": 120,
    "spool": "/var/lib/postgresql/f4a-backup",
    # seconds one pgbackrest backup may run (then it is stopped and the command fails)
    "command_timeout": 21600,
    # the node exporter's textfile the outcome of each backup command is written to ("": none)
    "metrics_file": "",
    "logical": {"repository": 1, "databases": [], "retention_days": 30},
}


class BackupFailed(Exception):
    pass


class Context:
    def __init__(self, config: dict):
        self.config = {**DEFAULTS, **config}
        self.stanza = self.config["stanza"]
        self.conf = read_config(self.config["pgbackrest_config"])
        self.runner = Runner()
        self.repos = self.config["repositories"] or repositories(self.conf, self.stanza)
        self.pgbr = PgBackRest(self.runner, self.stanza, self.config["pgbackrest_config"])

    def options(self, repo: int) -> dict:
        opts = repo_options(self.conf, self.stanza, repo)
        self.runner.add_secret(opts.get("cipher-pass"))
        return opts

    def store(self, repo: int):
        return store_for(self.options(repo), self.runner)

    def connect(self, dbname: str):
        return db_connect(self.config["pg_host"], self.config["pg_port"], dbname)


def wait_archived(ctx: Context, lsn: str, timeout: float) -> str:
    """Switch to a new WAL segment and wait until the one holding `lsn` is archived."""
    conn = ctx.connect("postgres")
    try:
        timeline = fetch_one(conn, "SELECT timeline_id FROM pg_control_checkpoint()")[0]
        segment = wal_segment(lsn, timeline)
        fetch_one(conn, "SELECT pg_switch_wal()")
        deadline = time.monotonic() + timeout
        while True:
            last, failed = fetch_one(conn, "SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver")
            if last and last[:24] >= segment:
                return segment
            if time.monotonic() > deadline:
                raise BackupFailed(
                    f"WAL segment {segment} (holding the manifest's restore point) was not archived within "
                    f"{timeout} s (last archived: {last}, last failed: {failed})"
                )
            time.sleep(0.2)
    finally:
        conn.close()


def prune(ctx: Context, repo: int, labels: set[str]) -> list[str]:
    """Manifests and verification records of backups pgBackRest has expired."""
    store = ctx.store(repo)
    removed = []
    for kind in ("manifest", "verified"):
        prefix = f"{stanza_prefix(ctx.stanza)}/{kind}/"
        for key in store.list(prefix):
            name = os.path.basename(key)[: -len(".json")]
            if name.startswith("logical-") or name in labels:
                continue
            store.delete(key)
            removed.append(key)
    return removed


def cmd_backup(ctx: Context, kind: str, repos: list[int]) -> dict:
    started = time.time()
    backups = {}
    for repo in repos:
        t0 = time.monotonic()
        backups[repo] = ctx.pgbr.backup(repo, kind, timeout=float(ctx.config["command_timeout"]))
        backups[repo]["seconds"] = round(time.monotonic() - t0, 3)
        if backups[repo].get("error"):
            # data page checksums: pgBackRest read a page whose checksum is wrong
            label = backups[repo]["label"]
            files = ctx.pgbr.page_errors(repo, label)
            raise BackupFailed(
                f"backup {label} of repo{repo} found invalid page checksums in {', '.join(files[:10])}: the "
                "database has corrupt pages (no manifest is recorded, so the backup never verifies)"
            )
    point = f"f4a-{backups[repos[-1]]['label']}"
    data = manifest_mod.capture(
        ctx.connect,
        exclude=ctx.config["manifest_exclude"],
        restore_point=point,
        lock_timeout=float(ctx.config["manifest_lock_timeout"]),
    )
    segment = wait_archived(ctx, data["point"]["lsn"], float(ctx.config["archive_wait"]))
    out = []
    for repo in repos:
        backup = backups[repo]
        doc = {"kind": "physical", "stanza": ctx.stanza, "repo": repo, "backup": backup_summary(backup), **data}
        text = json.dumps(doc, indent=1)
        ctx.store(repo).put_text(manifest_key(ctx.stanza, backup["label"]), text)
        # the manifest's sha256 goes into the backup itself: verify refuses a manifest that is not this one
        ctx.pgbr.annotate(
            repo, backup["label"], {"f4a-restore-point": point, MANIFEST_SHA256: manifest_mod.sha256_text(text)}
        )
        labels = {b["label"] for b in ctx.pgbr.backups(repo)}
        out.append(
            {
                "repo": repo,
                "label": backup["label"],
                "type": backup["type"],
                "seconds": backup["seconds"],
                "size": backup["info"]["size"],
                "repo_size": backup["info"]["repository"]["size"],
                "pruned": prune(ctx, repo, labels),
            }
        )
    return {
        "changed": True,
        "stanza": ctx.stanza,
        "backups": out,
        "manifest": {
            "restore_point": point,
            "lsn": data["point"]["lsn"],
            "wal_segment": segment,
            "tables": data["tables"],
            "rows": data["rows"],
            "seconds": data["seconds"],
            "write_pause_seconds": data["write_pause_seconds"],
        },
        "seconds": round(time.time() - started, 3),
    }


def cmd_logical(ctx: Context) -> dict:
    settings = {**DEFAULTS["logical"], **ctx.config.get("logical", {})}
    repo = int(settings["repository"])
    store = ctx.store(repo)
    result = logical_backup(
        runner=ctx.runner,
        connect=ctx.connect,
        store=store,
        stanza=ctx.stanza,
        host=ctx.config["pg_host"],
        port=ctx.config["pg_port"],
        bindir=ctx.config["pg_bindir"],
        spool=ctx.runner.make_dir(ctx.config["spool"]),
        databases=settings["databases"] or None,
        exclude=ctx.config["manifest_exclude"],
        passphrase=ctx.options(repo).get("cipher-pass"),
    )
    result["repo"] = repo
    result["expired"] = expire_logical(store, ctx.stanza, float(settings["retention_days"]))
    result["changed"] = True
    return result


def cmd_list(ctx: Context, repos: list[int]) -> dict:
    out = []
    for repo in repos:
        store = ctx.store(repo)
        for backup in ctx.pgbr.backups(repo):
            summary = backup_summary(backup)
            rec = load_json(store, record_key(ctx.stanza, backup["label"]))
            # whether one is stored (verify says whether it can be trusted)
            summary["manifest"] = store.exists(manifest_key(ctx.stanza, backup["label"]))
            summary["verified"] = None if rec is None else bool(rec.get("verified"))
            summary["verified_at"] = None if rec is None else rec.get("recorded_at")
            out.append(summary)
    logical = {**DEFAULTS["logical"], **ctx.config.get("logical", {})}
    return {"changed": False, "stanza": ctx.stanza, "backups": out, "logical_repository": int(logical["repository"])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="free4allweb-backup", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--config", default=os.environ.get("F4A_BACKUP_CONFIG", CONFIG))
    sub = parser.add_subparsers(dest="command", required=True)
    backup = sub.add_parser("backup", help="pgBackRest backup of every repository, with the data manifest")
    backup.add_argument("--type", choices=["full", "diff", "incr"], default="full")
    backup.add_argument("--repo", type=int, action="append", help="repository (default: all)")
    sub.add_parser("logical", help="pg_dump -Fc of every database, with the data manifest")
    listing = sub.add_parser("list", help="backups with their manifest and last verification")
    listing.add_argument("--repo", type=int, action="append")
    args = parser.parse_args(argv)
    started = time.time()
    with open(args.config, encoding="utf-8") as fh:
        ctx = Context(json.load(fh))
    try:
        if args.command == "list":
            result = cmd_list(ctx, args.repo or ctx.repos)
        else:
            # one backup at a time per host (timers and on-demand runs may overlap)
            lock_dir = ctx.runner.make_dir(ctx.config["spool"])
            with open(os.path.join(lock_dir, "backup.lock"), "w", encoding="utf-8") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if args.command == "backup":
                    result = cmd_backup(ctx, args.type, args.repo or ctx.repos)
                else:
                    result = cmd_logical(ctx)
    except Exception as exc:  # every failure is a result naming its cause (and, for backups, a metric)
        known = (BackupFailed, CommandFailed, PgBackRestError, StoreError, manifest_mod.ManifestError, OSError)
        if not isinstance(exc, known):
            exc = BackupFailed(f"{type(exc).__name__}: {str(exc).strip()}")
        if args.command != "list":
            export_outcome(ctx, metric_kind(args), started, ok=False)
        sys.stdout.write(json.dumps({"failed": True, "msg": str(exc)}) + "\n")
        sys.stderr.write(f"free4allweb-backup {args.command} failed: {exc}\n")
        return 1
    if args.command != "list":
        export_outcome(ctx, metric_kind(args), started, ok=True)
    sys.stdout.write(json.dumps(result, indent=1, default=str) + "\n")
    return 0


def metric_kind(args) -> str:
    return args.type if args.command == "backup" else "logical"


# (metric, the outcome's key it exports, help text)
METRICS = (
    ("free4allweb_backup_last_run_timestamp_seconds", "ended", "When the last backup command of this type ended."),
    (
        "free4allweb_backup_last_run_success",
        "success",
        "1 when the last backup command of this type succeeded, else 0.",
    ),
    ("free4allweb_backup_last_run_duration_seconds", "seconds", "How long the last backup command of this type ran."),
    (
        "free4allweb_backup_last_success_timestamp_seconds",
        "last_success",
        "When a backup command of this type last succeeded.",
    ),
)


def render_outcomes(stanza: str, outcomes: dict) -> str:
    """The textfile collector's format: one series per backup type of each metric."""
    lines = []
    for name, key, text in METRICS:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
        for kind in sorted(outcomes):
            value = outcomes[kind].get(key)
            if value is not None:
                lines.append(f'{name}{{stanza="{stanza}",type="{kind}"}} {float(value):.3f}')
    return "\n".join(lines) + "\n"


def read_outcomes(text: str) -> dict:
    """The outcomes a metrics file holds (render_outcomes' format), by backup type."""
    keys = {name: key for name, key, _text in METRICS}
    out: dict = {}
    for line in text.splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        name, _sep, rest = line.partition("{")
        labels, _sep, value = rest.partition("} ")
        kind = dict(part.split("=", 1) for part in labels.split(",") if "=" in part).get("type", '""').strip('"')
        if name in keys and kind:
            try:
                out.setdefault(kind, {})[keys[name]] = float(value)
            except ValueError:
                continue
    return out


def export_outcome(ctx: Context, kind: str, started: float, *, ok: bool, now: float | None = None) -> None:
    """Record this command's outcome in the metrics file (kept for the other types; the last
    success of this type is kept when it failed). A file that cannot be written is reported on
    stderr and does not change the command's result."""
    path = ctx.config.get("metrics_file")
    if not path:
        return
    now = time.time() if now is None else now
    try:
        try:
            with open(path, encoding="utf-8") as fh:
                outcomes = read_outcomes(fh.read())
        except FileNotFoundError:
            outcomes = {}
        previous = outcomes.get(kind, {})
        outcomes[kind] = {
            "ended": now,
            "success": 1 if ok else 0,
            "seconds": max(0.0, now - started),
            "last_success": now if ok else previous.get("last_success"),
        }
        # one write of the whole file, in place (the role owns the file; the node exporter reads it)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(render_outcomes(ctx.stanza, outcomes))
    except OSError as exc:
        sys.stderr.write(f"free4allweb-backup: could not write the metrics file {path}: {exc}\n")
