"""backup_verify's logic on this host, against a real PostgreSQL 15 archiving with pgBackRest 2.45
to a directory (repo1) and to S3 (repo2: moto behind an nginx TLS front, every request's SigV4
signature checked). Each corruption is made for real in the repository, then undone."""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time

import pytest

from ansible_collections.free4allweb.devops.plugins.module_utils.backup import cli, manifest, verify
from ansible_collections.free4allweb.devops.plugins.module_utils.backup import store as store_mod
from ansible_collections.free4allweb.devops.plugins.module_utils.backup.pgbackrest import PgBackRest, PgBackRestError
from ansible_collections.free4allweb.devops.plugins.module_utils.backup.runner import Runner
from tests.support.pgbackrest_cluster import ArchivedCluster, flipped_byte, moved_aside, shipped_limits
from tests.support.s3_front import S3Front

PASSPHRASE = "unit-Passphrase-51c9"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with S3Front(tmp_path_factory.mktemp("s3")) as front:
        front.create_bucket("f4a-unit-backups")
        yield front


@pytest.fixture(scope="module")
def cluster(s3):
    repo2 = {**s3.repository("f4a-unit-backups"), "cipher_pass": PASSPHRASE}
    c = ArchivedCluster(s3=repo2).create()
    try:
        c.sql("CREATE DATABASE app")
        c.sql(
            "CREATE TABLE scores (id serial PRIMARY KEY, game int, at timestamptz DEFAULT clock_timestamp(), b bytea);"
            "INSERT INTO scores (game, b) SELECT g % 17, decode(md5(g::text), 'hex') FROM generate_series(1, 3000) g;"
            # owned by an application role, as in production: a logical restore needs the roles first
            "CREATE ROLE app_owner LOGIN; ALTER TABLE scores OWNER TO app_owner",
            "app",
        )
        yield c
    finally:
        c.remove()


def verify_physical(c: ArchivedCluster, repo: int = 1, label: str = "latest", **kw) -> dict:
    return verify.verify_physical(
        c.pgbr(),
        c.store(repo),
        repo=repo,
        label=label,
        scratch_base=str(c.scratch),
        bindir="/usr/lib/postgresql/15/bin",
        **kw,
    )


def verify_logical(c: ArchivedCluster, **kw) -> dict:
    """The newest logical dump in the encrypted S3 repository (repo2)."""
    return verify.verify_logical(
        c.store(2),
        c.runner,
        stanza="test",
        scratch_base=str(c.scratch),
        bindir="/usr/lib/postgresql/15/bin",
        passphrase=PASSPHRASE,
        **kw,
    )


def check(result: dict, name: str) -> dict:
    return next(ch for ch in result["checks"] if ch["name"] == name)


def test_backup_then_verify_while_rows_are_written(cluster):
    """Writers never stop: the manifest still matches the restored copy exactly."""
    stop = threading.Event()

    def write():
        while not stop.is_set():
            cluster.sql("INSERT INTO scores (game) VALUES (1)", "app")
            time.sleep(0.005)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        out = cluster.backup("full", repos=(1, 2))
        result = verify_physical(
            cluster,
            assertions=[{"name": "scores are back", "database": "app", "sql": "SELECT count(*) >= 3000 FROM scores"}],
        )
    finally:
        stop.set()
        writer.join()
    assert out["manifest"]["write_pause_seconds"] < 1.0
    assert result["verified"], result["reason"]
    assert [c["ok"] for c in result["checks"]] == [True] * 5
    assert check(result, "manifest")["rows"] == check(result, "manifest")["rows_recorded"] > 3000
    assert check(result, "restore")["target"] == {"target_type": "name", "target": out["manifest"]["restore_point"]}
    assert result["restore_seconds"] > 0 and 0 <= result["backup_age_seconds"] < 120
    assert result["sizes"]["restored"] > 0
    assert cluster.scratch_leftovers() == []


def test_the_s3_repository_verifies_too_and_records_it(cluster):
    s3 = cluster.store(2)
    result = verify_physical(cluster, repo=2)
    assert result["verified"], result["reason"]
    key = verify.record(s3, "test", result["backup"]["label"], result)
    assert key.startswith("f4a/test/verified/")
    listing = cluster.context()
    from ansible_collections.free4allweb.devops.plugins.module_utils.backup.cli import cmd_list

    backups = cmd_list(listing, [2])["backups"]
    assert backups[-1]["manifest"] and backups[-1]["verified"] is True


def test_flipped_byte_in_a_backup_file_is_caught(cluster):
    label = cluster.backup("full")["backups"][0]["label"]
    victim = max((cluster.backup_dir(label) / "pg_data" / "base").rglob("*.zst"), key=lambda p: p.stat().st_size)
    with flipped_byte(victim):
        result = verify_physical(cluster, label=label)
        structural = verify_physical(cluster, label=label, structural_only=True)
    # the restore compares each file with its checksum (no second pass over the files)
    assert not result["verified"]
    assert check(result, "restore")["ok"] is False, result["reason"]
    # check mode, which restores nothing, reads every file with pgbackrest verify
    assert not structural["verified"] and check(structural, "structure")["ok"] is False
    assert f"backup {label} is invalid" in structural["reason"] and "checksum invalid 1" in structural["reason"]
    assert cluster.scratch_leftovers() == []
    assert verify_physical(cluster, label=label, structural_only=True)["verified"]  # flipped back: valid again


def test_deleted_wal_segment_needed_for_consistency_is_caught(cluster):
    """pgbackrest verify calls the set valid; the WAL check names the segment, and the restore
    itself (tried without the structural check's verdict) fails in PostgreSQL's own words."""
    out = cluster.backup("incr")
    label = out["backups"][0]["label"]
    first = cluster.pgbr().find(1, label)["archive"]["start"]
    pgbr = cluster.pgbr()
    strict = pgbr.wal_check

    def lenient(repo, backup, recover_to_lsn=None, timeout=600):
        return {**strict(repo, backup, recover_to_lsn, timeout), "ok": True, "reason": ""}

    with moved_aside(cluster.archived_segment(first)):
        result = verify_physical(cluster, label=label)
        pgbr.wal_check = lenient
        restore_only = verify.verify_physical(
            pgbr,
            cluster.store(1),
            repo=1,
            label=label,
            scratch_base=str(cluster.scratch),
            bindir="/usr/lib/postgresql/15/bin",
        )
    assert not result["verified"]
    assert f"WAL segment {first} is missing from the archive" in result["reason"]
    assert not restore_only["verified"] and check(restore_only, "restore")["ok"] is False
    assert "could not locate required checkpoint record" in restore_only["reason"]
    assert cluster.scratch_leftovers() == []


def test_rows_silently_missing_after_restore_fail_the_manifest(cluster):
    """An unlogged table's rows are not in a physical backup: every structural check passes,
    and only the manifest shows what went missing."""
    cluster.sql("CREATE UNLOGGED TABLE sessions (id int); INSERT INTO sessions SELECT generate_series(1, 250)", "app")
    try:
        cluster.backup("diff")
        result = verify_physical(cluster)
    finally:
        cluster.sql("DROP TABLE sessions", "app")
    assert not result["verified"]
    assert [c["ok"] for c in result["checks"][:3]] == [True, True, True]
    assert result["reason"] == (
        "manifest: app.public.sessions: 0 rows restored, 250 recorded at backup time "
        "(an unlogged table: its rows are not in physical backups)"
    )


def test_missing_manifest_fails_unless_allowed(cluster):
    cluster.pgbackrest("backup", "--repo=1", "--type=incr")  # pgBackRest alone: no manifest
    result = verify_physical(cluster)
    assert not result["verified"] and "no data manifest was recorded" in result["reason"]
    relaxed = verify_physical(cluster, require_manifest=False)
    assert relaxed["verified"], relaxed["reason"]
    assert check(relaxed, "manifest")["skipped"] == "no manifest was recorded for this backup"


def test_failed_assertion_fails_with_its_name(cluster):
    cluster.backup("incr")
    result = verify_physical(
        cluster,
        assertions=[
            {"name": "a game 99 exists", "database": "app", "sql": "SELECT count(*) > 0 FROM scores WHERE game = 99"},
            {"name": "broken sql", "database": "app", "sql": "SELECT nope FROM scores"},
        ],
    )
    assert not result["verified"]
    assert "a game 99 exists returned False, not true" in result["reason"]
    assert 'broken sql failed: column "nope" does not exist' in result["reason"]


def test_structural_only_restores_nothing(cluster):
    result = verify_physical(cluster, structural_only=True)
    assert result["verified"] and result["structural_only"]
    assert [c["ok"] for c in result["checks"]] == [True, None, None, None, None]


def test_encrypted_logical_dump_in_s3_verifies(cluster, s3):
    out = cluster.logical()
    assert out["repo"] == 2 and set(out["files"]) == {"app.dump.enc", "globals.sql.enc"}
    result = verify_logical(cluster, assertions=[{"database": "app", "sql": "SELECT count(*) >= 3000 FROM scores"}])
    assert result["verified"], result["reason"]
    assert check(result, "manifest")["rows"] == out["rows"]
    assert cluster.scratch_leftovers() == []
    stored = s3.client().get_object(
        Bucket="f4a-unit-backups", Key=f"pgbackrest/f4a/test/logical/{out['stamp']}/globals.sql.enc"
    )
    assert stored["Body"].read().startswith(b"Salted__")  # openssl's encrypted format, not SQL


def test_truncated_logical_dump_is_caught(cluster, s3):
    out = cluster.logical()
    with cut_s3_object(s3, f"pgbackrest/f4a/test/logical/{out['stamp']}/app.dump.enc", 0.5) as size:
        result = verify_logical(cluster)
    assert not result["verified"]
    assert (
        f"app.dump.enc is not the file written at backup time: {int(size * 0.5)} bytes (recorded {size})"
        in (result["reason"])
    )


def s3_object(s3, key: str) -> bytes:
    """An object of the unit bucket as stored (a raw S3 GET: nothing decrypted)."""
    return s3.client().get_object(Bucket="f4a-unit-backups", Key=f"pgbackrest/{key}")["Body"].read()


@contextlib.contextmanager
def s3_object_replaced(s3, key: str, body: bytes):
    """The object at key (in the repository's path) replaced by `body` as it is, then put back."""
    original = s3_object(s3, key)
    s3.client().put_object(Bucket="f4a-unit-backups", Key=f"pgbackrest/{key}", Body=body)
    try:
        yield
    finally:
        s3.client().put_object(Bucket="f4a-unit-backups", Key=f"pgbackrest/{key}", Body=original)


def unencrypted_store(c: ArchivedCluster, repo: int):
    """The repository's store without its cipher pass (it cannot read encrypted objects)."""
    options = {k: v for k, v in c.repo_options(repo).items() if k != "cipher-pass"}
    return store_mod.store_for(options, c.runner)


def assert_encrypted(raw: bytes) -> None:
    assert raw.startswith(store_mod.ENCRYPTED_MAGIC), raw[:40]  # openssl's format, as the dumps
    with pytest.raises(ValueError):
        json.loads(raw)


def test_manifests_and_records_in_an_encrypted_repository_are_encrypted_at_rest(cluster, s3):
    """The data manifest, the verification record and the logical manifest.json, read raw from the
    encrypted S3 repository, are ciphertext (they were plaintext JSON); they still verify."""
    label = cluster.backup("incr", repos=(2,))["backups"][0]["label"]
    manifest_key = verify.manifest_key("test", label)
    assert_encrypted(s3_object(s3, manifest_key))
    result = verify_physical(cluster, repo=2, label=label)
    assert result["verified"], result["reason"]
    assert check(result, "manifest")["ok"] is True
    store = cluster.store(2)
    record_key = verify.record(store, "test", label, result)
    assert_encrypted(s3_object(s3, record_key))
    assert verify.load_json(store, record_key)["verified"] is True
    from ansible_collections.free4allweb.devops.plugins.module_utils.backup.cli import cmd_list

    listed = next(b for b in cmd_list(cluster.context(), [2])["backups"] if b["label"] == label)
    assert listed["manifest"] is True and listed["verified"] is True
    # without the passphrase the objects do not read, and the error names the object
    with pytest.raises(store_mod.UnreadableObject, match=f"{re.escape(manifest_key)} is encrypted"):
        unencrypted_store(cluster, 2).get_text(manifest_key)

    out = cluster.logical()
    assert_encrypted(s3_object(s3, f"f4a/test/logical/{out['stamp']}/manifest.json"))
    logical = verify_logical(cluster)
    assert logical["verified"], logical["reason"]
    assert logical["backup"]["label"] == out["stamp"]


def test_a_manifest_whose_ciphertext_is_corrupt_is_not_verified(cluster, s3):
    """Cut or flipped ciphertext is a verdict naming the file; a record that does not decrypt is no
    record; a plaintext manifest (as stored before manifests were encrypted) still reads, checked
    against the annotation's sha256 all the same."""
    label = cluster.backup("incr", repos=(2,))["backups"][0]["label"]
    store, key = cluster.store(2), verify.manifest_key("test", label)
    name = f"{store.description}/{key}"
    with cut_s3_object(s3, f"pgbackrest/{key}", 0.5):
        cut = verify_physical(cluster, repo=2, label=label)
    flipped = bytearray(s3_object(s3, key))
    flipped[len(flipped) // 2] ^= 0xFF
    with s3_object_replaced(s3, key, bytes(flipped)):
        flip = verify_physical(cluster, repo=2, label=label)
    for result in (cut, flip):
        assert not result["verified"] and check(result, "structure")["ok"] is False
        assert name in result["reason"], result["reason"]
    assert f"{name} does not decrypt with the repository's cipher pass" in cut["reason"]

    record_key = verify.record(store, "test", label, {"verified": True})
    with cut_s3_object(s3, f"pgbackrest/{record_key}", 0.5):
        assert verify.load_json(store, record_key) is None
    assert verify.load_json(store, record_key)["verified"] is True

    text = store.get_text(key)
    with s3_object_replaced(s3, key, text.encode()):
        plain = verify_physical(cluster, repo=2, label=label, structural_only=True)
    with s3_object_replaced(s3, key, text.replace('"rows"', '"rows" ', 1).encode()):
        altered = verify_physical(cluster, repo=2, label=label, structural_only=True)
    assert plain["verified"], plain["reason"]
    assert not altered["verified"] and f"{name} is not the manifest written at backup time" in altered["reason"]
    assert_encrypted(s3_object(s3, key))  # put back as it was
    assert verify_physical(cluster, repo=2, label=label, structural_only=True)["verified"]


def test_an_encrypted_posix_store(tmp_path):
    """The posix side of the store's encryption, without pgBackRest: what is on disk is ciphertext,
    a plaintext object still reads, a wrong passphrase and a cut file are errors naming the file."""
    tmp_path.chmod(0o755)
    runner = Runner()
    store = store_mod.PosixStore(str(tmp_path), runner, passphrase=PASSPHRASE)
    store.put_text("f4a/test/verified/x.json", '{"verified": true}')
    path = tmp_path / "f4a/test/verified/x.json"
    assert_encrypted(path.read_bytes())
    assert store.get_text("f4a/test/verified/x.json") == '{"verified": true}'
    assert store.exists("f4a/test/verified/x.json") and not store.exists("f4a/test/verified/y.json")
    assert store.get_text("f4a/test/verified/y.json") is None
    (tmp_path / "f4a/test/verified/old.json").write_text('{"verified": false}')
    assert store.get_text("f4a/test/verified/old.json") == '{"verified": false}'
    wrong = store_mod.PosixStore(str(tmp_path), runner, passphrase="not-the-passphrase")
    with pytest.raises(store_mod.UnreadableObject, match=f"{re.escape(str(path))} does not decrypt"):
        wrong.get_text("f4a/test/verified/x.json")
    assert verify.load_json(wrong, "f4a/test/verified/x.json") is None
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(manifest.ManifestError, match=f"{re.escape(str(path))} does not decrypt"):
        verify.load_manifest(store, "f4a/test/verified/x.json")


def test_s3_signatures_are_checked(s3):
    good = s3.repository("f4a-unit-backups")
    wrong = store_mod.S3Store(
        endpoint="127.0.0.1",
        port=good["port"],
        bucket="f4a-unit-backups",
        region=good["region"],
        key=good["key"],
        secret="not-the-secret",
        uri_style="path",
        ca_file=str(s3.ca_file),
    )
    with pytest.raises(store_mod.StoreError, match="403"):
        wrong.list("f4a/")


# ---------------------------------------------------------------- manifests that cannot be trusted


@contextlib.contextmanager
def stored_text(store, key: str, text: str):
    """The object at key replaced by `text` through the store (so encrypted in an encrypted
    repository), then put back; yields its name as errors give it."""
    original = store.get_text(key)
    store.put_text(key, text)
    try:
        yield f"{store.description}/{key}"
    finally:
        store.put_text(key, original)


@contextlib.contextmanager
def stored_manifest(c: ArchivedCluster, label: str, text: str, repo: int = 1):
    """The data manifest of `label` replaced by `text` in the repository, then put back."""
    with stored_text(c.store(repo), verify.manifest_key("test", label), text) as name:
        yield name


@contextlib.contextmanager
def consistently_rewritten_manifest(c: ArchivedCluster, label: str, change):
    """The data manifest of `label` changed by `change(doc)` and the backup's annotation rewritten to
    its sha256 (so the digest check passes and what comes after it is tested), then both put back."""
    store, key = c.store(1), verify.manifest_key("test", label)
    original = store.get_text(key)
    doc = json.loads(original)
    change(doc)
    text = json.dumps(doc)
    c.pgbr().annotate(1, label, {verify.MANIFEST_SHA256: manifest.sha256_text(text)})
    try:
        with stored_manifest(c, label, text) as name:
            yield name, doc
    finally:
        c.pgbr().annotate(1, label, {verify.MANIFEST_SHA256: manifest.sha256_text(original)})


@contextlib.contextmanager
def cut_s3_object(s3, key: str, keep: float):
    """The object at `key` in the unit bucket cut to `keep` of its length, then put back; yields
    its full length."""
    client = s3.client()
    body = client.get_object(Bucket="f4a-unit-backups", Key=key)["Body"].read()
    client.put_object(Bucket="f4a-unit-backups", Key=key, Body=body[: int(len(body) * keep)])
    try:
        yield len(body)
    finally:
        client.put_object(Bucket="f4a-unit-backups", Key=key, Body=body)


def test_an_emptied_manifest_is_not_verified(cluster):
    """'{}' used to read as 'no manifest was recorded' and verify as a pass."""
    label = cluster.backup("incr")["backups"][0]["label"]
    with stored_manifest(cluster, label, "{}") as name:
        result = verify_physical(cluster, label=label)
        relaxed = verify_physical(cluster, label=label, require_manifest=False)
    assert not result["verified"] and not relaxed["verified"]
    assert result["reason"].startswith(f"structure: {name} is not the manifest written at backup time")


def test_a_hollow_manifest_with_a_matching_annotation_is_not_verified(cluster):
    """Entries removed, totals kept, and the annotation rewritten to match: the totals give it away."""
    label = cluster.backup("incr")["backups"][0]["label"]
    with consistently_rewritten_manifest(cluster, label, lambda doc: doc["databases"]["app"].update(tables={})) as (
        name,
        doc,
    ):
        result = verify_physical(cluster, label=label)
    assert not result["verified"]
    assert f"{name} is not a valid data manifest: it lists" in result["reason"]
    assert f"but its total says {doc['tables']}" in result["reason"]


def test_a_truncated_manifest_is_not_verified_and_the_dr_choice_moves_on(cluster):
    older = cluster.backup("incr")["backups"][0]["label"]
    newest = cluster.backup("incr")["backups"][0]["label"]
    text = cluster.store(1).get_text(verify.manifest_key("test", newest))
    with stored_manifest(cluster, newest, text[: len(text) // 2]) as name:
        result = verify_physical(cluster, label=newest)
        chosen = verify.newest_verified(
            cluster.pgbr(),
            cluster.store(1),
            repo=1,
            trust_records=False,
            verify_kwargs={"scratch_base": str(cluster.scratch), "bindir": "/usr/lib/postgresql/15/bin"},
        )
    assert not result["verified"]
    assert f"structure: {name} is not the manifest written at backup time" in result["reason"]
    assert chosen["label"] == older and chosen["how"] == "verified now"
    assert chosen["attempts"][0]["label"] == newest and not chosen["attempts"][0]["verified"]
    assert name in chosen["attempts"][0]["reason"]


def test_a_truncated_logical_manifest_is_not_verified(cluster, s3):
    """Its JSON cut (and stored encrypted again, as the store writes it), then its ciphertext cut."""
    out = cluster.logical()
    store, key = cluster.store(2), f"f4a/test/logical/{out['stamp']}/manifest.json"
    text = store.get_text(key)
    with stored_text(store, key, text[: len(text) // 3]):
        result = verify_logical(cluster)
    with cut_s3_object(s3, f"pgbackrest/{key}", 1 / 3):
        cut = verify_logical(cluster)
    assert not result["verified"]
    assert "manifest.json is not valid JSON" in result["reason"] and "truncated or corrupt" in result["reason"]
    assert not cut["verified"] and check(cut, "structure")["ok"] is False
    assert f"{store.description}/{key} does not decrypt with the repository's cipher pass" in cut["reason"]


def test_a_wrong_repository_passphrase_is_a_verdict_naming_the_repository(cluster):
    """pgbackrest info exits 0 with status 99 and raw bytes; this used to be a UnicodeDecodeError."""
    conf = cluster.conf.with_name("wrong-passphrase.conf")  # where the postgres user can read it
    conf.write_text(cluster.conf.read_text().replace(PASSPHRASE, "not-the-passphrase"))
    conf.chmod(0o644)
    wrong = PgBackRest(cluster.runner, "test", str(conf))
    unreadable = r"repo2 of stanza test cannot be read: pgbackrest info status 99: .*wrong repository passphrase"
    for _ in range(5):  # the raw bytes differ from run to run: some hold control characters
        with pytest.raises(PgBackRestError, match=unreadable):
            wrong.info(2)
    with pytest.raises(PgBackRestError, match=unreadable):
        wrong.info(2)
    result = verify.verify_physical(
        wrong,
        cluster.store(2),
        repo=2,
        scratch_base=str(cluster.scratch),
        bindir="/usr/lib/postgresql/15/bin",
    )
    assert not result["verified"]
    assert "repo2 of stanza test cannot be read" in result["reason"]


def test_a_recovery_that_dies_is_a_verdict_within_seconds_not_the_timeout(cluster):
    """The manifest names a restore point the WAL does not hold (its annotation rewritten to match):
    recovery ends with a FATAL and the postmaster exits. This used to wait out the 3600 s timeout
    behind 'not accepting connections'."""
    label = cluster.backup("incr")["backups"][0]["label"]
    with consistently_rewritten_manifest(
        cluster, label, lambda doc: doc["point"].update(restore_point="f4a-never-written")
    ):
        t0 = time.monotonic()
        result = verify_physical(cluster, label=label)  # the default timeout, 3600 s
        took = time.monotonic() - t0
    assert not result["verified"]
    assert took < 30, took
    # pg_ctl -w sees the postmaster die when it dies before it is ready ("did not start"); after
    # that, the wait for promotion sees it ("stopped during recovery"): both name the FATAL
    assert re.search(r"restore: the restored copy (stopped during recovery|did not start)", result["reason"])
    assert "recovery ended before configured recovery target was reached" in result["reason"]
    assert cluster.scratch_leftovers() == []


def pgbackrest_backup_running(conf) -> bool:
    """A `pgbackrest --config=<conf> ... backup` process of this cluster is running."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                args = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")  # noqa: SIM115
                if f"--config={conf}".encode() in args and b"backup" in args and b"pgbackrest" in args[0]:
                    return True
    return False


def test_s3_stopped_mid_backup_fails_in_bounded_time_and_records_nothing_good(cluster, s3):
    """The S3 endpoint stops answering once pgbackrest backup is running. With the role's shipped
    limits (pgBackRest io-timeout), the command exits non-zero naming the endpoint well within
    the bound, no new backup is listed, no manifest is written, and the metrics file says failed."""
    io_timeout = shipped_limits()["io-timeout"]
    before = {b["label"] for b in cluster.pgbr().backups(2)}
    manifests_before = cluster.store(2).list("f4a/test/manifest/")
    outcome: dict = {}

    def run():
        t0 = time.monotonic()
        outcome["rc"] = cli.main(["--config", str(cluster.cli_conf), "backup", "--type", "full", "--repo", "2"])
        outcome["seconds"] = time.monotonic() - t0

    log = cluster.base / "log" / "test-backup.log"

    def backups_started() -> int:
        return log.read_text().count("backup start archive") if log.exists() else 0

    started_before = backups_started()
    thread = threading.Thread(target=run)
    thread.start()
    # mid-backup: pgBackRest has started the backup in PostgreSQL and is copying the files
    deadline = time.monotonic() + 60
    while backups_started() == started_before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pgbackrest_backup_running(cluster.conf), "pgbackrest backup is not running"
    with s3.frozen():
        thread.join(12 * io_timeout)
        stuck = thread.is_alive()
    thread.join(60)
    assert not stuck, f"the backup command still runs {12 * io_timeout} s after S3 stopped answering"
    assert outcome["rc"] == 1
    took = outcome["seconds"]
    # measured: 3-4 x io-timeout when S3 stops while the files are copied; 7 x when it stops
    # before pgBackRest has read its info files (two, each with retries)
    print(f"the backup failed {took:.1f} s after it started (io-timeout {io_timeout} s)")
    assert took < 10 * io_timeout, took
    failed = cli.read_outcomes(cluster.metrics.read_text())["full"]
    assert failed["success"] == 0.0
    # nothing recorded as good: no new backup listed (a partial one is not), no new manifest
    assert {b["label"] for b in cluster.pgbr().backups(2)} == before
    assert cluster.store(2).list("f4a/test/manifest/") == manifests_before
    # S3 back: the next backup works and the failure clears
    assert cli.main(["--config", str(cluster.cli_conf), "backup", "--type", "full", "--repo", "2"]) == 0
    assert cli.read_outcomes(cluster.metrics.read_text())["full"]["success"] == 1.0


def test_a_corrupt_page_fails_the_backup_naming_the_file(capsys):
    """Data page checksums (the clusters are made with them): pgBackRest finds the page whose
    checksum is wrong while backing it up, and the backup command fails naming the file, before
    any manifest is recorded."""
    c = ArchivedCluster().create()
    try:
        c.sql("CREATE TABLE t AS SELECT g, md5(g::text) AS m FROM generate_series(1, 20000) g; CHECKPOINT")
        path = c.sql("SELECT pg_relation_filepath('t')")[0][0]
        assert c.sql("SHOW data_checksums") == [("on",)]
        c.stop()
        with flipped_byte(c.data / path):  # a page in the middle of the table, not read since
            c.start()
            rc = cli.main(["--config", str(c.cli_conf), "backup", "--type", "full"])
            c.stop()
        assert rc == 1
        assert f"found invalid page checksums in {path}: the database has corrupt pages" in capsys.readouterr().out
        assert cli.read_outcomes(c.metrics.read_text())["full"]["success"] == 0.0
        assert c.store(1).list("f4a/test/manifest/") == []
    finally:
        c.remove()


def test_flipped_byte_in_the_encrypted_s3_repository_fails_the_restore_naming_the_file(cluster, s3):
    """The lab's integration test flips a byte the same way: the restore names the file."""
    label = cluster.backup("full", repos=(2,))["backups"][0]["label"]
    prefix = f"pgbackrest/backup/test/{label}/pg_data/base/"
    objects = s3.client().list_objects_v2(Bucket="f4a-unit-backups", Prefix=prefix)["Contents"]
    victim = max(objects, key=lambda o: o["Size"])["Key"]
    flipped = bytearray(s3_object(s3, victim.removeprefix("pgbackrest/")))
    flipped[len(flipped) // 2] ^= 0xFF
    with s3_object_replaced(s3, victim.removeprefix("pgbackrest/"), bytes(flipped)):
        result = verify_physical(cluster, repo=2, label=label)
    relative = victim.split("/pg_data/", 1)[1].rsplit(".", 1)[0]
    assert not result["verified"] and check(result, "restore")["ok"] is False
    # the decoder fails without a name; the verify pass run after a failed restore names the file
    assert "pgbackrest restore failed" in result["reason"] and f"pg_data/{relative}" in result["reason"], result
    assert cluster.scratch_leftovers() == []
