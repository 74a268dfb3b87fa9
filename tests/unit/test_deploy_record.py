"""The deployment record against a real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from ansible_collections.free4allweb.devops.plugins.module_utils import deploy_record


@pytest.fixture()
def conn(database_url):
    with psycopg.connect(database_url) as c:
        deploy_record.ensure_schema(c)
        deploy_record.ensure_schema(c)  # twice: idempotent
        yield c


def test_a_deploy_is_recorded_from_start_to_finish(conn):
    row = deploy_record.start(
        conn,
        environment="local",
        platform="hosts",
        kind="deploy",
        version="2.0.0",
        previous_version="1.0.0",
        from_colour="blue",
        to_colour="green",
        operator="alice",
        strategy="blue_green",
    )
    assert row["result"] == "running" and row["finished_at"] is None
    deploy_record.add_step(conn, row["id"], "switch", "ok", {"apply_seconds": 0.002})
    done = deploy_record.finish(conn, row["id"], "succeeded", "green serves 2.0.0", {"duration_s": 31.5})
    assert done["changed"] is True
    d = done["deployment"]
    assert (d["result"], d["message"], d["details"]) == ("succeeded", "green serves 2.0.0", {"duration_s": 31.5})
    assert d["finished_at"] >= d["started_at"]
    again = deploy_record.finish(conn, row["id"], "succeeded", "green serves 2.0.0")
    assert again["changed"] is False
    steps = conn.execute("SELECT step, result, details FROM deployment_steps WHERE deployment_id = %s", (row["id"],))
    assert steps.fetchall() == [("switch", "ok", {"apply_seconds": 0.002})]


def test_latest_finds_the_newest_of_an_environment(conn):
    for v in ("1.0.0", "2.0.0"):
        r = deploy_record.start(conn, environment="local", platform="hosts", kind="deploy", version=v, operator="a")
        deploy_record.finish(conn, r["id"], "succeeded")
    deploy_record.start(conn, environment="staging", platform="aws", kind="deploy", version="9.0.0", operator="a")
    assert deploy_record.latest(conn, "local")["version"] == "2.0.0"
    assert deploy_record.latest(conn, "local", kind="rollback") is None


@pytest.mark.parametrize("result", ["running", "maybe"])
def test_bad_results_are_refused(conn, result):
    r = deploy_record.start(conn, environment="local", platform="hosts", kind="deploy", version="1", operator="a")
    with pytest.raises(deploy_record.RecordError):
        deploy_record.finish(conn, r["id"], result)


def test_unknown_kind_and_id_are_refused(conn):
    with pytest.raises(deploy_record.RecordError, match="kind"):
        deploy_record.start(conn, environment="l", platform="h", kind="upgrade", version="1", operator="a")
    with pytest.raises(deploy_record.RecordError, match="no deployment"):
        deploy_record.finish(conn, 424242, "failed")


def test_commit_is_recorded_and_old_databases_get_the_column(conn):
    conn.execute("ALTER TABLE deployments DROP COLUMN commit")  # a database from before the column
    conn.commit()
    deploy_record.ensure_schema(conn)
    row = deploy_record.start(
        conn, environment="local", platform="hosts", kind="deploy", version="3.0.0", operator="a", commit="3f2c1e9"
    )
    assert row["commit"] == "3f2c1e9"
    assert tuple(row) == deploy_record.FIELDS
    assert deploy_record.get(conn, row["id"])["commit"] == "3f2c1e9"


def test_the_postgres_store_has_the_kubernetes_store_interface(conn):
    store = deploy_record.PostgresStore(conn)
    row = store.start(environment="local", platform="hosts", kind="deploy", version="4.0.0", operator="a")
    store.add_step(row["id"], "health_gate", "ok", {"checks": 3})
    step = store.add_step(row["id"], "switch", "ok")
    assert tuple(step) == deploy_record.STEP_FIELDS
    assert [s["step"] for s in store.steps(row["id"])] == ["health_gate", "switch"]
    assert store.finish(row["id"], "succeeded")["deployment"]["result"] == "succeeded"
    assert store.latest("local")["id"] == row["id"]
    with pytest.raises(deploy_record.RecordError, match="no deployment"):
        store.add_step(424242, "x", "ok")
