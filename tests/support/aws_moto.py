"""A moto server on 127.0.0.1 as the AWS endpoint, and ansible-playbook runs against it.

Shared by tests/integration/aws (session fixture) and benchmarks/aws/run. The AWS variables
(AWS_ENDPOINT_URL, region, dummy keys) are set only in the environment of the processes started
here and on the boto3 clients made here, never in this process's own environment.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from tests.support.aws_calls import Call, read_recording

ROOT = Path(__file__).resolve().parents[2]

# inventories/staging, as the tests and the benchmark provision it
STAGING = "inventories/staging"
PRIMARY = "eu-west-1"  # free4allweb_aws_region
DR = "eu-central-1"  # free4allweb_aws_dr_region
NAME = "free4allweb-staging"  # the name prefix of its resources
# moto (5.2.5) keeps no updateConfig and no tags for EKS node groups, so
# community.aws.eks_nodegroup cannot even read an existing one there (KeyError 'updateConfig',
# then NotFound on ListTagsForResource): reruns skip that one task, by its tag.
MOTO_GAP_SKIPS = ("aws_eks_nodegroups",)
VENV_BIN = Path(sys.executable).parent
# The access key of clients that stand in for AWS's own actors while a playbook runs (the
# emulated load balancer controller, tests/support/eks_emulation.py). Same account to moto; their
# requests are left out of a run's recorded calls, which are the playbook's own.
BACKGROUND_ACCESS_KEY = "AKIAEMULATEDCONTROLLER"
# Variables a developer's shell may hold that must never reach a test run.
SCRUBBED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_URL",
    "EC2_URL",
    "S3_URL",
)


def free_port(first: int = 15100, last: int = 15999) -> int:
    """A free TCP port on 127.0.0.1 below the ephemeral range (32768+). The search starts at an
    offset taken from the process ID, so concurrent test sessions (each picks, then its server
    binds) rarely race for the same port."""
    span = last - first + 1
    offset = (os.getpid() * 7) % span
    for i in range(span):
        port = first + (offset + i) % span
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}-{last}")


class _PortTaken(RuntimeError):
    """moto_server exited while starting: most likely its port was taken first."""


class Moto:
    """A moto_server process (tests/support/moto_server.py: moto plus five AWS-behaviour fixes)."""

    def __init__(self, log_path: Path, region: str = "eu-west-1", port: int | None = None):
        self._given_port = port is not None
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.region = region
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def aws_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a child process that talks to this moto server."""
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        env.update(self.aws_env)
        env.update(
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
        )
        env.update(extra)
        return env

    def start(self, timeout: float = 60) -> Moto:
        """Start moto_server on self.port. A port picked by free_port() can be taken by another
        test lane's server before ours binds it: then a new port is picked, up to 3 times."""
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except _PortTaken:
                if self._given_port or attempt == 2:
                    raise
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> Moto:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        # the request recording (see aws_calls.py) goes beside the log, not into the working directory
        env["MOTO_RECORDER_FILEPATH"] = str(self.log_path.with_suffix(".recording.jsonl"))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests/support/moto_server.py"), "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise _PortTaken(f"moto_server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2).read()
            except OSError:
                time.sleep(0.2)
                continue
            # another session's server may have taken the port first: then ours exits (cannot bind)
            time.sleep(0.5)
            if self.proc.poll() is not None:
                raise _PortTaken(f"moto_server exited with {self.proc.returncode} (port {self.port} taken?)")
            return self
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def client(self, service: str, region: str | None = None, access_key: str = "testing"):
        return boto3.session.Session().client(
            service,
            region_name=region or self.region,
            endpoint_url=self.url,
            aws_access_key_id=access_key,
            aws_secret_access_key="testing",
        )

    def _post(self, path: str) -> bytes:
        request = urllib.request.Request(f"{self.url}{path}", method="POST", data=b"")
        return urllib.request.urlopen(request, timeout=30).read()

    def start_recording(self) -> None:
        self._post("/moto-api/recorder/reset-recording")
        self._post("/moto-api/recorder/start-recording")

    def stop_recording(self) -> list[Call]:
        self._post("/moto-api/recorder/stop-recording")
        text = urllib.request.urlopen(f"{self.url}/moto-api/recorder/download-recording", timeout=30).read()
        background = f"Credential={BACKGROUND_ACCESS_KEY}/"
        return read_recording("\n".join(line for line in text.decode().splitlines() if background not in line))


@dataclass
class PlaybookRun:
    args: list[str]
    rc: int
    output: str
    seconds: float
    calls: list[Call] = field(default_factory=list)

    @property
    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported a change (from the default callback's output)."""
        changed, task = [], None
        for line in self.output.splitlines():
            header = re.match(r"^TASK \[(.*)\] \**$", line)
            if header:
                task = header.group(1)
            elif line.startswith("changed: ") and task and task not in changed:
                changed.append(task)
        return changed

    @property
    def recap(self) -> dict[str, int]:
        found = re.findall(r"^localhost\s+:\s+(.*)$", self.output, re.M)
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found[-1])} if found else {}

    @property
    def mutating_calls(self) -> list[Call]:
        return [c for c in self.calls if c.mutating]

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-lines:])

    def ok(self) -> PlaybookRun:
        assert self.rc == 0, f"{Path(self.args[4]).name} failed (rc {self.rc}):\n{self.tail()}"
        return self


def run_playbook(
    moto: Moto,
    playbook: str,
    inventory: str = "inventories/staging",
    extra_vars: dict | None = None,
    check: bool = False,
    skip_tags: tuple[str, ...] = (),
    verbose: int = 0,
    record: bool = True,
    env: dict[str, str] | None = None,
) -> PlaybookRun:
    """ansible-playbook against moto; with `record`, the AWS calls moto received during the run."""
    args = [str(VENV_BIN / "ansible-playbook"), "-i", str(ROOT / inventory), str(ROOT / playbook)]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(extra_vars or {}, fh)
        vars_file = fh.name
    args += ["-e", f"@{vars_file}"]
    if check:
        args.append("--check")
    if skip_tags:
        args += ["--skip-tags", ",".join(skip_tags)]
    if verbose:
        args.append("-" + "v" * verbose)
    if record:
        moto.start_recording()
    started = time.monotonic()
    try:
        proc = subprocess.run(
            args, cwd=ROOT, env=moto.env(**(env or {})), capture_output=True, text=True, timeout=1200, check=False
        )
    finally:
        os.unlink(vars_file)
    seconds = time.monotonic() - started
    calls = moto.stop_recording() if record else []
    return PlaybookRun(args, proc.returncode, proc.stdout + proc.stderr, seconds, calls)


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.support.aws_moto up|down --state FILE [--port N]`: a moto server that
    outlives this command (for Molecule's create and destroy steps). `up` also requests an ACM
    certificate in each --certificate-region and writes pid, url and certificate ARNs to FILE."""
    import argparse
    import contextlib
    import signal

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--port", type=int)
    parser.add_argument("--certificate-region", action="append", default=[])
    args = parser.parse_args(argv)
    if args.action == "up":
        if args.state.exists():
            return 0
        moto = Moto(args.state.with_suffix(".log"), port=args.port).start()
        certificates = {
            region: moto.client("acm", region).request_certificate(DomainName="api.molecule.test")["CertificateArn"]
            for region in args.certificate_region
        }
        args.state.write_text(json.dumps({"pid": moto.proc.pid, "url": moto.url, "certificates": certificates}))
        return 0
    if args.state.exists():
        state = json.loads(args.state.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(state["pid"], signal.SIGTERM)
        args.state.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
