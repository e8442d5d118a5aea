"""Broker-time estimation. No wall clock: the anchor is the exchange's own timestamp and the
time since then is measured with a local *monotonic* clock.

Guarantees: ``now_ms`` never goes backward, whatever the exchange timestamps or the local wall
clock do (the anchor only ever moves forward, and the interpreter steps inputs at local times
that never go backward); reading it changes nothing, so a replay that skips a tick which only
read the time decides exactly as the run did; a deadline is "broker-acknowledged timestamp +
timeout", measured as elapsed broker time.

The exchange's clock may *step* (NTP, a restart, a hostile peer). A timestamp further than
``step_threshold_ms`` ahead of our estimate, or (on a fresh reply, which is stamped "now") as far
behind, is a step, not news: it is recorded in ``step_offset_ms`` and broker time keeps running
continuously, so a deadline neither fires early nor waits for ever. ``continuous()`` maps an
exchange timestamp onto that timeline. A stale event (a replay) that is merely late never counts
as a step backward.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BrokerClock:
    anchor_exchange_ms: int | None = None
    anchor_local_ns: int = 0
    step_threshold_ms: int = 1_000
    step_offset_ms: int = 0  # exchange clock minus our continuous broker time: the sum of its steps

    def observe(self, ts_exchange_ms: int, local_ns: int, *, fresh: bool = False) -> int:
        """Take an exchange timestamp. Returns the step it reveals (ms, either sign), or 0.
        ``fresh``: the timestamp of a reply to our request, stamped when the exchange answered."""
        mapped = ts_exchange_ms - self.step_offset_ms
        if self.anchor_exchange_ms is None:
            self.anchor_exchange_ms, self.anchor_local_ns = mapped, local_ns
            return 0
        estimate = self.now_ms(local_ns)
        drift = mapped - estimate
        if drift > self.step_threshold_ms or (fresh and -drift > self.step_threshold_ms):
            self.step_offset_ms += drift
            return drift
        if drift >= 0:
            self.anchor_exchange_ms, self.anchor_local_ns = mapped, local_ns
        return 0

    def continuous(self, ts_exchange_ms: int) -> int:
        """An exchange timestamp on our continuous broker-time line (steps taken out)."""
        return ts_exchange_ms - self.step_offset_ms

    def now_ms(self, local_ns: int) -> int:
        """Broker time at ``local_ns``; 0 before the first exchange timestamp. A pure read."""
        if self.anchor_exchange_ms is None:
            return 0
        return self.anchor_exchange_ms + (max(local_ns, self.anchor_local_ns) - self.anchor_local_ns) // 1_000_000

    @property
    def anchored(self) -> bool:
        return self.anchor_exchange_ms is not None

    def offset_ms(self, local_wall_ms: int, local_ns: int) -> int:
        """The exchange's clock minus local wall time, steps included, for display only (never for
        a decision): a step shows on the desk's broker-clock chart as a jump."""
        return self.now_ms(local_ns) + self.step_offset_ms - local_wall_ms


def deadline_passed(ack_ts_exchange_ms: int, timeout_ms: int, broker_now_ms: int) -> bool:
    return broker_now_ms >= ack_ts_exchange_ms + timeout_ms
