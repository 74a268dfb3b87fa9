"""The deployment record: every deploy, rollback and step, in PostgreSQL.

Who, what, when, result and each verdict, durably, in two tables. Later reports (DORA
metrics: deployment frequency, lead time, change failure rate, time to restore) read them.

Works with any DB-API connection using %s parameters (psycopg2 on Debian hosts, psycopg 3 in
tests). Plain Python, no Ansible imports.
"""

from __future__ import annotations

import json

KINDS = ("deploy", "rollback")
RESULTS = ("running", "succeeded", "failed", "noop")

SCHEMA = """
CREATE TABLE IF NOT EXISTS deployments (
    id               bigserial PRIMARY KEY,
    environment      text NOT NULL,
    platform         text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('deploy', 'rollback')),
    strategy         text,
    version          text NOT NULL,
    previous_version text,
    from_colour      text,
    to_colour        text,
    operator         text NOT NULL,
    run_id           text,
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    result           text NOT NULL DEFAULT 'running'
                     CHECK (result IN ('running', 'succeeded', 'failed', 'noop')),
    message          text,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS deployments_env_started_idx ON deployments (environment, started_at DESC);
CREATE TABLE IF NOT EXISTS deployment_steps (
    id            bigserial PRIMARY KEY,
    deployment_id bigint NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    at            timestamptz NOT NULL DEFAULT now(),
    step          text NOT NULL,
    result        text NOT NULL,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS deployment_steps_deployment_idx ON deployment_steps (deployment_id, at);
"""

COLUMNS = (
    "id, environment, platform, kind, strategy, version, previous_version, from_colour, to_colour,"
    " operator, run_id, started_at, finished_at, result, message, details"
)


class RecordError(Exception):
    pass


def ensure_schema(conn) -> None:
    with conn.cursor() as cur:
        cur.execute(SCHEMA)
    conn.commit()


def _row(cur) -> dict | None:
    row = cur.fetchone()
    if row is None:
        return None
    names = [d[0] for d in cur.description]
    out = dict(zip(names, row, strict=True))
    for key in ("started_at", "finished_at", "at"):
        if out.get(key) is not None:
            out[key] = out[key].isoformat()
    if isinstance(out.get("details"), str):
        out["details"] = json.loads(out["details"])
    return out


def start(
    conn,
    *,
    environment: str,
    platform: str,
    kind: str,
    version: str,
    operator: str,
    strategy: str | None = None,
    previous_version: str | None = None,
    from_colour: str | None = None,
    to_colour: str | None = None,
    run_id: str | None = None,
    details: dict | None = None,
) -> dict:
    if kind not in KINDS:
        raise RecordError(f"kind must be one of {KINDS}, got {kind!r}")
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO deployments (environment, platform, kind, strategy, version, previous_version,"
            " from_colour, to_colour, operator, run_id, details)"
            f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb) RETURNING {COLUMNS}",
            (
                environment,
                platform,
                kind,
                strategy,
                version,
                previous_version,
                from_colour,
                to_colour,
                operator,
                run_id,
                json.dumps(details or {}),
            ),
        )
        row = _row(cur)
    conn.commit()
    return row


def add_step(conn, deployment_id: int, step: str, result: str, details: dict | None = None) -> dict:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO deployment_steps (deployment_id, step, result, details)"
            " VALUES (%s, %s, %s, %s::jsonb) RETURNING id, deployment_id, at, step, result, details",
            (deployment_id, step, result, json.dumps(details or {})),
        )
        row = _row(cur)
    conn.commit()
    return row


def finish(conn, deployment_id: int, result: str, message: str | None = None, details: dict | None = None) -> dict:
    """Close a deployment. Idempotent: finishing an already finished one with the same result is
    a no-op that returns the row unchanged (changed False)."""
    if result not in RESULTS or result == "running":
        raise RecordError(f"result must be one of {[r for r in RESULTS if r != 'running']}, got {result!r}")
    current = get(conn, deployment_id)
    if current is None:
        raise RecordError(f"no deployment with id {deployment_id}")
    if current["result"] == result and current["finished_at"] is not None:
        return {"changed": False, "deployment": current}
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE deployments SET result = %s, message = %s, finished_at = now(),"
            f" details = details || %s::jsonb WHERE id = %s RETURNING {COLUMNS}",
            (result, message, json.dumps(details or {}), deployment_id),
        )
        row = _row(cur)
    conn.commit()
    return {"changed": True, "deployment": row}


def get(conn, deployment_id: int) -> dict | None:
    with conn.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM deployments WHERE id = %s", (deployment_id,))
        return _row(cur)


def latest(conn, environment: str, kind: str | None = None, result: str | None = None) -> dict | None:
    sql = f"SELECT {COLUMNS} FROM deployments WHERE environment = %s"
    args: list = [environment]
    if kind:
        sql += " AND kind = %s"
        args.append(kind)
    if result:
        sql += " AND result = %s"
        args.append(result)
    with conn.cursor() as cur:
        cur.execute(sql + " ORDER BY started_at DESC, id DESC LIMIT 1", args)
        return _row(cur)
