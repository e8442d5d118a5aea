"""The ports a desk uses: ``EngineView`` to read, ``Commander`` to give commands. ui/ uses nothing
else of the engine. The engine hosted in the desk's process implements both; a desk attached to
another process's journal implements them from the journal (the shared-desk design)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from engine.core.book import GroupRuntime, IntentRow, NodeRow
from engine.core.commands import Command
from engine.core.effects import JournalWrites
from engine.core.notices import EngineEvent
from engine.core.quotes import Quote
from engine.core.trading_state import TradingState


class EngineFailure(RuntimeError):
    """The engine stopped because of an error; the journal holds everything committed before it.
    Every later command is refused with this until the engine is restarted (crash-only)."""


class ConnectionState(StrEnum):
    IN_PROCESS = "IN_PROCESS"  # the paper exchange in this process: no connection to lose
    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    RECONNECTING = "RECONNECTING"
    CLOSED = "CLOSED"


class BookView(Protocol):
    """Read-only: the desk never changes what it is shown."""

    @property
    def groups(self) -> Mapping[str, GroupRuntime]: ...
    @property
    def intents(self) -> Mapping[str, IntentRow]: ...
    @property
    def nodes(self) -> Mapping[str, NodeRow]: ...
    def of_group(self, group_id: str) -> list[IntentRow]: ...


@dataclass
class Touched:
    """The book's rows that committed changes since a desk last read them (group ids, client
    order ids, node ids). Every change of a row the desk shows is journaled (intent before
    action), so the rows a commit wrote are exactly the rows that changed."""

    groups: set[str] = field(default_factory=set)
    intents: set[str] = field(default_factory=set)
    nodes: set[str] = field(default_factory=set)

    def add(self, writes: JournalWrites) -> None:
        self.groups.update(writes.groups_new, writes.groups)
        for rows in (writes.intents_new, writes.intents):
            self.intents.update(rows)
            self.groups.update(r.group_id for r in rows.values())  # a group's row sums its orders
        for nodes in (writes.nodes_new, writes.nodes):
            self.nodes.update(nodes)
            self.groups.update(n.group_id for n in nodes.values())


class EngineView(Protocol):
    def subscribe(self, listener: Callable[[EngineEvent], None]) -> None: ...
    def snapshot(self) -> BookView: ...
    def committed(self) -> bool:
        """True when the book holds nothing the journal does not (no step awaits its commit).
        A desk renders the book only then, so it never shows a state a rollback could undo."""
        ...

    @property
    def trading_state(self) -> TradingState: ...
    def clock_offset_ms(self) -> int | None: ...
    def event_count(self) -> int: ...
    def take_touched(self) -> Touched | None:
        """The rows committed changes touched since the last call (and forget them); None when
        unknown (the first call, or a view rebuilt from the journal): read every row."""
        ...

    def commit_latency_us(self) -> tuple[int, int] | None: ...
    def connection(self) -> ConnectionState: ...
    def broker_usable(self) -> bool:
        """False while the broker has failed every answer for too long (opening orders wait)."""
        ...

    def watch_quotes(self, symbols: Iterable[str]) -> None:
        """Stream quotes of these symbols too, for display (attached desks: journaled marks only)."""
        ...

    def quote(self, symbol: str) -> Quote | None:
        """The newest quote of ``symbol`` known to this desk's engine, or None."""
        ...

    @property
    def failure(self) -> BaseException | None: ...


class Commander(Protocol):
    async def execute(self, command: Command) -> Any:
        """Give a command; its answer once decided and committed. Raises RoleError or CommandError
        (refused, audited), or EngineFailure (the engine has stopped; restart it)."""
        ...
