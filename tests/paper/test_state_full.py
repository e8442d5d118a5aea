"""The exchange's state file on a full disk: the order whose save failed is answered as
ambiguous (it is live in memory; a lookup finds it), the exchange keeps serving, and once there
is room again the next save writes what the failed one owed: nothing is lost on reopen."""

from __future__ import annotations

from pathlib import Path

from engine.broker.paper import PaperBroker
from engine.core.events import Ambiguous, OrderRequest
from engine.core.instruments import Instrument
from engine.core.model import OrderType, Side


def _order(n: int) -> OrderRequest:
    return OrderRequest(f"TDFULL{n:014d}", "NIFTY26DEC24200CE", Side.BUY, 75, OrderType.LIMIT, 100)


async def test_a_full_state_file_leaves_orders_answerable_and_saves_them_once_there_is_room(
    tmp_path: Path, catalog: dict[str, Instrument]
) -> None:
    state = tmp_path / "x.db"
    broker = await PaperBroker.open(state, catalog, auto_tick=False)
    first = await broker.place(_order(0))
    conn = broker._store._conn  # the exchange's own writer connection: its disk "fills"
    (pages,) = await (await conn.execute("PRAGMA page_count")).fetchone()
    await conn.execute(f"PRAGMA max_page_count={pages}")
    failed: Exception | None = None
    placed = [first.client_order_id]
    for n in range(1, 400):
        try:
            await broker.place(_order(n))
        except Ambiguous as exc:
            failed, unsaved = exc, _order(n).client_order_id
            break
        placed.append(_order(n).client_order_id)
    assert failed is not None, "the state file filled up"
    assert "could not persist the order" in str(failed) and "full" in str(failed)
    found = await broker.find(unsaved)
    assert found is not None and found.status.value == "ACCEPTED", "live in memory: a lookup settles it"
    assert await broker.positions() == {} and len(await broker.orders()) == len(placed) + 1, "still serving"
    await conn.execute("PRAGMA max_page_count=1073741823")  # space freed
    later = await broker.place(_order(999))
    await broker.close()
    reopened = await PaperBroker.open(state, catalog, auto_tick=False)
    try:
        for coid in [*placed, unsaved, later.client_order_id]:
            assert await reopened.find(coid) is not None, f"{coid} lost"
    finally:
        await reopened.close()
