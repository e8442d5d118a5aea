"""Broker-time estimation. No wall clock: the anchor is the exchange's own timestamp and the
time since then is measured with a local *monotonic* clock.

Guarantees: ``now_ms`` never goes backward, whatever the exchange timestamps or the local wall
clock do; a deadline is "broker-acknowledged timestamp + timeout".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BrokerClock:
    anchor_exchange_ms: int | None = None
    anchor_local_ns: int = 0
    _last_ms: int = 0

    def observe(self, ts_exchange_ms: int, local_ns: int) -> None:
        """Re-anchor on an exchange timestamp, unless it would move broker time backward."""
        if self.anchor_exchange_ms is None or ts_exchange_ms >= self.now_ms(local_ns):
            self.anchor_exchange_ms = ts_exchange_ms
            self.anchor_local_ns = local_ns

    def now_ms(self, local_ns: int) -> int:
        if self.anchor_exchange_ms is None:
            return self._last_ms
        estimate = self.anchor_exchange_ms + (local_ns - self.anchor_local_ns) // 1_000_000
        self._last_ms = max(self._last_ms, estimate)
        return self._last_ms

    @property
    def anchored(self) -> bool:
        return self.anchor_exchange_ms is not None

    def offset_ms(self, local_wall_ms: int, local_ns: int) -> int:
        """Broker time minus local wall time, for display only (never for a decision)."""
        return self.now_ms(local_ns) - local_wall_ms


def deadline_passed(ack_ts_exchange_ms: int, timeout_ms: int, broker_now_ms: int) -> bool:
    return broker_now_ms >= ack_ts_exchange_ms + timeout_ms
