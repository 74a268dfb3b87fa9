"""The free4allweb API: games and scores in PostgreSQL, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from free4allweb_api import metrics, migrations
from free4allweb_api.config import Settings
from free4allweb_api.middleware import RequestObserver
from free4allweb_api.notifications import CHANNEL, Broadcaster

GAME_COLUMNS = "id, home_team, away_team, starts_at, home_score, away_score, status, updated_at"
STATUSES = {"scheduled", "live", "final"}


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def json_response(data, status_code: int = 200) -> Response:
    body = json.dumps(data, default=_json_default, separators=(",", ":"))
    return Response(body, status_code=status_code, media_type="application/json")


def problem(status_code: int, message: str) -> Response:
    return json_response({"error": message}, status_code)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    pool = AsyncConnectionPool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        timeout=settings.db_timeout_s,
        kwargs={"row_factory": dict_row, "autocommit": True},
        open=False,
    )
    broadcaster = Broadcaster(settings.database_url)
    metrics.BUILD_INFO.labels(settings.version, settings.colour).set(1)
    metrics.FAULTS_ACTIVE.set(1 if settings.faults.active else 0)

    async def health(request: Request) -> Response:
        return json_response({"status": "ok", "version": settings.version, "colour": settings.colour})

    async def ready(request: Request) -> Response:
        if settings.faults.ready_fail:
            return json_response({"ready": False, "reason": "readiness forced to fail by fault injection"}, 503)
        try:
            async with asyncio.timeout(settings.db_timeout_s):
                async with pool.connection() as conn:
                    await conn.execute("SELECT 1")
                    cur = await conn.execute(
                        "SELECT count(*) AS n FROM schema_migrations WHERE name = ANY(%s)",
                        ([name for name, _ in migrations.available()],),
                    )
                    row = await cur.fetchone()
        except Exception as exc:  # any failure to reach the database means not ready
            return json_response({"ready": False, "reason": f"database: {exc or type(exc).__name__}"}, 503)
        missing = len(migrations.available()) - row["n"]
        if missing:
            return json_response({"ready": False, "reason": f"database schema is {missing} migration(s) behind"}, 503)
        return json_response({"ready": True, "version": settings.version})

    async def metrics_endpoint(request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    async def list_games(request: Request) -> Response:
        try:
            limit = min(max(int(request.query_params.get("limit", "20")), 1), 100)
        except ValueError:
            return problem(400, "limit must be an integer")
        status = request.query_params.get("status")
        if status is not None and status not in STATUSES:
            return problem(400, f"status must be one of {sorted(STATUSES)}")
        async with pool.connection() as conn:
            if status:
                cur = await conn.execute(
                    f"SELECT {GAME_COLUMNS} FROM games WHERE status = %s ORDER BY starts_at DESC, id DESC LIMIT %s",
                    (status, limit),
                )
            else:
                cur = await conn.execute(
                    f"SELECT {GAME_COLUMNS} FROM games ORDER BY starts_at DESC, id DESC LIMIT %s",
                    (limit,),
                )
            games = await cur.fetchall()
        return json_response({"games": games, "count": len(games)})

    async def create_game(request: Request) -> Response:
        try:
            data = await request.json()
            home, away = str(data["home_team"]).strip(), str(data["away_team"]).strip()
        except (ValueError, KeyError, TypeError):
            return problem(400, "body must be JSON with home_team and away_team")
        if not home or not away or home == away:
            return problem(400, "home_team and away_team must be two different, non-empty names")
        async with pool.connection() as conn, conn.transaction():
            for team in (home, away):
                await conn.execute("INSERT INTO teams (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (team,))
            cur = await conn.execute(
                f"INSERT INTO games (home_team, away_team) VALUES (%s, %s) RETURNING {GAME_COLUMNS}",
                (home, away),
            )
            game = await cur.fetchone()
        return json_response(game, 201)

    async def get_game(request: Request) -> Response:
        async with pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {GAME_COLUMNS} FROM games WHERE id = %s", (request.path_params["game_id"],)
            )
            game = await cur.fetchone()
        return json_response(game) if game else problem(404, "no such game")

    async def update_score(request: Request) -> Response:
        try:
            data = await request.json()
            home_score, away_score = int(data["home_score"]), int(data["away_score"])
            status = str(data.get("status", "live"))
        except (ValueError, KeyError, TypeError):
            return problem(400, "body must be JSON with integer home_score and away_score")
        if home_score < 0 or away_score < 0 or status not in STATUSES:
            return problem(400, f"scores must be >= 0 and status one of {sorted(STATUSES)}")
        async with pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE games SET home_score = %s, away_score = %s, status = %s,"
                f" updated_at = now() WHERE id = %s RETURNING {GAME_COLUMNS}",
                (home_score, away_score, status, request.path_params["game_id"]),
            )
            game = await cur.fetchone()
            if game:
                payload = json.dumps({"event": "score", "game": game}, default=_json_default)
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
        return json_response(game) if game else problem(404, "no such game")

    async def events(request: Request) -> Response:
        queue = broadcaster.subscribe()

        async def stream() -> AsyncIterator[str]:
            try:
                yield ": connected\n\n"
                while True:
                    try:
                        payload = await asyncio.wait_for(queue.get(), timeout=15)
                        yield f"event: score\ndata: {payload}\n\n"
                    except TimeoutError:
                        yield ": keep-alive\n\n"
            finally:
                broadcaster.unsubscribe(queue)

        return StreamingResponse(stream(), media_type="text/event-stream")

    routes = [
        Route("/health", health),
        Route("/ready", ready),
        Route("/metrics", metrics_endpoint),
        Route("/api/games", list_games, methods=["GET"]),
        Route("/api/games", create_game, methods=["POST"]),
        Route("/api/games/{game_id:int}", get_game, methods=["GET"]),
        Route("/api/games/{game_id:int}/score", update_score, methods=["PUT"]),
        Route("/api/events", events, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        # Open without waiting: the service must start (and answer /health) while the database
        # is away; /ready reports the problem instead.
        await pool.open(wait=False)
        broadcaster.start()
        try:
            yield
        finally:
            await broadcaster.stop()
            await pool.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.settings = settings
    app.state.pool = pool
    app.state.broadcaster = broadcaster
    app.add_middleware(RequestObserver, settings=settings, routes=routes)

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        return problem(503, "database unavailable")

    app.add_exception_handler(psycopg.OperationalError, database_unavailable)
    return app
