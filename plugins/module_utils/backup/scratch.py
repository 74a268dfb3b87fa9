"""A throwaway PostgreSQL instance: its own data directory, its own socket directory, no TCP.

It never touches the live cluster: it listens on no address (only a Unix socket in its private
directory, so its port number cannot clash with anything), does not archive, and is stopped and
deleted when the `with` block ends, whether verification passed, failed or crashed. Leftovers of
a run that was killed are removed by the next run (`remove_leftovers`).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time

from .database import connect, fetch_one
from .runner import CommandFailed

PG_BIN = "/usr/lib/postgresql/15/bin"
PREFIX = "f4a-scratch-"

SETTINGS = {
    "listen_addresses": "''",
    "archive_mode": "off",
    "hot_standby": "off",  # no connections until recovery has finished and the copy is promoted
    "fsync": "off",  # a throwaway copy: nothing to keep safe across a crash
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "autovacuum": "off",
    "shared_buffers": "64MB",
    "max_connections": "20",
    "dynamic_shared_memory_type": "mmap",
    "max_parallel_workers_per_gather": "0",
    "log_min_messages": "warning",
    "logging_collector": "off",
}


class ScratchFailed(Exception):
    pass


def fatal_lines(log_text: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"(?:FATAL|PANIC):\s+(.*)", log_text)]


def remove_leftovers(base: str, runner, max_age: float = 3600) -> list[str]:
    """Delete scratch directories of runs that died (no live postmaster, older than max_age)."""
    removed = []
    if not os.path.isdir(base):
        return removed
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if not name.startswith(PREFIX) or time.time() - os.path.getmtime(path) < max_age:
            continue
        pid_file = os.path.join(path, "data", "postmaster.pid")
        try:
            with open(pid_file, encoding="utf-8") as fh:
                pid = int(fh.readline())
            os.kill(pid, 0)
            continue  # still running
        except (OSError, ValueError):
            pass
        runner.remove_tree(path)
        removed.append(path)
    return removed


class Scratch:
    def __init__(self, runner, base: str, bindir: str = PG_BIN, port: int = 54329, settings=None):
        self.runner = runner
        self.bindir = bindir
        self.port = int(port)
        runner.make_dir(base, 0o700)
        self.dir = tempfile.mkdtemp(prefix=PREFIX, dir=base)
        runner.make_dir(self.dir, 0o700)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.settings = {**SETTINGS, **{k: str(v) for k, v in (settings or {}).items()}}
        self.started = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def pg(self, name: str) -> str:
        return os.path.join(self.bindir, name)

    def make_data_dir(self) -> None:
        self.runner.make_dir(self.data, 0o700)

    def initdb(self) -> None:
        self.runner.run(
            [self.pg("initdb"), "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
            timeout=300,
        )

    def configure(self) -> None:
        """postgresql.conf, pg_hba.conf and pg_ident.conf of the copy (a Debian data directory
        has none: they live in /etc/postgresql). Settings pgBackRest wrote for recovery stay in
        postgresql.auto.conf."""
        lines = [f"{k} = {v}" for k, v in self.settings.items()]
        lines += [f"port = {self.port}", f"unix_socket_directories = '{self.dir}'"]
        files = {
            "postgresql.conf": "\n".join(lines) + "\n",
            # trust, but only over the socket in this 0700 directory: no one else can reach it
            "pg_hba.conf": "local all all trust\n",
            "pg_ident.conf": "",
        }
        for name, text in files.items():
            path = os.path.join(self.data, name)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            self.runner.own(path)

    def start(self, timeout: float = 3600) -> float:
        """Start the copy and wait until recovery has finished and it accepts connections."""
        t0 = time.monotonic()
        proc = self.runner.run(
            [self.pg("pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", str(int(timeout)), "start"],
            check=False,
            timeout=timeout + 30,
        )
        self.started = True
        if proc.returncode:
            raise ScratchFailed(self.failure("did not start"))
        self.wait_promoted(timeout - (time.monotonic() - t0))
        return time.monotonic() - t0

    def wait_promoted(self, timeout: float) -> None:
        deadline = time.monotonic() + max(timeout, 5)
        while True:
            try:
                conn = self.connect("postgres")
                try:
                    if not fetch_one(conn, "SELECT pg_is_in_recovery()")[0]:
                        return
                finally:
                    conn.close()
            except Exception as exc:  # not up yet, or gone
                if not self.postmaster_alive():
                    # recovery failed (a FATAL in the startup process stops the postmaster): say so
                    # now, with the log, instead of waiting out the timeout
                    raise ScratchFailed(self.failure("stopped during recovery")) from exc
                if time.monotonic() > deadline:
                    raise ScratchFailed(self.failure(f"is not accepting connections ({exc})")) from exc
            if time.monotonic() > deadline:
                raise ScratchFailed(self.failure("is still in recovery"))
            time.sleep(0.2)

    def postmaster_alive(self) -> bool:
        """The copy's postmaster is running: its postmaster.pid is there and names a live process
        (a postmaster that exits removes the file; one that was killed leaves it behind)."""
        try:
            with open(os.path.join(self.data, "postmaster.pid"), encoding="ascii", errors="replace") as fh:
                pid = int(fh.readline().strip())
        except (OSError, ValueError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, owned by another user
            return True
        return True

    def failure(self, what: str) -> str:
        text = self.log_text()
        fatal = fatal_lines(text)
        if fatal:
            return f"the restored copy {what}: {'; '.join(dict.fromkeys(fatal))}"
        tail = " / ".join(text.strip().splitlines()[-3:])
        return f"the restored copy {what}: {tail or 'no log'}"

    def log_text(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def connect(self, dbname: str):
        return connect(self.dir, self.port, dbname, user="postgres")

    def amcheck_command(self, jobs: int = 2) -> list[str]:
        """pg_amcheck over every database of this instance: heap and btree, with heapallindexed."""
        return [
            self.pg("pg_amcheck"),
            "-h",
            self.dir,
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "--all",
            "--heapallindexed",
            "--install-missing",
            "--no-strict-names",
            "-j",
            str(jobs),
        ]

    def size(self) -> int:
        total = 0
        for directory, _dirs, files in os.walk(self.data):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(directory, name)).st_size
        return total

    def stop(self) -> None:
        if self.started and os.path.exists(os.path.join(self.data, "postmaster.pid")):
            with contextlib.suppress(CommandFailed):
                self.runner.run([self.pg("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"], timeout=60)

    def cleanup(self) -> None:
        self.stop()
        self.runner.remove_tree(self.dir)
