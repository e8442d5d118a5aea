"""Review finding 2: a command that fails its checks with bad input (a margin model without a
price for the underlying) is refused and audited; it never stops the engine, and HALT still works."""

from __future__ import annotations

import dataclasses

import pytest

from engine.catalog import load_margin_model
from engine.core.commands import CommandError
from engine.core.trading_state import TradingState
from engine.runtime import commands
from engine.runtime.engine import Engine
from engine.store.journal import Journal
from tests.runtime.harness import RISK, TRADER, Harness, group


async def test_one_bad_launch_does_not_stop_the_engine(harness: Harness) -> None:
    broker = await harness.open_broker()
    margin = load_margin_model()
    # a margin model without a reference price for BANKNIFTY (a config gap, or a new underlying)
    model = dataclasses.replace(
        margin, underlying_ref_paise={k: v for k, v in margin.underlying_ref_paise.items() if k != "BANKNIFTY"}
    )
    harness.journal = await Journal.open(harness.db)
    engine = Engine(harness.journal, broker, harness.catalog, margin_model=model, id_factory=harness.next_id)
    harness.engine = engine
    await engine.start()
    bank = [s for s, i in harness.catalog.items() if i.underlying == "BANKNIFTY" and s.endswith("CE")]
    bad = group("GB", hedge=sorted(bank)[-1], risk=sorted(bank)[0], qty=harness.catalog[bank[0]].lot_size)
    with pytest.raises(CommandError, match="no reference price for BANKNIFTY"):
        await engine.launch(bad, TRADER)
    audit = await harness.journal.fetch("SELECT command, outcome FROM audit_log")
    assert audit[-1] == ("launch", "REFUSED")
    # the engine should still take the next command (HALT above all)
    await commands.set_trading_state(engine, TradingState.HALTED, RISK)
    assert engine.failure is None
