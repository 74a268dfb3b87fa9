"""ASGI middleware: metrics, version headers and fault injection for every request."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from starlette.routing import Match

from free4allweb_api.config import Settings
from free4allweb_api.metrics import LATENCY, REQUESTS

UNTRACKED = {"/metrics"}


def route_template(routes: list[Any], scope: dict) -> str:
    """The matched route's path template, so labels stay bounded ("/api/games/{game_id}")."""
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return route.path
    return "unmatched"


class RequestObserver:
    """Counts and times each request, stamps version headers, and injects configured faults."""

    def __init__(self, app, settings: Settings, routes: list[Any], rng: random.Random | None = None):
        self.app = app
        self.settings = settings
        self.routes = routes
        self.rng = rng or random.Random()
        self.headers = [
            (b"x-app-version", settings.version.encode()),
            (b"x-app-colour", settings.colour.encode()),
        ]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = route_template(self.routes, scope)
        method = scope["method"]
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = list(message.get("headers", [])) + self.headers
            await send(message)

        faults = self.settings.faults
        if faults.hidden_error_ratio and path.startswith("/api/") and self.rng.random() < faults.hidden_error_ratio:
            # answered before (and outside) the metrics below: the app never counts this request
            await self._error(send_with_headers)
            return

        try:
            if path.startswith("/api/") and self.settings.faults.active:
                injected = await self._inject(send_with_headers)
                if injected:
                    return
            await self.app(scope, receive, send_with_headers)
        finally:
            if path not in UNTRACKED:
                REQUESTS.labels(route, method, str(status["code"])).inc()
                LATENCY.labels(route, method).observe(time.perf_counter() - started)

    async def _inject(self, send) -> bool:
        """Apply latency faults; answer 500 and return True when an error is injected."""
        faults = self.settings.faults
        delay_ms = faults.latency_ms
        if faults.tail_ratio and self.rng.random() < faults.tail_ratio:
            delay_ms += faults.tail_latency_ms
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000.0)
        if faults.error_ratio and self.rng.random() < faults.error_ratio:
            await self._error(send)
            return True
        return False

    @staticmethod
    async def _error(send) -> None:
        body = b'{"error":"injected fault"}'
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
