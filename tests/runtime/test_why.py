"""`why` names what each decision read, from the journal alone (engine.audit.why), and every
scenario's journal replays exactly (engine.audit.replay): a child hedge order names its parent's
confirmed partial fill, the confirmed cancel and the rule; a MARKET stop-loss fallback names the
trigger, the 2 s of broker time and the confirmed cancel; an approved retry names the orphan, the
operator's approval and who gave it."""

from __future__ import annotations

import json
from typing import Any

from engine.audit.replay import replay
from engine.audit.why import Link, explain, render
from engine.runtime import commands
from engine.store.journal import Journal
from tests.runtime.harness import OPERATOR, TRADER, Harness, group
from tests.runtime.test_recovery_and_orphans import _orphan_one
from tests.runtime.test_stop_loss import Clocks, triggered_partly, until

HEDGE = "NIFTY26DEC24200CE"


def walk(link: Link) -> list[Link]:
    out = [link]
    for child in link.because:
        out += walk(child)
    return out


async def replays_exactly(journal: Journal) -> None:
    result = await replay(journal, full=True)
    assert result.mismatch is None, result.mismatch.describe()
    assert result.checked_to == result.last_seq > 0


async def order_id(harness: Harness, where: str) -> str:
    assert harness.journal
    rows = await harness.journal.fetch(f"SELECT client_order_id FROM intents WHERE {where} ORDER BY rowid")
    assert rows, where
    return str(rows[0][0])


async def test_a_child_hedge_order_names_the_parents_confirmed_fill_the_confirmed_cancel_and_the_rule(
    harness: Harness,
) -> None:
    broker = await harness.open_broker()
    broker.core.set_depth(HEDGE, lots_per_level=2, levels=1)  # 2 of 5 lots fill, then the rest is cancelled
    engine = await harness.start()
    await engine.launch(group("G1", qty=375), TRADER)
    assert await engine.wait_settled(10)
    assert harness.journal
    child = await order_id(harness, "purpose='HEDGE' AND rule='hedge.child_for_remainder'")
    parent = await order_id(harness, "purpose='HEDGE' AND rule='launch.hedge_leg_first'")

    chain = await explain(harness.journal, child)
    assert chain.rule == "hedge.child_for_remainder"
    assert chain.facts["parent_confirmed_filled_qty"] == 150 and chain.facts["remainder_qty"] == 225
    assert chain.facts["child_depth"] == 1 and chain.input and chain.input["kind"] in ("events", "looked_up")
    (evidence,) = [c for c in chain.because if c.title.startswith(f"parent order {parent}")]
    assert "150 of 375 confirmed by fills" in evidence.title and "cancel was confirmed" in evidence.title
    fills = [c for c in evidence.because if c.title.startswith("fill ")]
    assert sum(int(c.title.split(": ")[1].split(" @")[0]) for c in fills) == 150
    assert all(c.input and c.input["kind"] in ("events", "looked_up") for c in fills)
    (confirmed,) = [c for c in evidence.because if c.title.startswith("cancel confirmed by the broker")]
    assert "-> CANCELLED" in confirmed.title and confirmed.seq is not None
    # (a MARKET remainder the venue cancels itself: nobody asked; when the engine asks, it is named first)
    asked = [c for c in evidence.because if c.title.startswith("cancel asked")]
    assert all((c.seq or 0) <= confirmed.seq for c in asked)
    launch = [c for c in walk(chain) if c.rule == "command.launch"]
    assert launch and "launched by tina (trader)" in launch[0].title
    text = render(chain)
    assert "rule   hedge.child_for_remainder" in text and "local, broker" in text
    await replays_exactly(harness.journal)


async def test_a_market_stop_fallback_names_the_trigger_two_seconds_of_broker_time_and_the_confirmed_cancel(
    harness: Harness,
) -> None:
    clocks = Clocks(harness)
    await triggered_partly(harness, clocks)
    clocks.advance(2001)
    await until(harness, "SELECT COUNT(*) FROM intents WHERE purpose='FALLBACK'", [(1,)])
    engine = harness.engine
    assert engine and await engine.wait_settled(10) and harness.journal
    fallback = await order_id(harness, "purpose='FALLBACK'")
    stop = await order_id(harness, "purpose='STOP'")

    chain = await explain(harness.journal, fallback)
    assert chain.rule == "stop.market_after_confirmed_cancel"
    f = chain.facts
    assert f["stop"] == stop and f["cancel_confirmed"] is True and f["remainder_qty"] == 75
    assert f["stop_timeout_ms"] == 2000 and f["broker_ms_since_trigger"] >= 2000
    assert f["triggered_at_broker_ms"] == clocks.exchange_ms - 2001
    (evidence,) = [c for c in chain.because if c.title.startswith(f"stop-loss {stop}")]
    titles = [c.title for c in evidence.because]
    assert any(t.startswith("triggered at the exchange") for t in titles), titles
    asked = next(c for c in evidence.because if c.title.startswith("cancel asked"))
    assert asked.rule == "stop.cancel_after_timeout"
    confirmed = next(c for c in evidence.because if c.title.startswith("cancel confirmed by the broker"))
    assert confirmed.seq is not None and asked.seq is not None and asked.seq < confirmed.seq <= (chain.seq or 0)
    placed = next(c for c in walk(evidence) if c.rule == "stop.placed_once_hedged")
    assert placed.facts["trigger_paise"] == 25000
    await replays_exactly(harness.journal)


async def test_an_approved_retry_names_the_orphan_the_operators_approval_and_who_gave_it(harness: Harness) -> None:
    orphan = await _orphan_one(harness)
    engine = await harness.start()
    retry = await commands.approve_retry(engine, orphan, OPERATOR)
    assert await engine.wait_settled(10) and harness.journal

    chain = await explain(harness.journal, retry.client_order_id)
    assert chain.rule == "retry.approved_orphan"
    assert chain.facts["orphan"] == orphan and chain.facts["approved_by"] == "omar"
    assert chain.facts["approved_role"] == "operator"
    (evidence,) = [c for c in chain.because if c.title.startswith(f"orphaned intent {orphan}")]
    assert "approved for a retry by omar (operator)" in evidence.title
    orphaned = next(c for c in evidence.because if c.title.startswith("orphaned"))
    assert orphaned.rule == "recovery.orphaned_not_found" and orphaned.input
    approval = next(c for c in evidence.because if c.title.startswith("approval"))
    assert "approve by omar (operator)" in approval.title and approval.input
    assert approval.input["command"]["by"] == "omar" and approval.input["kind"] == "command"
    # the approval precedes the retry, and the orphaning precedes the approval
    assert (orphaned.seq or 0) < (approval.seq or 0) <= (chain.seq or 0)
    doc: Any = json.loads(json.dumps(chain.to_json()))
    assert doc["rule"] == "retry.approved_orphan"
    await replays_exactly(harness.journal)
