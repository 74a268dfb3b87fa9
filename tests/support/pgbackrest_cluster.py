"""A real PostgreSQL 15 cluster on this host that archives its WAL with pgBackRest, for tests of
the backup logic (plugins/module_utils/backup) without the lab.

The cluster listens only on a Unix socket in its own directory (no TCP). Repositories: repo1 is a
directory; repo2, when an S3 endpoint is given (tests/support/s3_front.py), is a bucket behind TLS.
Everything runs as postgres (PostgreSQL and pgBackRest refuse root) and lives in one temporary
directory that `remove()` deletes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ansible_collections.free4allweb.devops.plugins.module_utils.backup import cli
from ansible_collections.free4allweb.devops.plugins.module_utils.backup.pgbackrest import (
    PgBackRest,
    read_config,
    repo_options,
)
from ansible_collections.free4allweb.devops.plugins.module_utils.backup.runner import Runner
from ansible_collections.free4allweb.devops.plugins.module_utils.backup.store import store_for

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
STANZA = "test"


ROLE_DEFAULTS = Path(__file__).resolve().parents[2] / "roles" / "backup" / "defaults" / "main.yml"


def shipped_limits() -> dict:
    """The backup role's shipped time limits, so the tests run with what production runs."""
    import yaml

    d = yaml.safe_load(ROLE_DEFAULTS.read_text())
    return {
        "io-timeout": int(d["backup_io_timeout"]),
        "db-timeout": int(d["backup_db_timeout"]),
        "protocol-timeout": int(d["backup_db_timeout"]) + 30,
        "archive-timeout": int(d["backup_archive_push_timeout"]),
        "command_timeout": int(d["backup_command_timeout"]),
    }


def as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class ArchivedCluster:
    def __init__(self, s3: dict | None = None, cipher_pass: str | None = None, archive_timeout: int = 2):
        self.base = Path(tempfile.mkdtemp(prefix="f4a-bk-"))
        os.chmod(self.base, 0o755)
        self.data = self.base / "data"
        self.socket = self.base / "sock"
        self.repo1 = self.base / "repo1"
        self.scratch = self.base / "scratch"
        self.conf = self.base / "pgbackrest.conf"
        self.cli_conf = self.base / "backup.json"
        self.metrics = self.base / "free4allweb_backup.prom"
        self.port = 25400 + os.getpid() % 500
        self.s3 = s3
        self.cipher_pass = cipher_pass
        self.archive_timeout = archive_timeout
        self.runner = Runner()

    # ------------------------------------------------------------------ setup
    def create(self) -> ArchivedCluster:
        for d in (self.socket, self.repo1, self.base / "log", self.base / "lock", self.base / "spool"):
            d.mkdir()
        subprocess.run(["chown", "-R", "postgres:postgres", str(self.base)], check=True)
        self.conf.write_text(self.pgbackrest_conf())
        subprocess.run(["chown", "postgres:postgres", str(self.conf)], check=True)
        self.cli_conf.write_text(
            json.dumps(
                {
                    "stanza": STANZA,
                    "pgbackrest_config": str(self.conf),
                    "pg_host": str(self.socket),
                    "pg_port": self.port,
                    "pg_bindir": str(PG_BIN),
                    "spool": str(self.base / "spool"),
                    "archive_wait": 60,
                    "command_timeout": shipped_limits()["command_timeout"],
                    "metrics_file": str(self.metrics),
                    "logical": {"repository": 2 if self.s3 else 1, "retention_days": 30},
                }
            )
        )
        # data page checksums, as the postgresql role creates clusters: pgBackRest checks every page
        self.run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--data-checksums",
            ]
        )
        with (self.data / "postgresql.conf").open("a") as fh:
            fh.write(
                f"port = {self.port}\nlisten_addresses = ''\nunix_socket_directories = '{self.socket}'\n"
                "archive_mode = on\nfsync = off\nwal_level = replica\nmax_wal_senders = 2\n"
                f"archive_command = 'pgbackrest --config={self.conf} --stanza={STANZA} archive-push %p'\n"
                f"archive_timeout = {self.archive_timeout}\n"
            )
        self.start()
        self.pgbackrest("stanza-create")
        self.pgbackrest("check")
        return self

    def pgbackrest_conf(self) -> str:
        lines = [
            "[global]",
            f"log-path={self.base / 'log'}",
            f"lock-path={self.base / 'lock'}",
            "log-level-console=warn",
            "compress-type=zst",
            "start-fast=y",
            "process-max=2",
            *(f"{k}={v}" for k, v in shipped_limits().items() if k != "command_timeout"),
            f"repo1-path={self.repo1}",
            "repo1-retention-full=4",
        ]
        if self.cipher_pass:
            lines += ["repo1-cipher-type=aes-256-cbc", f"repo1-cipher-pass={self.cipher_pass}"]
        if self.s3:
            ca = self.base / "s3-ca.pem"
            ca.write_text(self.s3["ca_certificate"])
            lines += [
                "repo2-type=s3",
                f"repo2-path={self.s3['path']}",
                "repo2-retention-full=4",
                f"repo2-s3-endpoint={self.s3['endpoint']}",
                f"repo2-s3-bucket={self.s3['bucket']}",
                f"repo2-s3-region={self.s3['region']}",
                f"repo2-s3-key={self.s3['key']}",
                f"repo2-s3-key-secret={self.s3['secret']}",
                "repo2-s3-uri-style=path",
                f"repo2-storage-port={self.s3['port']}",
                f"repo2-storage-ca-file={ca}",
            ]
            if self.s3.get("cipher_pass"):
                lines += ["repo2-cipher-type=aes-256-cbc", f"repo2-cipher-pass={self.s3['cipher_pass']}"]
        lines += ["", f"[{STANZA}]", f"pg1-path={self.data}", f"pg1-port={self.port}", f"pg1-socket-path={self.socket}"]
        return "\n".join(lines) + "\n"

    def run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(as_postgres(args), check=False, capture_output=True, text=True)
        if check and proc.returncode:
            raise RuntimeError(f"{' '.join(args)} failed (rc {proc.returncode}): {proc.stderr or proc.stdout}")
        return proc

    def pgbackrest(self, *args: str) -> str:
        return self.run(["pgbackrest", f"--config={self.conf}", f"--stanza={STANZA}", *args]).stdout

    def start(self) -> None:
        self.run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "pg.log"), "-w", "start"])

    def stop(self) -> None:
        self.run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"], check=False)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    # ------------------------------------------------------------------ use
    def dsn(self, db: str = "postgres") -> str:
        return f"host={self.socket} port={self.port} dbname={db} user=postgres"

    def sql(self, query: str, db: str = "postgres") -> list[tuple]:
        import psycopg

        with psycopg.connect(self.dsn(db), autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall() if cur.description else []

    def context(self) -> cli.Context:
        return cli.Context(json.loads(self.cli_conf.read_text()))

    def backup(self, kind: str = "full", repos=(1,)) -> dict:
        return cli.cmd_backup(self.context(), kind, list(repos))

    def logical(self) -> dict:
        return cli.cmd_logical(self.context())

    def pgbr(self) -> PgBackRest:
        return PgBackRest(self.runner, STANZA, str(self.conf))

    def store(self, repo: int = 1):
        options = repo_options(read_config(str(self.conf)), STANZA, repo)
        return store_for(options, self.runner)

    def repo_options(self, repo: int) -> dict:
        return repo_options(read_config(str(self.conf)), STANZA, repo)

    def backup_dir(self, label: str) -> Path:
        return self.repo1 / "backup" / STANZA / label

    def archived_segment(self, name: str) -> Path:
        found = list((self.repo1 / "archive" / STANZA).glob(f"*/{name[:16]}/{name}-*"))
        if not found:
            raise FileNotFoundError(name)
        return found[0]

    def scratch_leftovers(self) -> list[str]:
        left = os.listdir(self.scratch) if self.scratch.exists() else []
        procs = subprocess.run(
            ["pgrep", "-f", f"-D {self.scratch}"], check=False, capture_output=True, text=True
        ).stdout.split()
        return left + procs


@contextlib.contextmanager
def flipped_byte(path: Path):
    """Flip one byte in the middle of a file, and flip it back afterwards."""
    data = bytearray(path.read_bytes())
    i = len(data) // 2
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    try:
        yield i
    finally:
        data[i] ^= 0xFF
        path.write_bytes(bytes(data))


@contextlib.contextmanager
def moved_aside(path: Path):
    aside = path.with_name(path.name + ".aside")
    path.rename(aside)
    try:
        yield
    finally:
        aside.rename(path)


def wait_for(predicate, timeout: float = 30, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(interval)
