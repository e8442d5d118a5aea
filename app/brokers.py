"""Broker URLs: ``paper:STATEFILE`` (in-process paper exchange) and ``ws://HOST:PORT`` (the paper
exchange server, ``trading-desk exchange``; options such as ``?request_timeout_ms=1500``)."""

from __future__ import annotations

import time
from pathlib import Path

from engine.broker.paper import PaperBroker
from engine.broker.ws import BrokerUnavailable, WsBroker, parse_ws_url
from engine.catalog import load_market_model
from engine.core.instruments import Instrument
from engine.paper.faults import profile_from_name
from engine.runtime.lockstep import VirtualClock


class BrokerUrlError(ValueError):
    pass


def _paper_state(url: str) -> Path:
    state = Path(url.removeprefix("paper:"))
    if not state.name:
        raise BrokerUrlError(f"broker URL {url!r} needs a state file: paper:/path/to/exchange.db")
    if not state.parent.exists():
        raise BrokerUrlError(f"directory {state.parent} for the paper exchange state does not exist")
    return state


async def open_paper_lockstep(
    url: str, catalog: dict[str, Instrument], faults: str, seed: int, clock: VirtualClock
) -> PaperBroker:
    """The in-process exchange on a virtual clock with manual delivery (engine.runtime.lockstep).
    Its own clock starts at the wall clock's whole second (timestamps look real) and then moves
    only with the virtual one, so every decision replays."""
    state = _paper_state(url)
    profile = profile_from_name(faults, seed)
    start_ms = time.time_ns() // 1_000_000_000 * 1000 + profile.clock_skew_ms
    return await PaperBroker.open(
        state,
        catalog,
        profile,
        seed=seed,
        exchange_clock=lambda: start_ms + clock.now_ms(),
        auto_tick=False,
        local_clock_ms=clock.now_ms,
        manual_delivery=True,
        market=load_market_model(),
    )


async def open_broker(
    url: str, catalog: dict[str, Instrument], *, faults: str = "none", seed: int = 1, auto_tick: bool = True
) -> PaperBroker | WsBroker:
    if url.startswith("paper:"):
        state = _paper_state(url)
        return await PaperBroker.open(
            state, catalog, profile_from_name(faults, seed), seed=seed, auto_tick=auto_tick, market=load_market_model()
        )
    if url.startswith("ws://"):
        # Faults and the seed belong to the exchange server (trading-desk exchange --faults/--seed).
        try:
            bare, options = parse_ws_url(url)
        except ValueError as exc:
            raise BrokerUrlError(str(exc)) from exc
        try:
            return await WsBroker.open(bare, **options)
        except BrokerUnavailable as exc:
            raise BrokerUrlError(str(exc)) from exc
    raise BrokerUrlError(f"broker URL {url!r} is not paper:STATEFILE or ws://HOST:PORT")
