"""Drive ``step`` by hand, synchronously: no event loop, no database, no sleep. A ``Desk`` holds one
engine state, a local and a broker clock that move only when told, and plays the venue's part
(acks, fills, status reports, cancels) with plain inputs."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, TypeVar

from engine.catalog import load_catalog, load_margin_model
from engine.core.commands import Actor, Command
from engine.core.effects import Cancel, Commit, Effect, JournalWrites, Notify, Place, Query, Reply
from engine.core.events import BrokerEvent, CancelAck, FillReport, OrderSnapshot, OrderUpdate, PlaceAck
from engine.core.groups import GroupSpec, parse_group
from engine.core.inputs import BrokerEvents, BrokerTime, CancelAnswered, Given, Input, LookedUp, Placed, Tick
from engine.core.model import OrderStatus, Role
from engine.core.notices import EngineEvent
from engine.core.state import EngineConfig, EngineState
from engine.core.step import step

TRADER = Actor("tina", Role.TRADER)
RISK = Actor("rita", Role.RISK)
OPERATOR = Actor("omar", Role.OPERATOR)
HEDGE_SYMBOL, RISK_SYMBOL = "NIFTY26DEC24200CE", "NIFTY26DEC24000CE"

E = TypeVar("E")


def of(effects: list[Effect], kind: type[E]) -> list[E]:
    return [e for e in effects if isinstance(e, kind)]


def spread(group_id: str = "G1", qty: int = 150, hedge_qty: int | None = None, **extra: Any) -> GroupSpec:
    return parse_group(
        {
            "group_id": group_id,
            "legs": [
                {"role": "HEDGE", "symbol": HEDGE_SYMBOL, "side": "BUY", "qty": hedge_qty or qty},
                {"role": "RISK", "symbol": RISK_SYMBOL, "side": "SELL", "qty": qty},
            ],
            **extra,
        },
        load_catalog(),
    )


class Desk:
    def __init__(self, config: EngineConfig | None = None, available_paise: int = 10**12) -> None:
        ids = itertools.count(1)
        margin = dataclasses.replace(load_margin_model(), available_paise=available_paise)
        self.state = EngineState(load_catalog(), config or EngineConfig(), margin, lambda: f"C{next(ids):08d}")
        self.state.resumed = True
        self.now_ns = 1_000_000_000
        self.broker_ms = 1_700_000_000_000
        self.history: list[tuple[Input, list[Effect]]] = []
        self._commands = itertools.count(1)
        self._trades = itertools.count(1)
        self.cum: dict[str, int] = {}  # what the venue has filled, per client id
        self.journaled_keys: set[str] = set()  # what the interpreter would read from the journal
        self.step(BrokerTime(self.now_ns, self.broker_ms))

    # --- time ----------------------------------------------------------------------------------

    def advance(self, ms: int) -> None:
        self.now_ns += ms * 1_000_000
        self.broker_ms += ms

    # --- inputs --------------------------------------------------------------------------------

    def step(self, inp: Input) -> list[Effect]:
        """Step ``inp`` as the interpreter would: events carry the dedupe keys already journaled."""
        if isinstance(inp, BrokerEvents) and not inp.known_keys:
            inp = BrokerEvents(inp.now_ns, inp.events, frozenset(self.journaled_keys))
        elif isinstance(inp, LookedUp) and not inp.known_keys:
            inp = LookedUp(
                inp.now_ns,
                inp.client_order_id,
                inp.reason,
                inp.snapshot,
                inp.command_id,
                inp.error,
                frozenset(self.journaled_keys),
            )
        effects = step(self.state, inp)
        for commit in of(effects, Commit):
            self.journaled_keys.update(key for key, _, _ in commit.writes.processed)
        self.history.append((inp, effects))
        return effects

    def give(self, command: Command) -> list[Effect]:
        held = frozenset(Role)  # the pure core is given who holds what; the interpreter reads it
        return self.step(Given(self.now_ns, next(self._commands), command, held=held))

    def tick(self) -> list[Effect]:
        return self.step(Tick(self.now_ns))

    def ack(self, place: Place) -> list[Effect]:
        coid = place.request.client_order_id
        return self.step(Placed(self.now_ns, coid, PlaceAck(self.bid(coid), coid, self.broker_ms)))

    def ack_all(self, effects: list[Effect]) -> list[Effect]:
        out: list[Effect] = []
        for place in of(effects, Place):
            out += self.ack(place)
        return out

    def events(self, *events: BrokerEvent) -> list[Effect]:
        return self.step(BrokerEvents(self.now_ns, events))

    def fill(self, coid: str, qty: int) -> list[Effect]:
        """The venue fills ``qty`` more of ``coid``: a fill report, then the cumulative status."""
        row = self.state.book.intents[coid]
        cum = self.cum.get(coid, 0) + qty
        self.cum[coid] = cum
        status = OrderStatus.FILLED if cum == row.qty else OrderStatus.PARTIALLY_FILLED
        trade = FillReport(
            f"T{next(self._trades)}", self.bid(coid), coid, row.symbol, row.side, qty, 10_000, self.broker_ms
        )
        return self.events(trade, OrderUpdate(self.bid(coid), coid, status, cum, self.broker_ms))

    def report(self, coid: str, status: OrderStatus) -> list[Effect]:
        return self.events(OrderUpdate(self.bid(coid), coid, status, self.cum.get(coid, 0), self.broker_ms))

    def cancel_answered(self, cancel: Cancel) -> list[Effect]:
        ack = CancelAck(cancel.broker_order_id, OrderStatus.PENDING_CANCEL, self.broker_ms)
        return self.step(CancelAnswered(self.now_ns, cancel.client_order_id, ack))

    def looked_up(self, query: Query, status: OrderStatus | None) -> list[Effect]:
        snapshot = None
        if status is not None:
            row = self.state.book.intents[query.client_order_id]
            snapshot = OrderSnapshot(
                self.bid(row.client_order_id),
                row.client_order_id,
                row.symbol,
                row.side,
                row.qty,
                row.order_type,
                status,
                self.cum.get(row.client_order_id, 0),
                self.broker_ms,
            )
        return self.step(LookedUp(self.now_ns, query.client_order_id, query.reason, snapshot, query.command_id))

    # --- reading -------------------------------------------------------------------------------

    @staticmethod
    def bid(coid: str) -> str:
        return "B" + coid

    def group(self, group_id: str = "G1") -> Any:
        return self.state.book.groups[group_id]

    def rows(self, group_id: str = "G1") -> list[Any]:
        return self.state.book.of_group(group_id)

    def nodes(self, group_id: str = "G1") -> list[Any]:
        return self.state.book.nodes_of(group_id)


def writes(effects: list[Effect]) -> JournalWrites:
    out = JournalWrites()
    for commit in of(effects, Commit):
        out.merge(commit.writes)
    return out


def notices(effects: list[Effect], kind: type[EngineEvent]) -> list[Any]:
    return [n.event for n in of(effects, Notify) if isinstance(n.event, kind)]


def reply(effects: list[Effect]) -> Reply:
    (answer,) = of(effects, Reply)
    return answer
