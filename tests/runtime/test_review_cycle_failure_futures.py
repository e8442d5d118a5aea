"""Review finding 9: when one input of a cycle makes step() raise, every caller waiting on that
cycle hears why (none of it was committed), instead of waiting for ever."""

from __future__ import annotations

import asyncio

import pytest

import engine.runtime.engine as engine_mod
from engine.core.inputs import BrokerEvents, Tick
from tests.runtime.harness import Harness


async def test_ingest_is_answered_when_a_later_input_of_its_cycle_fails(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await harness.start()
    real_step = engine_mod.step

    def step(state, inp, seq=None):  # type: ignore[no-untyped-def]
        if isinstance(inp, Tick):
            raise RuntimeError("a bug in a timer decision")  # stands for any StepError
        return real_step(state, inp, seq)

    monkeypatch.setattr(engine_mod, "step", step)
    # the ingest batch and the due tick share one cycle; the tick's step raises
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    # what Engine.ingest() queues, then a tick, in the same loop iteration
    engine._inbox.put_nowait((BrokerEvents(engine.now_ns(), ()), future))
    engine._inbox.put_nowait((Tick(0), None))
    done, _ = await asyncio.wait({future}, timeout=5)
    assert done, "the ingest caller is never answered after the engine failed in the same cycle"
    assert isinstance(future.exception(), RuntimeError) and engine.failure is not None
