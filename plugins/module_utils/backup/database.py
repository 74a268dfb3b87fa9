"""A DB-API connection to PostgreSQL: psycopg2 (Debian's python3-psycopg2 on the hosts) or
psycopg 3 (the tests' venv). Connections are in autocommit; callers issue BEGIN and COMMIT."""

from __future__ import annotations


class DriverMissing(Exception):
    pass


def connect(
    host: str, port: int, dbname: str, *, user: str = "postgres", password: str | None = None, timeout: int = 10
):
    params = {"host": host, "port": int(port), "dbname": dbname, "user": user, "connect_timeout": timeout}
    if password:
        params["password"] = password
    try:
        import psycopg2  # type: ignore[import-not-found]
    except ImportError:
        psycopg2 = None
    if psycopg2 is not None:
        conn = psycopg2.connect(**params)
        conn.autocommit = True
        return conn
    try:
        import psycopg  # type: ignore[import-not-found]
    except ImportError as exc:
        raise DriverMissing("no PostgreSQL driver: install python3-psycopg2 (or psycopg)") from exc
    return psycopg.connect(**params, autocommit=True)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def fetch_all(conn, sql: str, params=None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall()) if cur.description else []


def fetch_one(conn, sql: str, params=None) -> tuple:
    """The first row of a query that always returns one."""
    rows = fetch_all(conn, sql, params)
    if not rows:
        raise LookupError(f"no row from: {sql.strip()[:80]}")
    return rows[0]


def execute(conn, sql: str, params=None) -> None:
    with conn.cursor() as cur:
        cur.execute(sql, params)
