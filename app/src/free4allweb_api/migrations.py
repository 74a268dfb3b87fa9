"""Schema migrations: numbered SQL files applied once each, in order, under an advisory lock.

Every migration must be backward compatible with the release before it (expand/contract), so
blue and green can share one database during a switch.
"""

from __future__ import annotations

from importlib import resources

import psycopg

# Any 64-bit constant works; it only has to be the same for every app process.
MIGRATION_LOCK_ID = 0x46344157_4D494752  # "F4AWMIGR"


def available() -> list[tuple[str, str]]:
    """(name, sql) for every packaged migration, sorted by name."""
    folder = resources.files("free4allweb_api") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def applied(conn: psycopg.Connection) -> set[str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    return {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}


def migrate(database_url: str) -> list[str]:
    """Apply pending migrations; return the names applied (empty when up to date)."""
    done: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        try:
            already = applied(conn)
            for name, sql in available():
                if name in already:
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
                done.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    return done


def pending(database_url: str) -> list[str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        already = applied(conn)
    return [name for name, _ in available() if name not in already]
