"""Commands as the postgres user, with errors that say what failed and never show a secret.

PostgreSQL and pgBackRest refuse to run as root: when this process is root, every command is
prefixed with `runuser -u postgres --`; when it already is that user, commands run as they are.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess

# seconds any command may run when its caller gives no timeout of its own
DEFAULT_TIMEOUT = 600.0


def stop_group(proc, grace: float = 10.0) -> None:
    """SIGTERM to a process started in its own session (its whole group), SIGKILL after grace."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class CommandFailed(Exception):
    """A command exited non-zero. The message holds the command and the end of its output."""

    def __init__(self, args, returncode, stdout, stderr, secrets=()):
        self.command = list(args)
        self.returncode = returncode
        self.stdout = mask(stdout or "", secrets)
        self.stderr = mask(stderr or "", secrets)
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()[-8:]
        shown = mask(" ".join(str(a) for a in args), secrets)
        super().__init__(f"{shown} failed (rc {returncode}): {' / '.join(line.strip() for line in lines)}")


def mask(text: str, secrets=()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return text


class Runner:
    """Runs commands as `user` (default postgres)."""

    def __init__(self, user: str = "postgres", secrets=(), timeout: float = DEFAULT_TIMEOUT):
        self.user = user
        self.timeout = timeout
        self.secrets = [s for s in secrets if s]
        self.prefix: list[str] = []
        self.uid = self.gid = None
        # as another user, start in a directory that user can enter: from root's home (an Ansible
        # task's working directory) pg_amcheck and psql print "could not change directory"
        self.cwd: str | None = None
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            entry = None
        if entry is not None and os.geteuid() == 0 and entry.pw_uid != 0:
            self.prefix = ["runuser", "-u", user, "--"]
            self.uid, self.gid = entry.pw_uid, entry.pw_gid
            self.cwd = "/"

    def add_secret(self, secret: str | None) -> None:
        if secret:
            self.secrets.append(secret)

    def run(self, args, *, check=True, timeout=None, stdin=None, env=None, cwd=None) -> subprocess.CompletedProcess:
        """Run a command to its end, or until `timeout` seconds (default: self.timeout) have
        passed: then the whole process group (runuser and what it started) is stopped and the
        command fails, naming the timeout. No command runs unbounded."""
        full = [*self.prefix, *[str(a) for a in args]]
        limit = self.timeout if timeout is None else timeout
        try:
            proc = subprocess.Popen(
                full,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                # undecodable bytes (pgBackRest prints the raw bytes of a repository it could not
                # decrypt) become U+FFFD instead of a UnicodeDecodeError that names nothing
                errors="replace",
                env=env,
                cwd=cwd or self.cwd,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise CommandFailed(args, 127, "", f"{exc.filename} not found", self.secrets) from exc
        try:
            stdout, stderr = proc.communicate(stdin, timeout=limit)
        except subprocess.TimeoutExpired as exc:
            stop_group(proc)
            stdout, stderr = proc.communicate()
            tail = (stderr or stdout or "").strip()
            raise CommandFailed(
                args, -1, "", f"timed out after {limit} s and was stopped; its last output: {tail[-300:]}", self.secrets
            ) from exc
        done = subprocess.CompletedProcess(full, proc.returncode, stdout, stderr)
        if check and done.returncode:
            raise CommandFailed(args, done.returncode, done.stdout, done.stderr, self.secrets)
        return done

    def start(self, args, *, env=None) -> subprocess.Popen:
        """Start a command in the background (its own session, so it can be stopped as a group)."""
        return subprocess.Popen(
            [*self.prefix, *[str(a) for a in args]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=env,
            cwd=self.cwd,
            start_new_session=True,
        )

    def own(self, path: str) -> None:
        """Give a path this process created to the user the commands run as."""
        if self.uid is not None:
            os.chown(path, self.uid, self.gid)

    def make_dir(self, path: str, mode: int = 0o700) -> str:
        os.makedirs(path, mode=mode, exist_ok=True)
        os.chmod(path, mode)
        self.own(path)
        return path

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)
