"""The lab with an S3 backup repository, for the backup and DR tests and benchmarks/backup.

The S3 endpoint (moto behind nginx TLS, tests/support/s3_front.py) listens on 127.0.0.1 and on the
lab bridge's own address, 10.89.40.1, which the lab's containers reach as their gateway. The db
and db2 hosts are provisioned with two repositories: repo1, a directory on the host itself, and
repo2, the bucket (encrypted). `restore_lab_repositories()` puts the inventory's repositories
back (repo1 and the lab's own S3, lab/s3/service) before this endpoint goes away (an unreachable
repository would make WAL archiving block).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support import lab
from tests.support.s3_front import LAB_GATEWAY, S3Front

BUCKET = "f4a-lab-backups"
STANZA = "main"
# a test-only passphrase for the lab's S3 repository; real inventories take theirs from a vault
CIPHER_PASS = "lab-Repo2-Passphrase-7d41"


def repositories(front: S3Front, posix_path: str = "/var/lib/pgbackrest") -> list[dict]:
    return [
        {"type": "posix", "path": posix_path},
        {**front.repository(BUCKET, address=LAB_GATEWAY), "cipher_pass": CIPHER_PASS},
    ]


def vars_file(front: S3Front, posix_path: str = "/var/lib/pgbackrest", **extra) -> str:
    fd, path = tempfile.mkstemp(prefix="f4a-backup-vars-", suffix=".json")
    with open(fd, "w") as fh:
        json.dump({"backup_repositories": repositories(front, posix_path), **extra}, fh)
    return path


def provision_databases(*extra: str) -> lab.Run:
    return lab.playbook("provision.yml", "--limit", "db_hosts:db_spare_hosts", *extra)


def restore_lab_repositories() -> lab.Run:
    """Back to the inventory's repositories (repo1, and repo2 the lab's own S3) on db and db2."""
    run = provision_databases()
    if not run.ok:
        raise RuntimeError(f"could not put the lab's backup settings back:\n{run}")
    return run


def start_s3(workdir: Path) -> S3Front:
    front = S3Front(workdir, listen=("127.0.0.1", LAB_GATEWAY)).start()
    front.create_bucket(BUCKET)
    return front


def pg(host: str, query: str, db: str = "free4allweb") -> list[list[str]]:
    """lab.sql on any database host, by default in the app's database."""
    return lab.sql(query, db, host=host)


def backups(repo: int | None = None) -> list[dict]:
    """free4allweb-backup list on the db host (backups with manifest and verification state)."""
    listed = json.loads(lab.in_container("db", "free4allweb-backup list", timeout=120))["backups"]
    return [b for b in listed if repo is None or b["repo"] == repo]


def cli_backup(kind: str = "full", repo: int | None = None) -> dict:
    opt = f" --repo {repo}" if repo else ""
    return json.loads(lab.in_container("db", f"free4allweb-backup backup --type {kind}{opt}", timeout=600))


def cli_logical() -> dict:
    return json.loads(lab.in_container("db", "free4allweb-backup logical", timeout=600))


def ensure_serving(version: str = "1.0.0") -> str:
    """The live release's version; deploys `version` first when nothing answers."""
    try:
        return requests.get(f"{lab.FRONTEND}/health", timeout=5).json()["version"]
    except (requests.RequestException, ValueError, KeyError):
        run = lab.playbook("deploy.yml", "-e", f"app_version={version}")
        if not run.ok:
            raise RuntimeError(f"no release is live and deploying {version} failed:\n{run}") from None
        return version


def verify(*extra: str) -> lab.Run:
    return lab.playbook("verify_backups.yml", *extra)


def database_url_hosts() -> dict[str, str]:
    """The database host each running app slot's DATABASE_URL points at."""
    out = {}
    for app in ("app1", "app2"):
        for colour in ("blue", "green"):
            text = lab.in_container(app, f"cat /etc/free4allweb/{colour}.env 2>/dev/null || true")
            m = re.search(r"^DATABASE_URL=postgres(?:ql)?://[^@/]*@([^:/?]+)", text, re.M)
            if m:
                out[f"{app}/{colour}"] = m.group(1)
    return out


def point_app_slots_at(address: str) -> None:
    """Rewrite every slot's DATABASE_URL host and restart the running slots (test cleanup)."""
    for app in ("app1", "app2"):
        lab.in_container(
            app,
            "for c in blue green; do f=/etc/free4allweb/$c.env; [ -f $f ] || continue; "
            f"sed -i -E 's#^(DATABASE_URL=postgres(ql)?://[^@/]*@)[^:/?]+#\\1{address}#' $f; "
            "if systemctl -q is-active free4allweb@$c; then systemctl restart free4allweb@$c; fi; done",
        )


def wait_serving(timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{lab.FRONTEND}/api/games?limit=1", timeout=3).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the app does not serve through the load balancer")
        time.sleep(0.5)


@dataclass
class Writer:
    """Creates a game through the API every `interval` seconds and remembers every one the API
    acknowledged (its id, its starts_at from the database, and when the answer came)."""

    interval: float = 0.1
    acked: list[dict] = field(default_factory=list)
    failed: int = 0

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def _run(self) -> None:
        session = requests.Session()
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                r = session.post(
                    f"{lab.FRONTEND}/api/games",
                    json={"home_team": f"dr-home-{n}", "away_team": f"dr-away-{n}"},
                    timeout=3,
                )
                if r.status_code == 201:
                    game = r.json()
                    self.acked.append(
                        {
                            "id": game["id"],
                            "home_team": game["home_team"],
                            "starts_at": game["starts_at"],
                            "acked_at": time.time(),
                        }
                    )
                else:
                    self.failed += 1
            except requests.RequestException:
                self.failed += 1
            self._stop.wait(self.interval)

    def stop(self) -> Writer:
        self._stop.set()
        self._thread.join(10)
        return self


@dataclass
class Survival:
    """Which acknowledged writes a restored database holds."""

    acked: list[dict]
    recovered: list[dict]
    lost: list[dict]
    point: float | None  # starts_at of the newest write recovered: the recovery point
    lost_before_point: list[dict]  # lost although older than the recovery point: must be empty

    @property
    def rpo(self) -> float | None:
        """Seconds of acknowledged writes lost: the newest acknowledgement minus the recovery point."""
        if not self.acked or self.point is None:
            return None
        return max(w["acked_at"] for w in self.acked) - self.point


def survival(host: str, acked: list[dict]) -> Survival:
    """A write survived when a row with its id *and* its content is there. The id alone is not
    enough: sequences are WAL-logged 32 values ahead, so a restored database can hand out again
    the ids of writes lost with the primary, and a new row would pass for a recovered one."""
    ids = ",".join(str(w["id"]) for w in acked) or "0"
    rows = {(int(i), team) for i, team in pg(host, f"SELECT id, home_team FROM games WHERE id IN ({ids})")}
    recovered = [w for w in acked if (w["id"], w["home_team"]) in rows]
    lost = [w for w in acked if (w["id"], w["home_team"]) not in rows]
    point = max((epoch(w["starts_at"]) for w in recovered), default=None)
    before = [w for w in lost if point is not None and epoch(w["starts_at"]) <= point]
    return Survival(acked, recovered, lost, point, before)


def epoch(timestamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def kill_postgres(host: str = "db") -> float:
    """The disaster: every PostgreSQL process of the host's cluster killed at once (no shutdown,
    no last WAL switch). Returns when it happened."""
    at = time.time()
    lab.in_container(host, "systemctl kill --signal=SIGKILL postgresql@15-main")
    return at


def newest_report(kind: str) -> dict:
    reports = sorted((lab.ROOT / "reports" / "dr").glob(f"dr-{kind}-*.json"))
    return json.loads(reports[-1].read_text()) if reports else {}


def module(host: str, name: str, args: dict, timeout: float = 1800) -> dict:
    """Run one module on one lab host (ad hoc) and return its result."""
    env = lab.env()
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    env["ANSIBLE_LOAD_CALLBACK_PLUGINS"] = "1"
    proc = subprocess.run(
        ["ansible", host, "-i", str(lab.INVENTORY), "-m", name, "-a", json.dumps(args)],
        cwd=lab.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    try:
        data = json.loads(proc.stdout)
    except ValueError as exc:
        raise RuntimeError(f"{name} on {host}: {proc.stdout[-2000:]} {proc.stderr[-2000:]}") from exc
    return data["plays"][0]["tasks"][0]["hosts"][host]
