"""Real-time score notifications: PostgreSQL LISTEN/NOTIFY fanned out to server-sent events.

Each worker holds one LISTEN connection and forwards every notification to the queues of its
connected clients. Writers publish with pg_notify inside their own transaction, so a client
never hears about a score that was rolled back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

CHANNEL = "free4allweb_events"
log = logging.getLogger("free4allweb_api.notifications")


class Broadcaster:
    def __init__(self, database_url: str, queue_size: int = 100):
        self.database_url = database_url
        self.queue_size = queue_size
        self.subscribers: set[asyncio.Queue[str]] = set()
        self._task: asyncio.Task | None = None
        self.listening = asyncio.Event()

    def subscribe(self) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(self.queue_size)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self.subscribers.discard(queue)

    def publish_local(self, payload: str) -> None:
        for queue in list(self.subscribers):
            if queue.full():  # a slow client loses its oldest event, never blocks the others
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(payload)

    async def _listen_forever(self) -> None:
        backoff = 0.5
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.database_url, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    backoff = 0.5
                    async for notify in conn.notifies():
                        self.publish_local(notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may restart; keep trying, quietly
                self.listening.clear()
                log.warning("notification listener lost its connection: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
