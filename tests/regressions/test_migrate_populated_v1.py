"""Migration 002 rebuilds `intents`; a populated v1 journal (fills and escalations pointing at
intents) must upgrade with every row and link intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine.store.journal import Journal
from engine.store.migrations import discover
from tests.regressions.v1 import v1_migrations


async def test_a_populated_v1_journal_upgrades_with_its_links_intact(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    await (await Journal.open(db, migrations_dir=v1_migrations(tmp_path))).close()
    c = sqlite3.connect(db)
    c.execute("PRAGMA foreign_keys=ON")
    c.execute("INSERT INTO groups VALUES ('G1','', 'RISK_SUBMITTED','', '{}', 1, 1)")
    c.execute("INSERT INTO legs VALUES ('G1','HEDGE','NIFTY26DEC24200CE','BUY',150,75,5,1800,NULL)")
    c.execute("INSERT INTO legs VALUES ('G1','RISK','NIFTY26DEC24000CE','SELL',150,75,5,1800,NULL)")
    c.execute(
        "INSERT INTO intents (client_order_id,intent_id,attempt,group_id,role,wave,symbol,side,qty,order_type,status,"
        "order_status,broker_order_id,filled_qty,fills_qty,ts_created_local_ns,ts_ack_exchange_ms,ts_updated_local_ns)"
        " VALUES ('TDA','TDA',1,'G1','HEDGE',1,'NIFTY26DEC24200CE','BUY',150,'MARKET','FILLED','FILLED','B1',150,150,"
        "1,1,1)"
    )
    c.execute("INSERT INTO fills VALUES ('T1','TDA','NIFTY26DEC24200CE','BUY',150,1000,1,1)")
    c.execute(
        "INSERT INTO escalations (kind,severity,status,group_id,client_order_id,reason,ts_created_local_ns)"
        " VALUES ('ORPHANED_INTENT','CRITICAL','OPEN','G1','TDA','x',1)"
    )
    c.commit()
    c.close()
    j = await Journal.open(db)
    try:
        assert j.schema_version == discover()[-1].version >= 2
        assert await j.fetch("SELECT client_order_id, status, purpose FROM intents") == [("TDA", "FILLED", "LEG")]
        assert await j.fetch("SELECT trade_id, client_order_id FROM fills") == [("T1", "TDA")]
        assert await j.fetch("SELECT client_order_id FROM escalations") == [("TDA",)]
        assert await j.fetch("PRAGMA foreign_key_check") == []
        assert (await j.fetch("PRAGMA foreign_keys"))[0][0] == 1
    finally:
        await j.close()
