"""Behaviour of the API against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from starlette.testclient import TestClient

from free4allweb_api import migrations
from free4allweb_api.app import create_app
from free4allweb_api.config import Faults, Settings


def make_client(url: str, **faults) -> TestClient:
    settings = Settings(database_url=url, version="9.9.9", colour="green", faults=Faults(**faults))
    return TestClient(create_app(settings))


@pytest.fixture()
def migrated(database_url):
    migrations.migrate(database_url)
    return database_url


def test_health_reports_version_and_colour_without_a_database():
    with make_client("postgresql://nobody@127.0.0.1:1/none") as client:
        r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": "9.9.9", "colour": "green"}
    assert r.headers["x-app-version"] == "9.9.9"
    assert r.headers["x-app-colour"] == "green"


def test_ready_fails_with_a_reason_when_the_database_is_unreachable():
    with make_client("postgresql://nobody@127.0.0.1:1/none") as client:
        r = client.get("/ready")
    assert r.status_code == 503
    assert r.json()["reason"].startswith("database")


def test_ready_fails_until_migrations_are_applied(database_url):
    with make_client(database_url) as client:
        before = client.get("/ready")
        migrations.migrate(database_url)
        after = client.get("/ready")
    assert before.status_code == 503
    assert after.status_code == 200 and after.json() == {"ready": True, "version": "9.9.9"}


def test_migrations_apply_once(database_url):
    first = migrations.migrate(database_url)
    second = migrations.migrate(database_url)
    assert first == [name for name, _ in migrations.available()] and first
    assert second == []
    assert migrations.pending(database_url) == []


def test_games_round_trip_through_postgresql(migrated):
    with make_client(migrated) as client:
        created = client.post("/api/games", json={"home_team": "Lions", "away_team": "Tigers"})
        assert created.status_code == 201
        game_id = created.json()["id"]
        scored = client.put(f"/api/games/{game_id}/score", json={"home_score": 2, "away_score": 1})
        assert scored.status_code == 200
        fetched = client.get(f"/api/games/{game_id}").json()
        listed = client.get("/api/games?limit=5").json()
        missing = client.get("/api/games/999999")
    assert (fetched["home_score"], fetched["away_score"], fetched["status"]) == (2, 1, "live")
    assert listed["count"] == 1 and listed["games"][0]["id"] == game_id
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "body",
    [{}, {"home_team": "A"}, {"home_team": "A", "away_team": "A"}, {"home_team": " ", "away_team": "B"}],
)
def test_bad_game_input_is_rejected(migrated, body):
    with make_client(migrated) as client:
        assert client.post("/api/games", json=body).status_code == 400


def test_metrics_count_requests_by_route_and_status(migrated):
    with make_client(migrated) as client:
        client.get("/api/games")
        client.get("/api/games/424242")
        text = client.get("/metrics").text
    assert 'free4allweb_http_requests_total{method="GET",route="/api/games",status="200"}' in text
    assert 'free4allweb_http_requests_total{method="GET",route="/api/games/{game_id:int}",status="404"}' in text
    assert "free4allweb_http_request_duration_seconds_bucket" in text
    assert 'free4allweb_build_info{colour="green",version="9.9.9"} 1.0' in text


def test_error_fault_answers_500_on_api_routes_only(migrated):
    with make_client(migrated, error_ratio=1.0) as client:
        api = client.get("/api/games")
        health = client.get("/health")
        ready = client.get("/ready")
    assert api.status_code == 500 and api.json() == {"error": "injected fault"}
    assert api.headers["x-app-version"] == "9.9.9"
    assert health.status_code == 200 and ready.status_code == 200


def test_partial_error_ratio_is_honoured(migrated):
    with make_client(migrated, error_ratio=0.3) as client:
        codes = [client.get("/api/games").status_code for _ in range(400)]
    share = codes.count(500) / len(codes)
    # binomial(400, 0.3): the standard deviation is 0.023, so this band is over 4 sigma wide
    assert 0.2 < share < 0.4, share
    assert set(codes) == {200, 500}


def test_hidden_errors_fail_without_the_app_counting_them(migrated):
    from prometheus_client import REGISTRY

    def counted():
        return sum(
            REGISTRY.get_sample_value(
                "free4allweb_http_requests_total", {"route": "/api/games", "method": "GET", "status": s}
            )
            or 0.0
            for s in ("200", "500")
        )

    settings = Settings(database_url=migrated, version="9.9.9", colour="green", faults=Faults(hidden_error_ratio=1.0))
    before = counted()
    with TestClient(create_app(settings)) as client:
        answers = [client.get("/api/games") for _ in range(5)]
        health = client.get("/health")
    assert {a.status_code for a in answers} == {500} and health.status_code == 200
    assert answers[0].headers["x-app-version"] == "9.9.9"
    assert counted() == before, "the app counted requests that failed below its instrumentation"


def test_latency_fault_delays_api_requests(migrated):
    with make_client(migrated, latency_ms=150) as client:
        started = time.perf_counter()
        client.get("/api/games")
        slow = time.perf_counter() - started
        started = time.perf_counter()
        client.get("/health")
        fast = time.perf_counter() - started
    assert slow >= 0.15
    assert fast < 0.1


def test_tail_fault_keeps_the_median_and_slows_the_tail(migrated):
    with make_client(migrated, tail_ratio=0.2, tail_latency_ms=200) as client:
        times = []
        for _ in range(60):
            started = time.perf_counter()
            client.get("/api/games")
            times.append(time.perf_counter() - started)
    times.sort()
    assert times[len(times) // 2] < 0.1  # the median is untouched
    assert times[int(len(times) * 0.95)] >= 0.2  # the tail carries the delay


def test_ready_fault_fails_readiness_but_not_liveness(migrated):
    with make_client(migrated, ready_fail=True) as client:
        ready = client.get("/ready")
        health = client.get("/health")
    assert ready.status_code == 503 and "fault injection" in ready.json()["reason"]
    assert health.status_code == 200


def test_score_changes_reach_event_stream_listeners(migrated):
    with make_client(migrated) as client:
        game_id = client.post("/api/games", json={"home_team": "A", "away_team": "B"}).json()["id"]
        broadcaster = client.app.state.broadcaster
        deadline = time.time() + 10
        while not broadcaster.listening.is_set() and time.time() < deadline:
            time.sleep(0.05)
        queue = client.portal.call(broadcaster.subscribe)
        client.put(f"/api/games/{game_id}/score", json={"home_score": 3, "away_score": 0})
        payload = client.portal.call(lambda: _next(queue))
    event = json.loads(payload)
    assert event["event"] == "score"
    assert event["game"]["id"] == game_id and event["game"]["home_score"] == 3


async def _next(queue):
    return await asyncio.wait_for(queue.get(), timeout=10)


def test_settings_reject_out_of_range_faults():
    with pytest.raises(ValueError, match="F4A_FAULT_ERROR_RATIO"):
        Settings.from_env({"DATABASE_URL": "postgresql://x", "F4A_FAULT_ERROR_RATIO": "1.5"})
    with pytest.raises(ValueError, match="DATABASE_URL"):
        Settings.from_env({})


def test_settings_read_faults_from_the_environment():
    s = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://x",
            "F4A_COLOUR": "blue",
            "F4A_FAULT_ERROR_RATIO": "0.05",
            "F4A_FAULT_LATENCY_MS": "120",
            "F4A_FAULT_TAIL_RATIO": "0.1",
            "F4A_FAULT_TAIL_LATENCY_MS": "400",
            "F4A_FAULT_READY_FAIL": "true",
        }
    )
    assert s.colour == "blue"
    assert s.faults == Faults(0.05, 120.0, 0.1, 400.0, True)
