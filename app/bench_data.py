"""The bench's synthetic orders and the broker events that fill them (shared by app.bench and
app.bench_audit)."""

from __future__ import annotations

from typing import Any

from engine.core.book import IntentRow
from engine.core.events import BrokerEvent, FillReport, OrderUpdate
from engine.core.model import LegRole, OrderStatus, OrderType, Side
from engine.store.journal import Journal
from engine.store.users import os_user

__all__ = ["LOT", "LOTS_PER_ORDER", "ORDERS", "_events", "_rows", "_spread"]

ORDERS = 200
LOTS_PER_ORDER = 5
LOT = 75


def _rows(prefix: str) -> list[IntentRow]:
    return [
        IntentRow(
            f"{prefix}{i:08d}",
            f"{prefix}{i:08d}",
            1,
            "BENCH",
            LegRole.HEDGE,
            1,
            "NIFTY26DEC24200CE",
            Side.BUY,
            LOTS_PER_ORDER * LOT,
            OrderType.MARKET,
            None,
            broker_order_id=f"B{prefix}{i}",
        )
        for i in range(ORDERS)
    ]


def _events(rows: list[IntentRow]) -> list[BrokerEvent]:
    out: list[BrokerEvent] = []
    for r in rows:
        assert r.broker_order_id
        out.append(OrderUpdate(r.broker_order_id, r.client_order_id, OrderStatus.ACCEPTED, 0, 1))
        for k in range(1, LOTS_PER_ORDER + 1):
            out.append(
                FillReport(
                    f"T{r.client_order_id}{k}",
                    r.broker_order_id,
                    r.client_order_id,
                    r.symbol,
                    Side.BUY,
                    LOT,
                    100,
                    1 + k,
                )
            )
            out.append(
                OrderUpdate(
                    r.broker_order_id,
                    r.client_order_id,
                    OrderStatus.FILLED if k == LOTS_PER_ORDER else OrderStatus.PARTIALLY_FILLED,
                    k * LOT,
                    1 + k,
                )
            )
    return out


def _spread(group_id: str, qty: int) -> dict[str, Any]:
    return {
        "group_id": group_id,
        "legs": [
            {"role": "HEDGE", "symbol": "NIFTY26DEC24200CE", "side": "BUY", "qty": qty},
            {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": qty},
        ],
    }


async def bench_login(journal: Journal) -> str:
    """Who the bench acts as: the database login on PostgreSQL (its desk roles are the server's
    role memberships), the OS user on SQLite."""
    if journal.dialect == "postgresql":
        rows = await journal.fetch("SELECT session_user")
        return str(rows[0][0])
    return os_user()
