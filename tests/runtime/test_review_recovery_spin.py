"""Review finding 4: when the broker cannot answer a recovery lookup, start() neither spins nor
fails: after a few tries the order is left UNKNOWN for the timers (with backoff) and recovery ends."""

from __future__ import annotations

import pytest

from engine.core.model import IntentStatus, OrderStatus
from engine.core.recovery import RECOVERY_TRIES
from tests.runtime.harness import TRADER, Harness, SimulatedCrash, crash_at, group


class Spinning(BaseException):
    pass


async def test_start_does_not_spin_when_the_broker_cannot_answer(harness: Harness) -> None:
    engine = await harness.start(crash_hook=crash_at("after_intent_commit"))
    with pytest.raises(SimulatedCrash):
        await engine.launch(group("G1"), TRADER)
    await harness.crash()
    broker = harness.broker
    assert broker is not None
    calls = 0

    async def down(client_order_id: str):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls > 10_000:
            raise Spinning  # break the loop so the test ends
        raise ConnectionError("broker down")

    broker.find = down  # type: ignore[method-assign]
    try:
        engine = await harness.start()
    except Spinning:
        pytest.fail("Engine.start() asked the broker 10,000 times in a row without yielding and never returned")
    assert calls == RECOVERY_TRIES, f"recovery asked {calls} times, not {RECOVERY_TRIES}"
    (row,) = engine.book.intents.values()
    assert row.order_status is OrderStatus.UNKNOWN and row.status is IntentStatus.UNKNOWN
    assert engine.state.resumed and not engine.state.recovering, "recovery ended; timers now ask, with backoff"
    assert engine.failure is None
