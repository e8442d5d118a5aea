"""Lockstep: the engine and the in-process paper exchange on one virtual clock, so a seeded run
replays exactly. Each tick of virtual time moves the exchange one step, delivers what the fault
scheduler releases by then, and lets the engine step it and look at its timers; every broker
call is awaited in order. Nothing reads the wall clock or the event loop's clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.broker.paper import PaperBroker
from engine.core.inputs import BrokerEvents
from engine.runtime.engine import Engine


@dataclass
class VirtualClock:
    """Local monotonic time that moves only when told to."""

    ns: int = 0

    def now_ns(self) -> int:
        return self.ns

    def now_ms(self) -> int:
        return self.ns // 1_000_000

    def advance_ms(self, ms: int) -> None:
        self.ns += ms * 1_000_000


async def run_until(
    engine: Engine, broker: PaperBroker, clock: VirtualClock, done: Callable[[], bool], *, tick_ms: int, limit_ms: int
) -> bool:
    """Advance virtual time tick by tick until ``done()``, or ``limit_ms`` of virtual time has
    passed (then ``done()`` decides)."""
    deadline = clock.now_ms() + limit_ms
    while clock.now_ms() < deadline:
        if done():
            return True
        clock.advance_ms(tick_ms)
        await broker.step()
        events = broker.deliver_due()
        if events:
            await engine.run_until_quiet([BrokerEvents(clock.now_ns(), tuple(events))])
        await engine.tick()
    return done()


async def run_until_settled(
    engine: Engine, broker: PaperBroker, clock: VirtualClock, *, tick_ms: int, limit_ms: int
) -> bool:
    """Until the engine is settled and nothing is still to be delivered (False: ``limit_ms`` of
    virtual time passed first)."""

    def settled() -> bool:
        return engine.settled() and not broker.pending_deliveries()

    return await run_until(engine, broker, clock, settled, tick_ms=tick_ms, limit_ms=limit_ms)
