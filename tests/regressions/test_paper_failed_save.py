"""Regression guard (found in review). The failure it guards against:
a failed save of the paper exchange left a changed order only in memory; the per-order save
never wrote it again, so a restart lost an order the engine had adopted, or revived a cancel."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engine.broker.paper import PaperBroker
from engine.catalog import load_catalog
from engine.core.events import Ambiguous, OrderRequest
from engine.core.model import OrderType, Side


def fail_first_save(broker: PaperBroker) -> None:
    real = broker._store.save
    calls = {"n": 0}

    async def flaky(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("database is locked")
        await real(*args, **kwargs)

    broker._store.save = flaky  # type: ignore[method-assign]


async def test_an_order_whose_save_failed_is_written_by_the_next_save(tmp_path: Path) -> None:
    catalog = load_catalog()
    broker = await PaperBroker.open(tmp_path / "x.db", catalog, auto_tick=False)
    fail_first_save(broker)
    with pytest.raises(Ambiguous, match="could not persist"):
        await broker.place(OrderRequest("C1", "NIFTY26DEC24200CE", Side.BUY, 75))
    await broker.step()
    await broker.close()
    again = await PaperBroker.open(tmp_path / "x.db", catalog, auto_tick=False)
    try:
        snapshot = await again.find("C1")
        assert snapshot is not None and snapshot.filled_qty == 75
        assert await again.positions() == {"NIFTY26DEC24200CE": 75}
    finally:
        await again.close()


async def test_a_cancel_whose_save_failed_is_not_revived_by_a_restart(tmp_path: Path) -> None:
    catalog = load_catalog()
    broker = await PaperBroker.open(tmp_path / "x.db", catalog, auto_tick=False)
    ack = await broker.place(OrderRequest("C1", "NIFTY26DEC24200CE", Side.BUY, 75, OrderType.LIMIT, 5))
    fail_first_save(broker)
    with pytest.raises(Ambiguous, match="could not persist the cancel"):
        await broker.cancel(ack.broker_order_id)
    await broker.step()
    await broker.close()
    again = await PaperBroker.open(tmp_path / "x.db", catalog, auto_tick=False)
    try:
        assert (await again.order(ack.broker_order_id)).status.value == "CANCELLED"
    finally:
        await again.close()
