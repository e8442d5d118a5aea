"""The Broker port: what the engine needs from any venue, paper or real."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from engine.core.events import (
    Ambiguous,
    CancelAck,
    FeedItem,
    OrderRequest,
    OrderSnapshot,
    PlaceAck,
    Rejected,
)
from engine.core.quotes import Quote

__all__ = ["Ambiguous", "Broker", "Rejected"]


class Broker(Protocol):
    async def place(self, order: OrderRequest) -> PlaceAck:
        """Send an order. Raises Rejected (definite) or Ambiguous (the order may be live)."""
        ...

    async def cancel(self, broker_order_id: str) -> CancelAck: ...

    async def order(self, broker_order_id: str) -> OrderSnapshot: ...

    async def find(self, client_order_id: str) -> OrderSnapshot | None:
        """Look an order up by the client order id we sent. None: the broker never saw it."""
        ...

    async def orders(self) -> list[OrderSnapshot]:
        """Every order of the trading day."""
        ...

    async def server_time_ms(self) -> int: ...

    def events(self) -> AsyncIterator[FeedItem]:
        """The event stream. It may repeat, reorder and skip; the engine copes. A message that
        cannot be decoded comes as a MalformedEvent, so the engine can journal it."""
        ...

    def quotes(self, symbols: Sequence[str]) -> AsyncIterator[Quote]:
        """Market quotes of ``symbols``: the current one of each, then each change. Prices in
        paise. ValueError for a symbol the broker does not know."""
        ...

    async def close(self) -> None: ...
