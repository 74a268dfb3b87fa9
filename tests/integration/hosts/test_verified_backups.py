"""Verified backups and disaster recovery on the lab, end to end: the real playbooks, PostgreSQL
15, pgBackRest 2.45, a directory repository on the db host (repo1) and an encrypted S3 one
(repo2: moto behind nginx TLS on the lab bridge, every signature checked).

The file runs after test_blue_green.py and test_canary.py and starts from whatever release is
live (it deploys 1.0.0 only when nothing answers). Every corruption is made for real in a
repository and undone afterwards. The DR test kills PostgreSQL on db, restores onto db2 and
points the app at it; it then fails back (db restarted, the slots pointed at db again) so the
lab ends as it began: serving, with free4allweb_db_host (db) the live database and the
inventory's repositories (repo1 on db, repo2 the lab's own S3).
"""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
import requests

from tests.support import backup_lab as bl
from tests.support import lab
from tests.support.loadgen import Load


@pytest.fixture(scope="module")
def s3_lab(provisioned_lab, tmp_path_factory):
    bl.ensure_serving()
    front = bl.start_s3(tmp_path_factory.mktemp("s3"))
    try:
        extra = bl.vars_file(front)
        run = bl.provision_databases("-e", f"@{extra}")
        assert run.ok, run
        yield {"front": front, "vars": extra}
    finally:
        try:
            db_host = lab.in_container("db", "hostname -I").split()[0]
            if set(bl.database_url_hosts().values()) != {db_host}:
                bl.point_app_slots_at(db_host)
            bl.restore_lab_repositories()
        finally:
            front.stop()


def extra(s3_lab, *args: str) -> list[str]:
    return ["-e", f"@{s3_lab['vars']}", *args]


def live_fingerprint() -> list[list[str]]:
    """What the live database holds: each app table's row count and content checksum."""
    return bl.pg(
        "db",
        "SELECT 'games', count(*), md5(coalesce(string_agg(g::text, ',' ORDER BY id), '')) FROM games g "
        "UNION ALL SELECT 'teams', count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY id), '')) FROM teams t",
    )


def local_sessions() -> int:
    """Backends of the live cluster connected over its Unix socket, other than the exporter and
    this probe: a verification that touched the live cluster would show up here."""
    rows = bl.pg(
        "db",
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND client_addr IS NULL"
        " AND usename <> 'prometheus' AND pid <> pg_backend_pid()",
        "postgres",
    )
    return int(rows[0][0])


def test_clean_backup_then_verify_never_touching_the_live_cluster(s3_lab):
    run = lab.playbook("backup.yml", *extra(s3_lab))
    assert run.ok, run
    assert re.search(r"repo1: full backup \S+F .*repo2: full backup \S+F", run.text), run
    before = live_fingerprint()
    samples, scratch_seen = [], []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            samples.append(local_sessions())
            ps = lab.in_container("db", "ps -eo args | grep -c '[p]ostgres -D /var/lib/postgresql/f4a-verify' || true")
            scratch_seen.append(int(ps.strip() or 0))
            time.sleep(0.3)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        verified = bl.verify(*extra(s3_lab))
    finally:
        stop.set()
        watcher.join()
    assert verified.ok, verified
    assert verified.text.count("NOT VERIFIED") == 0
    # the newest backup of each repository and the newest logical backup, each verified
    assert len(re.findall(r"(physical|logical) \S+ \(repo\d\): verified", verified.text)) == 3, verified
    for repo in (1, 2):
        newest = bl.backups(repo)[-1]
        assert newest["manifest"] and newest["verified"] is True, newest
    # isolation: the scratch instances ran while we watched, and the live cluster never saw them
    assert max(scratch_seen) >= 1, "no scratch instance was seen running during verification"
    assert samples and max(samples) == 0, f"connections to the live cluster during verification: {samples}"
    assert live_fingerprint() == before
    assert lab.in_container("db", "ls -A /var/lib/postgresql/f4a-verify").strip() == ""


def test_flipped_byte_in_the_s3_repository_is_caught(s3_lab):
    label = bl.cli_backup("full", repo=2)["backups"][0]["label"]
    client = s3_lab["front"].client()
    prefix = f"pgbackrest/backup/{bl.STANZA}/{label}/pg_data/"
    objects = client.list_objects_v2(Bucket=bl.BUCKET, Prefix=prefix)["Contents"]
    victim = max(objects, key=lambda o: o["Size"])["Key"]
    original = client.get_object(Bucket=bl.BUCKET, Key=victim)["Body"].read()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0xFF
    client.put_object(Bucket=bl.BUCKET, Key=victim, Body=bytes(flipped))
    try:
        run = bl.verify(*extra(s3_lab, "-e", '{"verify_backups_repos": [2], "verify_backups_logical": false}'))
    finally:
        client.put_object(Bucket=bl.BUCKET, Key=victim, Body=original)
    assert not run.ok
    # the restore reads each file once and compares it with its checksum, naming the file
    relative = victim.split("/pg_data/", 1)[1].rsplit(".", 1)[0]  # base/5/16384 of base/5/16384.zst
    assert "pgbackrest restore failed" in run.text and f"pg_data/{relative}" in run.text, run


def test_deleted_wal_segment_is_caught(s3_lab):
    label = bl.cli_backup("incr", repo=1)["backups"][0]["label"]
    first = next(b for b in bl.backups(1) if b["label"] == label)["wal_start"]
    path = lab.in_container("db", f"ls /var/lib/pgbackrest/archive/{bl.STANZA}/*/{first[:16]}/{first}-*").strip()
    lab.in_container("db", f"mv {path} {path}.aside")
    try:
        run = bl.verify(*extra(s3_lab, "-e", '{"verify_backups_repos": [1], "verify_backups_logical": false}'))
    finally:
        lab.in_container("db", f"mv {path}.aside {path}")
    assert not run.ok
    assert f"WAL segment {first} is missing from the archive" in run.text, run


def test_truncated_logical_dump_is_caught(s3_lab):
    out = bl.cli_logical()
    client = s3_lab["front"].client()
    key = f"pgbackrest/f4a/{bl.STANZA}/logical/{out['stamp']}/free4allweb.dump.enc"
    original = client.get_object(Bucket=bl.BUCKET, Key=key)["Body"].read()
    client.put_object(Bucket=bl.BUCKET, Key=key, Body=original[: len(original) // 2])
    try:
        run = bl.verify(*extra(s3_lab, "-e", '{"verify_backups_count": 0}'))
    finally:
        client.put_object(Bucket=bl.BUCKET, Key=key, Body=original)
    assert not run.ok
    assert f"free4allweb.dump.enc is not the file written at backup time: {len(original) // 2} bytes" in run.text, run


def test_rows_silently_missing_after_restore_are_caught(s3_lab):
    """An unlogged table loses its rows in a physical backup; every other check passes."""
    bl.pg("db", "CREATE UNLOGGED TABLE f4a_sessions (id int); INSERT INTO f4a_sessions SELECT generate_series(1, 321)")
    try:
        bl.cli_backup("incr", repo=1)
        run = bl.verify(*extra(s3_lab, "-e", '{"verify_backups_repos": [1], "verify_backups_logical": false}'))
    finally:
        bl.pg("db", "DROP TABLE f4a_sessions")
    assert not run.ok
    assert "free4allweb.public.f4a_sessions: 0 rows restored, 321 recorded at backup time" in run.text, run


def test_point_in_time_restore_drill(s3_lab):
    bl.pg("db", "DROP TABLE IF EXISTS f4a_pitr")  # a table left by an earlier run would hold its rows
    bl.pg("db", "CREATE TABLE f4a_pitr (label text, at timestamptz DEFAULT clock_timestamp())")
    bl.pg("db", "INSERT INTO f4a_pitr (label) VALUES ('before')")
    time.sleep(1.5)
    target = bl.pg("db", "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US+00')")[0][0]
    time.sleep(1.5)
    bl.pg("db", "INSERT INTO f4a_pitr (label) VALUES ('after')")
    bl.pg("db", "SELECT pg_switch_wal()", "postgres")
    time.sleep(4)  # archive_timeout is 3 s in the lab; the segment holding 'after' is archived by now
    run = lab.playbook(
        "dr_restore.yml", *extra(s3_lab, "-e", f"dr_restore_target_time='{target}'", "-e", "dr_restore_drill_app=false")
    )
    assert run.ok, run
    labels = [r[0] for r in bl.pg("db2", "SELECT label FROM f4a_pitr ORDER BY at")]
    assert labels == ["before"], f"restored to {target}: {labels}"
    report = bl.newest_report("drill")
    assert report["target_time"] == target and report["backup"]
    assert bl.database_url_hosts() and set(bl.database_url_hosts().values()) == {"10.89.40.30"}  # production untouched


def test_dr_restore_under_load(s3_lab):
    """Kill PostgreSQL on db while reads and writes run; restore onto db2; the app serves again."""
    assert lab.playbook("backup.yml", *extra(s3_lab, "-e", "backup_with_logical=false")).ok
    assert bl.verify(*extra(s3_lab, "-e", '{"verify_backups_repos": [2], "verify_backups_logical": false}')).ok
    load = Load(f"{lab.FRONTEND}/api/games?limit=5", connections=4, requests=200_000, max_seconds=300, rate=80).start()
    writer = bl.Writer(interval=0.1).start()
    try:
        time.sleep(6)
        disaster = bl.kill_postgres("db")
        run = lab.playbook(
            "dr_restore.yml",
            *extra(
                s3_lab,
                "-e",
                "dr_restore_mode=restore",
                "-e",
                "dr_restore_host=db2",
                "-e",
                "dr_restore_archive=false",
                "-e",
                f"dr_restore_disaster_time={disaster}",
            ),
        )
        served = time.time()
        time.sleep(3)
    finally:
        writer.stop()
        result = load.stop()
    try:
        assert run.ok, run
        report = bl.newest_report("restore")
        assert report["target"] == "db2" and report["repo"] == 2
        assert set(bl.database_url_hosts().values()) == {"10.89.40.31"}
        # the app serves from the restored database, and writes land there
        assert requests.get(f"{lab.FRONTEND}/api/games?limit=1", timeout=5).status_code == 200
        after = [w for w in writer.acked if w["acked_at"] > served]
        assert after, "no write succeeded after the restore"
        assert bl.survival("db2", after[-1:]).recovered == after[-1:]
        # no data committed before the recovery point is lost
        kept = bl.survival("db2", [w for w in writer.acked if w["acked_at"] < disaster])
        assert kept.recovered, "not one write from before the disaster was recovered"
        assert not kept.lost_before_point, f"committed before the recovery point and lost: {kept.lost_before_point[:5]}"
        rpo = kept.rpo
        outage = result.failed
        print(
            f"\nDR under load: RTO {report['rto_seconds']} s (playbook), RPO {report['rpo_seconds']} s (playbook); "
            f"writes acked before the disaster {len(kept.acked)}, lost {len(kept.lost)} "
            f"(the newest {rpo:.2f} s); failed reads {len(outage)} of {result.total}; phases {report['phases']}"
        )
        assert rpo <= 10, f"lost {rpo:.1f} s of acknowledged writes (archive_timeout is 3 s)"
        assert float(report["rto_seconds"]) < 300
        late = [r for r in result.samples if r.start > served + 1]
        assert late and all(r.ok for r in late), "reads still failing after the app was back"
    finally:
        # fail back: db again, as the other tests and the benchmarks expect
        lab.in_container("db", "systemctl start postgresql@15-main")
        bl.point_app_slots_at("10.89.40.30")
        bl.wait_serving()
    assert set(bl.database_url_hosts().values()) == {"10.89.40.30"}


def test_a_failed_drill_writes_its_report_with_the_failure(s3_lab):
    """repo1 is a directory on db: db2 holds no backup of its own there, so the drill cannot
    choose one. The run fails naming the step, and the report (JSON and HTML) says so."""
    reports = lab.ROOT / "reports" / "dr"
    before = set(reports.glob("dr-drill-*.json"))
    run = lab.playbook("dr_restore.yml", *extra(s3_lab, "-e", "dr_restore_repo=1", "-e", "dr_restore_drill_app=false"))
    assert not run.ok
    assert "The DR drill failed: Choose the newest backup that verifies: " in run.text, run
    new = sorted(set(reports.glob("dr-drill-*.json")) - before)
    assert len(new) == 1, new
    report = json.loads(new[0].read_text())
    assert report["failed"] is True and report["rto_seconds"] is None
    assert report["failure"].startswith("Choose the newest backup that verifies: ") and len(report["failure"]) > 45
    assert "prepared" in report["phases_reached"] and report["seconds_until_failure"] > 0
    html = new[0].with_suffix(".html").read_text()
    assert "failed" in html and "Choose the newest backup that verifies" in html
