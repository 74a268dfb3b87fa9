"""The README's DR drill, run word for word on the lab as scripts/lab-up leaves it.

scripts/lab-up ends by taking a first backup (lab/first-backup) into repo1, a directory on db,
and repo2, the lab's own S3 repository (moto behind nginx TLS on the lab bridge, started by
playbooks/lab.yml). The README's drill command must then restore onto db2 from repo2 (the only
repository db2 can read) with no extra variable, bring the live release up there against the
restored database, and write its report. A game created through the API after the backup must
come back too: its WAL reached the S3 repository within the archive timeout.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid

import requests
import yaml

from tests.support import backup_lab as bl
from tests.support import lab

README = lab.ROOT / "README.md"


def readme_drill_command() -> str:
    """The README's drill line, without its comment."""
    for line in README.read_text().splitlines():
        if line.startswith("ansible-playbook playbooks/dr_restore.yml") and "# a drill" in line:
            return line.split("#", 1)[0].strip()
    raise AssertionError("README.md has no line 'ansible-playbook playbooks/dr_restore.yml ... # a drill ...'")


def lab_secrets() -> list[str]:
    return [p.read_text().strip() for p in (lab.ROOT / ".lab" / "secrets").glob("*") if p.is_file()]


def listening(port: int) -> set[str]:
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()}


def test_the_lab_s3_runs_once_and_listens_only_on_the_lab(provisioned_lab):
    again = lab.playbook("lab.yml")
    assert again.ok, again
    assert again.changed == 0, again
    settings = lab.ROOT / "inventories" / "local" / "group_vars" / "all" / "lab.yml"
    s3 = yaml.safe_load(settings.read_text())["lab_s3"]
    assert listening(s3["port"]) == {s3["address"], "127.0.0.1"}
    assert listening(s3["moto_port"]) == {"127.0.0.1"}


def test_the_readme_drill_restores_from_the_lab_s3_onto_db2(provisioned_lab):
    live = bl.ensure_serving()
    # what scripts/lab-up does last: the first backup (skipped when repo2 already has one)
    first = subprocess.run(
        [str(lab.ROOT / "lab" / "first-backup")],
        check=False,
        cwd=lab.ROOT,
        env=lab.env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    assert [b for b in bl.backups(2) if b["type"] == "full"], "repo2 (the lab's S3) holds no full backup"

    # a write after the backup: it reaches repo2 as archived WAL only
    marker = f"Drill-{uuid.uuid4().hex[:8]}"
    created = requests.post(f"{lab.FRONTEND}/api/games", json={"home_team": marker, "away_team": "Tigers"}, timeout=10)
    assert created.status_code in (200, 201), created.text
    time.sleep(8)  # > backup_archive_timeout (3 s): the segment holding it is switched and pushed

    command = readme_drill_command()
    assert command == "ansible-playbook playbooks/dr_restore.yml -i inventories/local", command
    reports_dir = lab.ROOT / "reports" / "dr"
    before = sorted(reports_dir.glob("dr-drill-*.json"))
    run = subprocess.run(
        command, check=False, shell=True, cwd=lab.ROOT, env=lab.env(), capture_output=True, text=True, timeout=1200
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    # (the YAML result format folds the message over lines)
    assert re.search(r"drill: backup \S+ \(.*?\) from repo2 onto db2; RTO [\d.]+ s", " ".join(out.split())), out[-3000:]
    for secret in lab_secrets():
        assert secret not in out, "a lab secret (.lab/secrets) appears in the drill's output"

    reports = sorted(reports_dir.glob("dr-drill-*.json"))
    new = [r for r in reports if r not in before]
    assert len(new) == 1, reports
    report = json.loads(new[0].read_text())
    assert report["failed"] is False and report["mode"] == "drill", report
    assert report["repo"] == 2 and report["target"] == "db2", report
    # the live release came up on db2 against the restored database, and the HTML says the RTO
    assert report["live_release"].get("version") == live, report
    assert report["phases"]["app_back"] > 0, report
    html = new[0].with_suffix(".html").read_text()
    assert f"RTO {report['rto_seconds']} s" in html
    # the write after the backup came back from the S3 repository's WAL
    assert report["rpo_seconds"] is not None and 0 <= report["rpo_seconds"] < 120, report
    rows = bl.pg("db2", f"SELECT count(*) FROM games WHERE home_team = '{marker}'")
    assert rows == [["1"]], rows
    # production untouched: the live database still serves through HAProxy
    assert requests.get(f"{lab.FRONTEND}/health", timeout=5).json()["version"] == live
