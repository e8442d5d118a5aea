"""Writes gathered while a batch of events is decided, flushed with a handful of executemany calls
inside one transaction. aiosqlite costs ~100 µs per await, whatever the SQL, so one await per
table instead of one per row is what makes group commit pay."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from engine.core.events import FillReport
from engine.store.rows import IntentRow


@dataclass
class WriteBatch:
    processed: list[tuple[str, str | None, int]] = field(default_factory=list)
    fills: list[tuple[Any, ...]] = field(default_factory=list)
    transitions: list[tuple[Any, ...]] = field(default_factory=list)
    rejected: list[tuple[Any, ...]] = field(default_factory=list)
    intents: dict[str, IntentRow] = field(default_factory=dict)
    resolve_orphans: list[tuple[str, int]] = field(default_factory=list)
    duplicates: int = 0

    def fill(self, fill: FillReport, client_order_id: str, now_ns: int) -> None:
        self.fills.append(
            (
                fill.trade_id,
                client_order_id,
                fill.symbol,
                fill.side.value,
                fill.qty,
                fill.price_paise,
                fill.ts_exchange_ms,
                now_ns,
            )
        )

    def transition(
        self,
        entity: str,
        entity_id: str,
        from_state: str,
        to_state: str,
        filled_qty: int | None,
        cause: str,
        ts_exchange_ms: int | None,
        now_ns: int,
    ) -> None:
        self.transitions.append((entity, entity_id, from_state, to_state, filled_qty, cause, ts_exchange_ms, now_ns))

    def reject(
        self,
        client_order_id: str | None,
        event_key: str | None,
        event: dict[str, Any],
        reason: str,
        ts_exchange_ms: int | None,
        now_ns: int,
    ) -> None:
        self.rejected.append(
            (client_order_id, event_key, json.dumps(event, sort_keys=True), reason, ts_exchange_ms, now_ns)
        )
