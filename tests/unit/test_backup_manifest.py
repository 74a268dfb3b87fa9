"""The data manifest against a real PostgreSQL: counts, checksums, and what they catch."""

from __future__ import annotations

import psycopg
import pytest

from ansible_collections.free4allweb.devops.plugins.module_utils.backup import manifest
from ansible_collections.free4allweb.devops.plugins.module_utils.backup.pgbackrest import (
    missing_wal,
    parse_verify,
    repo_options,
    repositories,
    wal_segment,
)


@pytest.fixture()
def db(database_url):
    base, _, name = database_url.rpartition("/")

    def connect(dbname):
        return psycopg.connect(f"{base}/{dbname}", autocommit=True)

    with connect(name) as conn:
        conn.execute(
            "CREATE TABLE games (id int PRIMARY KEY, home text, score numeric, at timestamptz, b bytea, f float8);"
            'CREATE TABLE "odd Name" (x int); CREATE UNLOGGED TABLE cache (k int);'
            "CREATE MATERIALIZED VIEW totals AS SELECT count(*) FROM games"
        )
    return name, connect


def fill(conn, order="ASC"):
    conn.execute(
        "INSERT INTO games SELECT g, 'team ' || g, g * 1.5, '2024-01-01'::timestamptz + g * interval '1 min',"
        f" decode(md5(g::text), 'hex'), g / 3.0 FROM generate_series(1, 500) g ORDER BY g {order}"
    )
    conn.execute('INSERT INTO "odd Name" VALUES (1), (2)')
    conn.execute("INSERT INTO cache SELECT generate_series(1, 7)")


def test_capture_covers_every_table_with_counts_and_checksums(db):
    name, connect = db
    with connect(name) as conn:
        fill(conn)
    got = manifest.capture(connect, databases=[name])
    tables = got["databases"][name]["tables"]
    assert set(tables) == {"public.games", "public.odd Name", "public.cache"}  # no materialized view
    assert tables["public.games"]["rows"] == 500 and tables["public.cache"]["persistence"] == "unlogged"
    assert got["rows"] == 509 and got["tables"] == 3
    assert manifest.compare(got, manifest.capture(connect, databases=[name]))["ok"]


def test_checksum_ignores_row_order_but_not_content(db, database_url):
    name, connect = db
    with connect(name) as conn:
        fill(conn, "DESC")
        conn.execute("CLUSTER games USING games_pkey")
    first = manifest.capture(connect, databases=[name])
    with connect(name) as conn:
        conn.execute("UPDATE games SET home = 'team 7 ' WHERE id = 7")
    changed = manifest.capture(connect, databases=[name])
    result = manifest.compare(first, changed)
    assert not result["ok"]
    assert result["mismatches"] == [
        f"{name}.public.games: 500 rows as recorded, but their content checksum differs "
        f"({changed['databases'][name]['tables']['public.games']['checksum']} restored, "
        f"{first['databases'][name]['tables']['public.games']['checksum']} recorded)"
    ]


def test_missing_rows_and_tables_are_named(db):
    name, connect = db
    with connect(name) as conn:
        fill(conn)
    recorded = manifest.capture(connect, databases=[name])
    with connect(name) as conn:
        conn.execute('DELETE FROM games WHERE id > 490; TRUNCATE cache; DROP TABLE "odd Name"')
    result = manifest.compare(recorded, manifest.capture(connect, databases=[name]))
    assert result["mismatches"] == [
        f"{name}.public.cache: 0 rows restored, 7 recorded at backup time (an unlogged table: its rows are not in "
        "physical backups)",
        f"{name}.public.games: 490 rows restored, 500 recorded at backup time",
        f"{name}.public.odd Name is missing after restore (2 rows recorded)",
    ]
    skipped = manifest.compare(recorded, manifest.capture(connect, databases=[name]), [f"{name}.public.*"])
    assert skipped["ok"] and skipped["tables_checked"] == 0


def test_restore_point_capture_holds_writers_only_briefly(db):
    name, connect = db
    with connect(name) as conn:
        fill(conn)
    got = manifest.capture(connect, databases=[name], restore_point="f4a-test-point")
    assert got["point"]["restore_point"] == "f4a-test-point"
    assert got["point"]["lsn"].count("/") == 1
    assert 0 < got["write_pause_seconds"] < 1


def test_lock_timeout_names_the_database(db):
    name, connect = db
    with connect(name) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE games IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(manifest.ManifestError, match=f"could not lock the tables of {name} within 0.3 s"):
            manifest.capture(connect, databases=[name], restore_point="p", lock_timeout=0.3)


VERIFY_INVALID = """stanza: t
status: error
  archiveId: 15-1, total WAL checked: 4, total valid WAL: 4
    missing: 0, checksum invalid: 0, size invalid: 0, other: 0
  backup: 20261129-012731F, status: invalid, total files checked: 970, total valid files: 969
    missing: 0, checksum invalid: 1, size invalid: 0, other: 0
"""

VERIFY_GAP = """P00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000001, wal stop: 000000010000000000000002
P00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000004, wal stop: 000000010000000000000004
stanza: t
status: ok
  backup: 20261129-012731F, status: valid, total files checked: 970, total valid files: 970
"""


def test_parse_verify_reports_invalid_files_and_wal_ranges():
    bad = parse_verify(VERIFY_INVALID)
    assert bad["status"] == "error"
    assert bad["backups"]["20261129-012731F"] == {"status": "invalid", "checked": 970, "valid": 969}
    assert bad["problems"] == ["backup: 20261129-012731F: checksum invalid 1"]
    gap = parse_verify(VERIFY_GAP)
    assert gap["status"] == "ok" and len(gap["wal_ranges"]) == 2
    # verify calls this backup valid; the archive still lacks the segment its start needs
    assert missing_wal(gap["wal_ranges"], "000000010000000000000003", "000000010000000000000004") == (
        "000000010000000000000003"
    )
    assert missing_wal(gap["wal_ranges"], "000000010000000000000004", "000000010000000000000004") is None


def test_wal_segment_names():
    assert wal_segment("0/3000028", 1) == "000000010000000000000003"
    assert wal_segment("1/FF000000", 2) == "0000000200000001000000FF"
    assert (
        missing_wal(
            [("15-1", "0000000100000000000000FE", "000000010000000100000001")], *["0000000100000000000000FF"] * 2
        )
        is None
    )


def test_repository_options_from_pgbackrest_conf(tmp_path):
    import configparser

    conf = configparser.RawConfigParser(strict=False, interpolation=None)
    conf.optionxform = str
    conf.read_string(
        "[global]\nrepo1-path=/srv/repo\nrepo2-type=s3\nrepo2-s3-bucket=b\nrepo2-storage-port=9000\n"
        "[main]\npg1-path=/x\nrepo2-s3-bucket=override\n"
    )
    assert repositories(conf, "main") == [1, 2]
    assert repo_options(conf, "main", 1) == {"path": "/srv/repo", "type": "posix"}
    assert repo_options(conf, "main", 2)["s3-bucket"] == "override"
    assert repo_options(conf, "main", 2)["path"] == "/var/lib/pgbackrest"


def _good():
    return {
        "format": 1,
        "point": {"restore_point": "f4a-x", "lsn": "0/3000028", "time": 1.5},
        "databases": {
            "app": {"tables": {"public.a": {"rows": 2, "checksum": "ab"}, "public.b": {"rows": 0, "checksum": "cd"}}}
        },
        "tables": 2,
        "rows": 2,
    }


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.clear(), "format is None"),
        (lambda d: d["databases"]["app"].update(tables={}), "it lists 0 tables, but its total says 2"),
        (lambda d: d["databases"]["app"]["tables"].pop("public.a"), "its tables hold 0 rows, but its total says 2"),
        (lambda d: d["point"].pop("restore_point"), "point.restore_point is missing"),
        (lambda d: d["point"].update(lsn="nope"), "point.lsn is 'nope', not an LSN"),
        (lambda d: d["point"].update(time=float("nan")), "point.time is nan, not a number"),
        (lambda d: d["databases"]["app"]["tables"]["public.a"].update(rows="2"), "app.public.a has no row count"),
        (lambda d: d.update(format=3), "format is 3, expected one of 1, 2"),
        (lambda d: d.update(format=2), "app.public.a has digest None, not send or text"),
        (lambda d: d.update(databases={}), "no databases"),
    ],
)
def test_validate_names_what_is_wrong(change, problem):
    assert manifest.validate(_good(), restore_point=True) == []
    doc = _good()
    change(doc)
    assert any(problem in p for p in manifest.validate(doc, restore_point=True)), manifest.validate(doc)


def test_parse_names_the_file_for_bad_json_a_wrong_digest_and_a_non_object():
    import json

    text = json.dumps(_good())
    assert manifest.parse(text, "repo/m.json", restore_point=True, sha256=manifest.sha256_text(text)) == _good()
    with pytest.raises(manifest.ManifestError, match=r"repo/m.json is not valid JSON .*truncated or corrupt"):
        manifest.parse(text[:20], "repo/m.json")
    with pytest.raises(manifest.ManifestError, match=r"repo/m.json is not the manifest written at backup time"):
        manifest.parse(text, "repo/m.json", sha256="0" * 64)
    with pytest.raises(manifest.ManifestError, match=r"repo/m.json is not a valid data manifest: it is a JSON list"):
        manifest.parse("[]", "repo/m.json")


def test_format_2_digests_rows_in_binary_except_types_made_in_the_database(db):
    """Built-in column types: the binary row form; a table with an enum column: the text form
    (a logical restore gives the enum a new OID, which the binary form would carry)."""
    name, connect = db
    with connect(name) as conn:
        fill(conn)
        conn.execute("CREATE TYPE side AS ENUM ('home', 'away'); CREATE TABLE picks (id int, s side)")
        conn.execute("INSERT INTO picks VALUES (1, 'home'), (2, 'away')")
    got = manifest.capture(connect, databases=[name])
    tables = got["databases"][name]["tables"]
    assert got["format"] == 2 and manifest.validate(got) == []
    assert tables["public.games"]["digest"] == "send" and tables["public.picks"]["digest"] == "text"
    with connect(name) as conn:
        # a float changed in its last bit: the binary form sees it
        conn.execute("UPDATE games SET f = f + 1e-15 WHERE id = 9")
        conn.execute("UPDATE picks SET s = 'home' WHERE id = 2")
    result = manifest.compare(got, manifest.capture(connect, databases=[name], like=got))
    assert not result["ok"]
    assert [m.split(":")[0] for m in result["mismatches"]] == [f"{name}.public.games", f"{name}.public.picks"]


def test_a_format_1_manifest_is_compared_in_format_1(db):
    """Backups taken before format 2 still verify: the copy is checksummed the way they were."""
    name, connect = db
    with connect(name) as conn:
        fill(conn)
        conn.execute("SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'")
        high, low = conn.execute(
            manifest.CHECKSUM_SQL_V1.format(table=manifest.qualified_sql("public.games"))
        ).fetchone()[1:]
    old = manifest.capture(connect, databases=[name], like={"format": 1})
    assert old["format"] == 1 and "digest" not in old["databases"][name]["tables"]["public.games"]
    assert manifest.validate(old) == []
    import hashlib

    assert (
        old["databases"][name]["tables"]["public.games"]["checksum"]
        == (hashlib.sha256(f"{high}:{low}".encode()).hexdigest()[:32])
    )
    assert manifest.compare(old, manifest.capture(connect, databases=[name], like=old))["ok"]
    # against a format-2 capture the checksums differ: compare only like with like
    assert not manifest.compare(old, manifest.capture(connect, databases=[name]))["ok"]
