"""The deployment record: every deploy, rollback and step, in PostgreSQL or in Kubernetes.

Who, what, when, result and each verdict, durably. Later reports (DORA metrics: deployment
frequency, lead time, change failure rate, time to restore) read them.

Two stores with the same operations (start, add_step, finish, get, latest) and the same shapes:

- PostgreSQL (the module-level functions, or PostgresStore): two tables, `deployments` and
  `deployment_steps`. Works with any DB-API connection using %s parameters (psycopg2 on Debian
  hosts, psycopg 3 in tests).
- Kubernetes (ConfigMapStore): one ConfigMap per deploy or rollback, for platforms where the
  controller always reaches the cluster's API but not the database (EKS with a private RDS).
  `deployment.json` holds the fields of a `deployments` row, `steps.json` the list of its steps.

Plain Python, no Ansible imports.
"""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime

from ansible_collections.free4allweb.devops.plugins.module_utils import k8s_rest

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
#: columns added after the first release; existing databases get them in ensure_schema
MIGRATIONS = {"commit": "ALTER TABLE deployments ADD COLUMN IF NOT EXISTS commit text"}

COLUMNS = (
    "id, environment, platform, kind, strategy, version, previous_version, from_colour, to_colour,"
    " operator, run_id, started_at, finished_at, result, message, details, commit"
)
#: the fields of a deployment, in the order of COLUMNS (the kubernetes store writes the same)
FIELDS = tuple(c.strip() for c in COLUMNS.split(","))
STEP_FIELDS = ("id", "deployment_id", "at", "step", "result", "details")


class RecordError(Exception):
    pass


def ensure_schema(conn) -> None:
    with conn.cursor() as cur:
        cur.execute(SCHEMA)
        # ALTER TABLE takes an ACCESS EXCLUSIVE lock even when the column exists (and would queue
        # behind a long report query): only run it for a column that is really missing
        cur.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'deployments'"
        )
        have = {row[0] for row in cur.fetchall()}
        for column, statement in MIGRATIONS.items():
            if column not in have:
                cur.execute(statement)
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
    commit: str | None = None,
) -> dict:
    if kind not in KINDS:
        raise RecordError(f"kind must be one of {KINDS}, got {kind!r}")
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO deployments (environment, platform, kind, strategy, version, previous_version,"
            " from_colour, to_colour, operator, run_id, details, commit)"
            f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s) RETURNING {COLUMNS}",
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
                commit,
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


def _check_final(result: str) -> None:
    if result not in RESULTS or result == "running":
        raise RecordError(f"result must be one of {[r for r in RESULTS if r != 'running']}, got {result!r}")


def finish(conn, deployment_id: int, result: str, message: str | None = None, details: dict | None = None) -> dict:
    """Close a deployment. Idempotent: finishing an already finished one with the same result is
    a no-op that returns the row unchanged (changed False)."""
    _check_final(result)
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


def steps(conn, deployment_id: int) -> list[dict]:
    """The steps of a deployment, oldest first."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, deployment_id, at, step, result, details FROM deployment_steps"
            " WHERE deployment_id = %s ORDER BY at, id",
            (deployment_id,),
        )
        out = []
        while (row := _row(cur)) is not None:
            out.append(row)
        return out


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


class PostgresStore:
    """The module-level functions over one connection, with the interface of ConfigMapStore."""

    def __init__(self, conn):
        self.conn = conn

    def ensure(self) -> None:
        ensure_schema(self.conn)

    def start(self, **fields) -> dict:
        return start(self.conn, **fields)

    def add_step(self, deployment_id: int, step: str, result: str, details: dict | None = None) -> dict:
        if get(self.conn, deployment_id) is None:
            raise RecordError(f"no deployment with id {deployment_id}")
        return add_step(self.conn, deployment_id, step, result, details)

    def finish(self, deployment_id: int, result: str, message: str | None = None, details: dict | None = None):
        return finish(self.conn, deployment_id, result, message, details)

    def get(self, deployment_id: int) -> dict | None:
        return get(self.conn, deployment_id)

    def steps(self, deployment_id: int) -> list[dict]:
        return steps(self.conn, deployment_id)

    def latest(self, environment: str, kind: str | None = None, result: str | None = None) -> dict | None:
        return latest(self.conn, environment, kind, result)

    def close(self) -> None:
        self.conn.close()


# -- the Kubernetes store --------------------------------------------------------------------
LABEL = "free4allweb.io/"
RECORD_LABELS = {**k8s_rest.MANAGED_BY, LABEL + "record": "deployment"}
NAME_PREFIX = "free4allweb-record-"


def _now_iso() -> str:
    # the shape PostgreSQL's timestamptz takes through isoformat(): microseconds and an offset
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _started_key(d: dict):
    try:
        stamp = datetime.fromisoformat(d["started_at"]).timestamp()
    except (TypeError, ValueError, KeyError):
        stamp = 0.0
    return (stamp, d.get("id") or 0)


class ConfigMapStore:
    """One ConfigMap per deploy or rollback, `free4allweb-record-<id>` in `namespace`.

    The id is the milliseconds since the epoch when it was opened (a clash with a record opened
    in the same millisecond is a 409 on create, and the next id is tried), so ids are unique,
    positive and ordered like the deployments. Labels carry the environment, kind and result,
    so `latest` is one labelled list. Every change is a PUT carrying the resourceVersion that
    was read; on 409 the ConfigMap is read again and the change applied again (a few times).
    Step ids count from 1 within their deployment.
    """

    attempts = 5

    def __init__(self, client, namespace: str, clock=time.time):
        self.client = client
        self.namespace = namespace
        self.clock = clock
        self.created_namespace = False

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def _collection(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps"

    def _call(self, method: str, path: str, what: str, **kw) -> dict:
        try:
            return self.client.request(method, path, what, **kw)
        except (k8s_rest.NotFound, k8s_rest.Conflict):
            raise
        except k8s_rest.K8sError as exc:
            raise RecordError(f"deployment record: {exc}") from None

    @staticmethod
    def name(deployment_id: int) -> str:
        return f"{NAME_PREFIX}{int(deployment_id)}"

    @staticmethod
    def _labels(d: dict) -> dict:
        return {
            **RECORD_LABELS,
            LABEL + "environment": d["environment"],
            LABEL + "kind": d["kind"],
            LABEL + "result": d["result"],
        }

    @classmethod
    def _body(cls, d: dict, steps: list, resource_version: str | None = None) -> dict:
        meta = {"name": cls.name(d["id"]), "labels": cls._labels(d)}
        if resource_version is not None:
            meta["resourceVersion"] = resource_version
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": {
                "deployment.json": json.dumps(d, sort_keys=True),
                "steps.json": json.dumps(steps, sort_keys=True),
            },
        }

    @staticmethod
    def _parse(cm: dict) -> tuple[dict, list]:
        data = cm.get("data") or {}
        try:
            return json.loads(data["deployment.json"]), json.loads(data.get("steps.json") or "[]")
        except (KeyError, ValueError) as exc:
            name = (cm.get("metadata") or {}).get("name")
            raise RecordError(f"deployment record ConfigMap {name} is damaged: {exc}") from None

    def _read(self, deployment_id: int) -> dict | None:
        name = self.name(deployment_id)
        try:
            return self._call("GET", f"{self._collection}/{name}", f"ConfigMap {name}")
        except k8s_rest.NotFound:
            return None

    def _update(self, deployment_id: int, change) -> tuple[dict, list, bool]:
        """Read, apply `change(deployment, steps)` (returns False for nothing to write), PUT with
        the resourceVersion read; again on 409."""
        name = self.name(deployment_id)
        for _attempt in range(self.attempts):
            cm = self._read(deployment_id)
            if cm is None:
                raise RecordError(f"no deployment with id {deployment_id}")
            d, steps = self._parse(cm)
            out = change(d, steps)
            if out is False:
                return d, steps, False
            body = self._body(d, steps, cm["metadata"].get("resourceVersion"))
            try:
                self._call("PUT", f"{self._collection}/{name}", f"ConfigMap {name}", body=body)
            except k8s_rest.Conflict:
                continue
            except k8s_rest.NotFound:
                raise RecordError(f"no deployment with id {deployment_id} (deleted meanwhile)") from None
            return d, steps, True
        raise RecordError(f"deployment record {name} kept changing under this update ({self.attempts} attempts)")

    # -- the operations ------------------------------------------------------------------------
    def ensure(self) -> None:
        """Nothing to create up front: the namespace is created on the first write if missing."""

    def start(
        self,
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
        commit: str | None = None,
    ) -> dict:
        if kind not in KINDS:
            raise RecordError(f"kind must be one of {KINDS}, got {kind!r}")
        if not k8s_rest.LABEL_VALUE.match(environment or "") or not environment:
            raise RecordError(
                f"environment {environment!r} cannot be a Kubernetes label value"
                " (up to 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric)"
            )
        d = {
            "id": None,
            "environment": environment,
            "platform": platform,
            "kind": kind,
            "strategy": strategy,
            "version": version,
            "previous_version": previous_version,
            "from_colour": from_colour,
            "to_colour": to_colour,
            "operator": operator,
            "run_id": run_id,
            "started_at": _now_iso(),
            "finished_at": None,
            "result": "running",
            "message": None,
            "details": details or {},
            "commit": commit,
        }
        candidate = int(self.clock() * 1000)
        namespace_tried = False
        for _attempt in range(20):
            d["id"] = candidate
            name = self.name(candidate)
            try:
                self._call("POST", self._collection, f"ConfigMap {name}", body=self._body(d, []))
                return d
            except k8s_rest.Conflict:  # that id is taken (same millisecond): the next one
                candidate += 1
            except k8s_rest.NotFound:
                if namespace_tried:
                    raise RecordError(f"deployment record: namespace {self.namespace} not found") from None
                namespace_tried = True
                try:
                    self.created_namespace = k8s_rest.ensure_namespace(self.client, self.namespace)
                except k8s_rest.K8sError as exc:
                    raise RecordError(f"deployment record: cannot create namespace {self.namespace}: {exc}") from None
        raise RecordError("deployment record: no free id after 20 attempts")

    def add_step(self, deployment_id: int, step: str, result: str, details: dict | None = None) -> dict:
        row = {}

        def change(d, steps):
            row.clear()
            row.update(
                id=len(steps) + 1,
                deployment_id=d["id"],
                at=_now_iso(),
                step=step,
                result=result,
                details=details or {},
            )
            steps.append(dict(row))

        self._update(deployment_id, change)
        return row

    def finish(self, deployment_id: int, result: str, message: str | None = None, details: dict | None = None):
        _check_final(result)

        def change(d, steps):
            if d["result"] == result and d["finished_at"] is not None:
                return False
            d.update(result=result, message=message, finished_at=_now_iso())
            d["details"] = {**(d.get("details") or {}), **(details or {})}
            return True

        d, _steps, changed = self._update(deployment_id, change)
        return {"changed": changed, "deployment": d}

    def get(self, deployment_id: int) -> dict | None:
        cm = self._read(deployment_id)
        return None if cm is None else self._parse(cm)[0]

    def steps(self, deployment_id: int) -> list:
        cm = self._read(deployment_id)
        if cm is None:
            raise RecordError(f"no deployment with id {deployment_id}")
        return self._parse(cm)[1]

    def latest(self, environment: str, kind: str | None = None, result: str | None = None) -> dict | None:
        labels = {**RECORD_LABELS, LABEL + "environment": environment}
        if kind:
            labels[LABEL + "kind"] = kind
        if result:
            labels[LABEL + "result"] = result
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        best, cont = None, None
        while True:
            query = [("labelSelector", selector), ("limit", "500")]
            if cont:
                query.append(("continue", cont))
            page = self._call("GET", self._collection, "deployment record ConfigMaps", query=query)
            for cm in page.get("items") or []:
                d = self._parse(cm)[0]
                if best is None or _started_key(d) > _started_key(best):
                    best = d
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return copy.deepcopy(best)

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close:
            close()
