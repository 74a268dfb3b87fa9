"""A bounded HTTP load generator that remembers every response.

Each request's start and end time, status and `X-App-Version` header is kept, so tests can say
exactly how many requests failed during a switch, when the last old-version response came, and
whether everything after a moment served the new version.

It only targets the loopback and the lab's own containers, and it always stops: at `requests`
requests, at `max_seconds`, or when stopped.

    python -m tests.support.loadgen --url http://127.0.0.1:18080/api/games?limit=5 \
        --connections 8 --requests 20000 --max-seconds 120
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.89.40.0/24")]


def check_target(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"load target must be an IP on the loopback or the lab network, got {host!r}") from None
    if not any(addr in net for net in ALLOWED_NETWORKS):
        raise ValueError(f"refusing to load {host}: only 127.0.0.0/8 and the lab network 10.89.40.0/24")


@dataclass
class Sample:
    start: float
    end: float
    status: int  # 0 when the request failed below HTTP
    version: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    connections: int = 0
    started: float = 0.0
    ended: float = 0.0

    @property
    def total(self) -> int:
        return len(self.samples)

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if not s.ok]

    def versions(self, since: float | None = None) -> Counter:
        return Counter(s.version for s in self.samples if since is None or s.start >= since)

    def last_seen(self, version: str) -> float | None:
        ends = [s.end for s in self.samples if s.version == version]
        return max(ends) if ends else None

    def first_seen(self, version: str) -> float | None:
        starts = [s.start for s in self.samples if s.version == version]
        return min(starts) if starts else None

    def switch_seconds(self, old: str, new: str) -> float | None:
        """From the first response of `new` to the last of `old`: how long both were served
        (0 or less means a clean cut)."""
        first_new, last_old = self.first_seen(new), self.last_seen(old)
        if first_new is None or last_old is None:
            return None
        return max(0.0, last_old - first_new)

    def summary(self) -> dict:
        duration = max(self.ended - self.started, 1e-9)
        errors = Counter(s.error or f"HTTP {s.status}" for s in self.failed)
        lat = sorted(s.end - s.start for s in self.samples)
        return {
            "requests": self.total,
            "connections": self.connections,
            "seconds": round(duration, 2),
            "rps": round(self.total / duration, 1),
            "failed": len(self.failed),
            "failures": dict(errors.most_common(5)),
            "versions": dict(self.versions()),
            "p50_ms": round(lat[len(lat) // 2] * 1000, 2) if lat else None,
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2) if lat else None,
        }


async def _run(url, connections, requests, max_seconds, rate, stop: threading.Event, result: LoadResult, timeout):
    check_target(url)
    # with a rate, each connection paces itself to rate/connections requests a second
    gap = connections / rate if rate else 0.0
    remaining = {"n": requests}
    deadline = time.monotonic() + max_seconds
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def worker():
            next_at = time.monotonic()
            while remaining["n"] > 0 and not stop.is_set() and time.monotonic() < deadline:
                remaining["n"] -= 1
                if gap:
                    next_at += gap
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                start = time.time()
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                        result.samples.append(
                            Sample(start, time.time(), resp.status, resp.headers.get("X-App-Version", ""))
                        )
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    result.samples.append(Sample(start, time.time(), 0, "", type(exc).__name__))

        result.started = time.time()
        await asyncio.gather(*(worker() for _ in range(connections)))
        result.ended = time.time()


class Load:
    """Run load in a background thread: `with Load(url, ...) as load: ...; load.result`."""

    def __init__(self, url, connections=8, requests=20000, max_seconds=180.0, rate=0.0, timeout=10.0):
        check_target(url)
        self.args = (url, connections, requests, max_seconds, rate)
        self.timeout = timeout
        self.stop_event = threading.Event()
        self.result = LoadResult(connections=connections)
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self):
        asyncio.run(_run(*self.args, self.stop_event, self.result, self.timeout))

    def start(self) -> Load:
        self._thread.start()
        while not self.result.started:
            time.sleep(0.01)
        return self

    def wait(self, timeout: float | None = None) -> LoadResult:
        """Wait for the request budget to be spent (or max_seconds)."""
        self._thread.join(timeout)
        return self.result

    def stop(self) -> LoadResult:
        self.stop_event.set()
        self._thread.join()
        return self.result

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--max-seconds", type=float, default=120)
    p.add_argument("--rate", type=float, default=0, help="requests per second in all (0: as fast as possible)")
    a = p.parse_args(argv)
    load = Load(a.url, a.connections, a.requests, a.max_seconds, a.rate).start()
    print(json.dumps(load.wait().summary(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
