"""Seeded fault model of the paper exchange: what the event stream and the acks suffer on the way.

Everything here is pure: time is passed in (local monotonic ms), randomness comes from
``random.Random`` instances seeded from the profile, so a run with the same seed and the same
offers is reproducible and a test can drive it without sleeping.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

# A buffered event waits at most this long for company before it is released anyway, so the
# reorder window never stalls a quiet stream (the last fill of the day must still arrive).
REORDER_HOLD_MS = 25


@dataclass(frozen=True, slots=True)
class FaultProfile:
    """What goes wrong between the paper exchange and the engine. Rates are probabilities in [0, 1]."""

    seed: int = 0
    duplicate_rate: float = 0.0  # chance an event is delivered twice (each copy delayed independently)
    reorder_window: int = 0  # events buffered and released in random order; 0 or 1 disables
    max_delay_ms: int = 0  # each delivered copy is delayed uniformly in [0, max_delay_ms]
    lost_ack_rate: float = 0.0  # chance place() raises Ambiguous although the order was accepted
    reject_rate: float = 0.0  # chance place() is refused outright (recorded as REJECTED)
    clock_skew_ms: int = 0  # exchange clock minus local wall clock
    # The knobs below act on the exchange server (``trading-desk exchange``) only: the in-process
    # PaperBroker has no connection to drop and keeps a steady (skewed) clock.
    disconnect_every_ms: int = 0  # mean connection lifetime before the server drops it; 0: never
    replay_overlap: int = 0  # on resubscribe, also replay this many events the client already saw
    clock_jump_ms: int = 0  # the exchange clock steps forward by this much ...
    clock_jump_every_ms: int = 0  # ... once every this many ms of server uptime; 0: never

    def __post_init__(self) -> None:
        for name in ("duplicate_rate", "lost_ack_rate", "reject_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {rate}")
        if self.reorder_window < 0 or self.max_delay_ms < 0:
            raise ValueError("reorder_window and max_delay_ms must be >= 0")
        for name in ("disconnect_every_ms", "replay_overlap", "clock_jump_ms", "clock_jump_every_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def exchange_offset_ms(self, uptime_ms: int) -> int:
        """Exchange clock minus local wall clock after ``uptime_ms`` of server uptime: the skew plus
        every clock jump so far. Jumps only go forward, like a slow clock stepped by NTP."""
        jumps = uptime_ms // self.clock_jump_every_ms if self.clock_jump_every_ms and self.clock_jump_ms else 0
        return self.clock_skew_ms + jumps * self.clock_jump_ms

    def connection_lifetime_ms(self, rng: random.Random) -> int | None:
        """How long the server keeps the next connection before dropping it (None: for ever):
        uniform in [0.5, 1.5] x ``disconnect_every_ms``, from the caller's seeded stream."""
        if not self.disconnect_every_ms:
            return None
        return max(1, round(self.disconnect_every_ms * rng.uniform(0.5, 1.5)))


PRESETS: dict[str, FaultProfile] = {
    # A perfect venue: every event once, in order, at once.
    "none": FaultProfile(),
    # A realistic bad day. No random rejects, so every order group can still complete.
    "flaky": FaultProfile(
        duplicate_rate=0.1,
        reorder_window=3,
        max_delay_ms=20,
        lost_ack_rate=0.05,
        clock_skew_ms=150,
        disconnect_every_ms=15_000,
        replay_overlap=1,
    ),
    # Stress for the chaos harness: more of everything, a few outright rejects, a clock well behind
    # that jumps forward; over the server, connections drop every few seconds and replays overlap.
    "chaos": FaultProfile(
        duplicate_rate=0.2,
        reorder_window=5,
        max_delay_ms=50,
        lost_ack_rate=0.1,
        reject_rate=0.02,
        clock_skew_ms=-1500,
        disconnect_every_ms=3000,
        replay_overlap=3,
        clock_jump_ms=1000,
        clock_jump_every_ms=10_000,
    ),
}


def profile_from_name(name: str, seed: int) -> FaultProfile:
    """The preset ``name`` with its seed set. Raises ValueError listing the allowed names."""
    preset = PRESETS.get(name)
    if preset is None:
        raise ValueError(f"unknown fault profile {name!r}; choose one of: {', '.join(PRESETS)}")
    return dataclasses.replace(preset, seed=seed)


@dataclass
class FaultStats:
    duplicates_injected: int = 0
    reordered: int = 0
    delayed: int = 0
    acks_lost: int = 0
    rejects_injected: int = 0


@dataclass(slots=True)
class _Buffered(Generic[T]):
    event: T
    offered_ms: int
    delay_ms: int


class DeliveryPlan(Generic[T]):
    """Decides which copies of each event are delivered and when.

    ``offer()`` takes an event at local time ``now_ms``; ``due(now_ms)`` returns the copies whose
    time has come, in delivery order. Callers must pass non-decreasing times.
    """

    def __init__(self, profile: FaultProfile) -> None:
        self.profile = profile
        self.stats = FaultStats()
        # Separate streams, so how many events a run publishes does not shift the ack decisions.
        self._delivery_rng = random.Random(f"delivery:{profile.seed}")
        self._decision_rng = random.Random(f"decision:{profile.seed}")
        self._buffer: list[_Buffered[T]] = []
        self._heap: list[tuple[int, int, T]] = []  # (due_ms, seq, event): seq keeps ties in FIFO order
        self._seq = 0

    def offer(self, event: T, now_ms: int) -> None:
        copies = 1
        if self.profile.duplicate_rate and self._delivery_rng.random() < self.profile.duplicate_rate:
            copies = 2
            self.stats.duplicates_injected += 1
        max_delay = self.profile.max_delay_ms
        for _ in range(copies):
            delay = self._delivery_rng.randint(0, max_delay) if max_delay else 0
            if delay:
                self.stats.delayed += 1
            if self.profile.reorder_window > 1:
                self._buffer.append(_Buffered(event, now_ms, delay))
                if len(self._buffer) >= self.profile.reorder_window:
                    self._release(self._delivery_rng.randrange(len(self._buffer)), now_ms)
            else:
                self._schedule(event, now_ms + delay)

    def due(self, now_ms: int) -> list[T]:
        while self._buffer and self._buffer[0].offered_ms + REORDER_HOLD_MS <= now_ms:
            self._release(0, now_ms)
        out: list[T] = []
        while self._heap and self._heap[0][0] <= now_ms:
            out.append(heapq.heappop(self._heap)[2])
        return out

    def next_due_ms(self) -> int | None:
        """When ``due()`` next has something to return (or to release from the buffer); None: idle."""
        candidates = [self._heap[0][0]] if self._heap else []
        if self._buffer:
            candidates.append(self._buffer[0].offered_ms + REORDER_HOLD_MS)
        return min(candidates) if candidates else None

    def pending(self) -> int:
        return len(self._buffer) + len(self._heap)

    def drop_in_flight(self) -> int:
        """A connection dropped: every copy not yet delivered is lost. Returns how many."""
        lost = self.pending()
        self._buffer.clear()
        self._heap.clear()
        return lost

    def should_reject(self) -> bool:
        hit = bool(self.profile.reject_rate) and self._decision_rng.random() < self.profile.reject_rate
        self.stats.rejects_injected += hit
        return hit

    def should_lose_ack(self) -> bool:
        hit = bool(self.profile.lost_ack_rate) and self._decision_rng.random() < self.profile.lost_ack_rate
        self.stats.acks_lost += hit
        return hit

    def _release(self, index: int, now_ms: int) -> None:
        if index:
            self.stats.reordered += 1  # an older event stays behind this one
        item = self._buffer.pop(index)
        self._schedule(item.event, max(now_ms, item.offered_ms + item.delay_ms))

    def _schedule(self, event: T, due_ms: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due_ms, self._seq, event))
