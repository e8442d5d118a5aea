"""`trading-desk` with no arguments: the embedded defaults (paper exchange, journal in the user
data dir, sample groups from resources/). The desk window arrives with the GUI issue; until then
this runs the same engine headless and prints where its journal is."""

from __future__ import annotations

import argparse

from platformdirs import user_data_path

from app import headless
from engine.catalog import RESOURCES_DIR
from engine.core.model import Role
from engine.runtime.state import Actor
from engine.store.users import os_user


async def run_demo() -> int:
    data = user_data_path("trading-desk", appauthor=False, ensure_exists=True)
    args = argparse.Namespace(
        db=str(data / "journal.db"),
        broker=f"paper:{data / 'paper-exchange.db'}",
        groups=str(RESOURCES_DIR / "sample_groups.json"),
        json=False,
        faults="none",
        seed=1,
        timeout=60.0,
        max_waves=3,
        order_timeout_ms=5000,
        synchronous="FULL",
    )
    print(f"journal: {args.db}\nexchange: {args.broker}")
    code = await headless.run(args, Actor(os_user(), Role.TRADER))
    print(f"inspect with: trading-desk journal --db {args.db}")
    return code
