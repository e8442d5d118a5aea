"""Fan-out of broker events to every ``events()`` subscriber of an adapter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from engine.core.events import FeedItem


class EventFanout:
    """Each ``subscribe()`` is an independent stream that starts at the call (not at the first
    read), so a consumer can subscribe and then reconcile without missing what happens between.
    A consumer that stops reading (cancelled or closed) is unsubscribed; ``end()`` ends them all."""

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[FeedItem | None]] = []  # None: end of stream

    def subscribe(self) -> AsyncIterator[FeedItem]:
        queue: asyncio.Queue[FeedItem | None] = asyncio.Queue()
        self._queues.append(queue)
        return self._drain(queue)

    def publish(self, event: FeedItem) -> None:
        for queue in self._queues:
            queue.put_nowait(event)

    def end(self) -> None:
        for queue in self._queues:
            queue.put_nowait(None)

    async def _drain(self, queue: asyncio.Queue[FeedItem | None]) -> AsyncIterator[FeedItem]:
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            if queue in self._queues:
                self._queues.remove(queue)
