"""Drive the local lab from tests and benchmarks: playbooks, the router, the record.

Everything goes through the real components: ansible-playbook against the lab inventory,
HAProxy's runtime socket inside the lb container, psql inside the db container.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.base import TrafficState
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.haproxy import (
    parse_servers_state,
    state_from_rows,
)

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventories" / "local"
FRONTEND = "http://127.0.0.1:18080"
PROMETHEUS = "http://127.0.0.1:19090"
CONTAINER = "f4a-{}"


def env() -> dict:
    e = dict(os.environ)
    venv_bin = str(Path(os.environ.get("F4A_VENV") or ROOT / ".venv") / "bin")
    e["PATH"] = venv_bin + os.pathsep + e.get("PATH", "")
    e["CONTAINERS_CONF"] = str(ROOT / "lab" / "containers.conf")
    e["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    e["ANSIBLE_COLLECTIONS_PATH"] = str(ROOT / "collections")
    e["ANSIBLE_FORCE_COLOR"] = "0"
    e["ANSIBLE_NOCOLOR"] = "1"
    return e


@dataclass
class Run:
    """One ansible-playbook run."""

    args: list[str]
    returncode: int
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP counters per host."""
        out = {}
        for host, counters in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", self.output, re.M):
            out[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counters)}
        return out

    @property
    def text(self) -> str:
        """The output with every run of whitespace made one space: messages the YAML result
        format folded over several lines read as one line again."""
        return " ".join(self.output.split())

    @property
    def changed(self) -> int:
        return sum(c.get("changed", 0) for c in self.recap().values())

    def __str__(self) -> str:
        return f"{' '.join(self.args)} -> rc {self.returncode} in {self.seconds:.1f} s\n{self.output[-6000:]}"


def playbook(name: str, *extra: str, check: bool = False, timeout: float = 1800) -> Run:
    args = ["ansible-playbook", f"playbooks/{name}", "-i", str(INVENTORY), *extra]
    if check:
        args.append("--check")
    started = time.monotonic()
    p = subprocess.run(args, check=False, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)
    return Run(args, p.returncode, p.stdout + p.stderr, time.monotonic() - started)


def start_playbook(name: str, *extra: str) -> subprocess.Popen:
    args = ["ansible-playbook", f"playbooks/{name}", "-i", str(INVENTORY), *extra]
    return subprocess.Popen(args, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def in_container(host: str, command: str, timeout: float = 60) -> str:
    p = subprocess.run(
        ["podman", "exec", CONTAINER.format(host), "sh", "-c", command],
        check=False,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if p.returncode:
        raise RuntimeError(f"{command!r} on {host}: {p.stderr.strip() or p.stdout.strip()}")
    return p.stdout


def router() -> TrafficState:
    """HAProxy's weights and server health, read from its runtime socket."""
    out = in_container("lb", "echo 'show servers state app' | socat stdio /run/haproxy/admin.sock")
    return state_from_rows(parse_servers_state(out), "app")


def sql(query: str, database: str = "free4allweb_ops", host: str = "db") -> list[list[str]]:
    out = in_container(host, f"runuser -u postgres -- psql -d {database} -XAt -F '|' -c \"{query}\"")
    return [line.split("|") for line in out.splitlines() if line]


def deployments(since_id: int = 0) -> list[dict]:
    cols = [
        "id",
        "kind",
        "version",
        "previous_version",
        "from_colour",
        "to_colour",
        "result",
        "started",
        "finished",
        "message",
        "run_id",
    ]
    rows = sql(
        "SELECT id, kind, version, coalesce(previous_version, ''), coalesce(from_colour, ''),"
        " coalesce(to_colour, ''), result, extract(epoch FROM started_at),"
        " coalesce(extract(epoch FROM finished_at), 0), coalesce(message, ''), coalesce(run_id, '')"
        f" FROM deployments WHERE id > {int(since_id)} ORDER BY id"
    )
    return [dict(zip(cols, r, strict=True)) for r in rows]


def deployment_details(deployment_id: int) -> dict:
    rows = sql(f"SELECT details FROM deployments WHERE id = {int(deployment_id)}")
    return json.loads(rows[0][0]) if rows else {}


def last_deployment_id() -> int:
    rows = sql("SELECT coalesce(max(id), 0) FROM deployments")
    return int(rows[0][0])


TIMINGS = ROOT / "reports" / "lab_timings.json"


def running() -> bool:
    """True when every lab container is up."""
    return len(containers()) >= 5


def containers() -> dict[str, str]:
    """The running lab containers: name -> container id."""
    p = subprocess.run(
        ["podman", "ps", "--filter", "label=org.free4allweb.lab=true", "--format", "{{.Names}} {{.ID}}"],
        check=False,
        env=env(),
        capture_output=True,
        text=True,
    )
    return dict(line.split(maxsplit=1) for line in p.stdout.splitlines() if line.strip())


# What a provision run depends on: a change to any of these makes the next lab_up() provision.
PROVISION_INPUTS = ("roles", "inventories/local", "playbooks/provision.yml", "playbooks/hosts/provision.yml")
# The last successful provision by lab_up(): session, inputs' fingerprint, the containers it ran on.
PROVISIONED = ROOT / ".lab" / "provisioned.json"
# written by lab/s3/service when it starts the lab's S3 (moto)
S3_STARTED = ROOT / ".lab" / "s3" / "moto.pid"


def provision_fingerprint() -> str:
    """A hash of every file provision.yml reads from this checkout (PROVISION_INPUTS)."""
    h = hashlib.sha256()
    for top in PROVISION_INPUTS:
        base = ROOT / top
        files = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else [base]
        for f in files:
            if "__pycache__" in f.parts or not f.exists():
                continue
            h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def session() -> str:
    """This lab session: F4A_LAB_SESSION (scripts/test and scripts/bench set one for every
    process they start), else this process."""
    return os.environ.get("F4A_LAB_SESSION") or f"pid-{os.getpid()}"


def _already_provisioned(fingerprint: str) -> bool:
    try:
        record = json.loads(PROVISIONED.read_text())
    except (OSError, ValueError):
        return False
    return (
        record.get("session") == session()
        and record.get("fingerprint") == fingerprint
        and record.get("containers") == containers()
        # the lab's S3 keeps its objects in memory: started since, it lost the pgBackRest stanza
        # that provisioning created there
        and S3_STARTED.exists()
        and S3_STARTED.stat().st_mtime <= record.get("at", 0)
    )


def lab_up() -> tuple[Run, Run]:
    """Create the lab and provision it, once per session. Returns both runs. When the lab did not
    exist before, the timings are saved as the cold-provision measurement
    (reports/lab_timings.json).

    playbooks/lab.yml always runs (it is quick, and starts whatever stopped). provision.yml is
    skipped when this session (session()) already provisioned these very containers with the same
    roles/, inventories/local and provision playbooks (provision_fingerprint()); the skipped run is
    returned with returncode 0, 0 seconds and a note as its output."""
    was_running = running()
    created = playbook("lab.yml")
    if not created.ok:
        raise RuntimeError(f"could not create the lab:\n{created}")
    fingerprint = provision_fingerprint()
    if was_running and _already_provisioned(fingerprint):
        note = f"provision.yml skipped: this session ({session()}) provisioned the lab with inputs {fingerprint}"
        return created, Run(["ansible-playbook", "playbooks/provision.yml"], 0, note, 0.0)
    PROVISIONED.unlink(missing_ok=True)
    provisioned = playbook("provision.yml")
    if not provisioned.ok:
        raise RuntimeError(f"could not provision the lab:\n{provisioned}")
    PROVISIONED.parent.mkdir(exist_ok=True)
    PROVISIONED.write_text(
        json.dumps({"session": session(), "fingerprint": fingerprint, "containers": containers(), "at": time.time()})
    )
    if not was_running:
        TIMINGS.parent.mkdir(exist_ok=True)
        TIMINGS.write_text(
            json.dumps({"create_s": created.seconds, "provision_s": provisioned.seconds, "at": time.time()})
        )
    return created, provisioned


def recorded_cold_timings() -> dict | None:
    """The cold provision measured when the running lab was created, if this checkout did it."""
    try:
        data = json.loads(TIMINGS.read_text())
    except (OSError, ValueError):
        return None
    data["source"] = "measured when the tests created the lab"
    return data


def lab_down() -> Run:
    return playbook("lab.yml", "-e", "lab_state=absent")
