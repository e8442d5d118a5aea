"""Regression guard (found in review). The failure it guards against:
A v1 journal with a group mid-flight (hedge leg filled via a v1 LEG intent, risk not yet sold):
after migrating to v3 the engine starts a *second* full hedge (no hedge_nodes rows for v1 groups)."""

import sqlite3
from pathlib import Path

from engine.catalog import load_catalog
from engine.store.journal import Journal
from tests.regressions.v1 import v1_migrations
from tests.runtime.harness import Harness


async def test_a_v1_group_in_flight_is_not_hedged_twice_after_upgrade(tmp_path: Path) -> None:
    h = Harness(tmp_path, load_catalog())
    m1 = v1_migrations(tmp_path)
    j = await Journal.open(h.db, migrations_dir=m1)
    await j.close()
    c = sqlite3.connect(h.db)
    c.execute("INSERT INTO groups VALUES ('G1','', 'HEDGE_FILLED','', '{}', 1, 1)")
    c.execute("INSERT INTO legs VALUES ('G1','HEDGE','NIFTY26DEC24200CE','BUY',150,75,5,1800,NULL)")
    c.execute("INSERT INTO legs VALUES ('G1','RISK','NIFTY26DEC24000CE','SELL',150,75,5,1800,NULL)")
    c.execute(
        "INSERT INTO intents (client_order_id,intent_id,attempt,group_id,role,wave,symbol,side,qty,order_type,status,"
        "order_status,broker_order_id,filled_qty,fills_qty,ts_created_local_ns,ts_ack_exchange_ms,ts_updated_local_ns)"
        " VALUES ('TDA','TDA',1,'G1','HEDGE',1,'NIFTY26DEC24200CE','BUY',150,'MARKET','FILLED','FILLED','B1',150,150,"
        "1,1,1)"
    )

    c.commit()
    c.close()
    await h.start()
    try:
        hedges = await h.journal.fetch(
            "SELECT client_order_id, purpose, qty, hedge_node_id IS NOT NULL FROM intents WHERE role='HEDGE'"
        )
        print(hedges)
        print(await h.journal.fetch("SELECT state, reason FROM groups"))
        print(await h.journal.fetch("SELECT * FROM rejected_events"))
        assert len(hedges) == 1, f"second hedge bought for a v1 group whose hedge already filled: {hedges}"
    finally:
        await h.stop()
