"""Fault profiles and the pure, seeded delivery scheduler."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.paper.faults import PRESETS, REORDER_HOLD_MS, DeliveryPlan, FaultProfile, profile_from_name


def drain(plan: DeliveryPlan[int], start_ms: int) -> list[int]:
    """Advance time millisecond by millisecond until nothing is pending."""
    out: list[int] = []
    now = start_ms
    while plan.pending():
        out += plan.due(now)
        now += 1
        assert now < start_ms + 10_000, "scheduler never released its events"
    return out


def test_presets() -> None:
    assert set(PRESETS) == {"none", "flaky", "chaos"}
    assert PRESETS["none"] == FaultProfile()
    flaky = PRESETS["flaky"]
    assert flaky.reject_rate == 0  # groups must be able to complete under flaky
    assert (flaky.duplicate_rate, flaky.reorder_window, flaky.max_delay_ms, flaky.lost_ack_rate) == (0.1, 3, 20, 0.05)
    chaos = PRESETS["chaos"]
    assert (chaos.duplicate_rate, chaos.reorder_window, chaos.lost_ack_rate) == (0.2, 5, 0.1)


def test_profile_from_name_sets_the_seed_and_names_the_choices() -> None:
    assert profile_from_name("flaky", 9) == dataclasses.replace(PRESETS["flaky"], seed=9)
    assert profile_from_name("flaky", 9).seed == 9
    with pytest.raises(ValueError, match="none, flaky, chaos"):
        profile_from_name("stormy", 1)


def test_rates_are_validated() -> None:
    with pytest.raises(ValueError, match="duplicate_rate"):
        FaultProfile(duplicate_rate=1.5)
    with pytest.raises(ValueError):
        FaultProfile(reorder_window=-1)


def test_no_faults_delivers_each_event_once_in_order_at_once() -> None:
    plan: DeliveryPlan[int] = DeliveryPlan(FaultProfile())
    for i in range(10):
        plan.offer(i, 100)
    assert plan.next_due_ms() == 100
    assert plan.due(100) == list(range(10))
    assert plan.next_due_ms() is None and plan.due(10_000) == []
    assert plan.stats.duplicates_injected == plan.stats.reordered == plan.stats.delayed == 0


def test_duplicate_rate_one_delivers_every_event_twice() -> None:
    plan: DeliveryPlan[int] = DeliveryPlan(FaultProfile(duplicate_rate=1.0))
    for i in range(5):
        plan.offer(i, 0)
    assert plan.due(0) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert plan.stats.duplicates_injected == 5


def test_delays_stay_within_max_delay() -> None:
    plan: DeliveryPlan[int] = DeliveryPlan(FaultProfile(seed=3, max_delay_ms=20))
    for i in range(50):
        plan.offer(i, 1000)
    assert plan.due(999) == []
    assert sorted(drain(plan, 1000)) == list(range(50))
    assert plan.due(1020) == []
    assert plan.stats.delayed > 0


def test_all_delayed_by_the_deadline() -> None:
    plan: DeliveryPlan[int] = DeliveryPlan(FaultProfile(seed=3, max_delay_ms=20))
    for i in range(50):
        plan.offer(i, 1000)
    assert sorted(plan.due(1020)) == list(range(50))


def test_reorder_window_shuffles_and_flushes_by_time() -> None:
    plan: DeliveryPlan[int] = DeliveryPlan(FaultProfile(seed=1, reorder_window=4))
    for i in range(200):
        plan.offer(i, 0)
    released = plan.due(0)
    assert len(released) == 200 - 3  # the window keeps three back, waiting for company
    assert released != sorted(released) and plan.stats.reordered > 0
    assert plan.next_due_ms() == REORDER_HOLD_MS
    rest = plan.due(REORDER_HOLD_MS)
    assert sorted(released + rest) == list(range(200))


def test_decisions_follow_the_rates_and_are_counted() -> None:
    always = DeliveryPlan[int](FaultProfile(lost_ack_rate=1.0, reject_rate=1.0))
    never = DeliveryPlan[int](FaultProfile())
    assert all(always.should_lose_ack() and always.should_reject() for _ in range(20))
    assert not any(never.should_lose_ack() or never.should_reject() for _ in range(20))
    assert (always.stats.acks_lost, always.stats.rejects_injected) == (20, 20)
    half = DeliveryPlan[int](FaultProfile(seed=2, lost_ack_rate=0.5))
    hits = sum(half.should_lose_ack() for _ in range(1000))
    assert 400 < hits < 600


def test_same_seed_same_schedule() -> None:
    def run(seed: int) -> list[tuple[int, list[int]]]:
        plan: DeliveryPlan[int] = DeliveryPlan(
            FaultProfile(seed=seed, duplicate_rate=0.3, reorder_window=3, max_delay_ms=15)
        )
        out = []
        for t in range(200):
            plan.offer(t, t)
            out.append((t, plan.due(t)))
        return out

    assert run(4) == run(4)
    assert run(4) != run(5)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    duplicate_rate=st.sampled_from([0.0, 0.3, 1.0]),
    reorder_window=st.integers(0, 6),
    max_delay_ms=st.integers(0, 40),
    gaps=st.lists(st.integers(0, 30), min_size=0, max_size=60),
    poll_every=st.integers(1, 20),
)
def test_every_offered_event_is_delivered_and_nothing_else(
    seed: int, duplicate_rate: float, reorder_window: int, max_delay_ms: int, gaps: list[int], poll_every: int
) -> None:
    profile = FaultProfile(
        seed=seed, duplicate_rate=duplicate_rate, reorder_window=reorder_window, max_delay_ms=max_delay_ms
    )
    plan: DeliveryPlan[int] = DeliveryPlan(profile)
    delivered: list[int] = []
    now = 0
    for event, gap in enumerate(gaps):
        now += gap
        plan.offer(event, now)
        if event % poll_every == 0:
            delivered += plan.due(now)
    # Nothing is held longer than the largest delay or the reorder hold, whichever is longer.
    delivered += plan.due(now + max(max_delay_ms, REORDER_HOLD_MS))
    assert plan.pending() == 0 and plan.next_due_ms() is None
    counts = Counter(delivered)
    assert set(counts) == set(range(len(gaps)))  # all offered, nothing invented
    assert all(1 <= n <= 2 for n in counts.values())
    assert sum(counts.values()) == len(gaps) + plan.stats.duplicates_injected
    if duplicate_rate == 0:
        assert all(n == 1 for n in counts.values())


def test_server_knobs_default_off_and_chaos_sets_them() -> None:
    import random

    assert FaultProfile().exchange_offset_ms(10**9) == 0
    assert FaultProfile().connection_lifetime_ms(random.Random(1)) is None
    chaos = PRESETS["chaos"]
    assert (chaos.disconnect_every_ms, chaos.replay_overlap, chaos.clock_jump_ms, chaos.clock_jump_every_ms) == (
        3000,
        3,
        1000,
        10_000,
    )
    assert [chaos.exchange_offset_ms(t) for t in (0, 9_999, 10_000, 25_000)] == [-1500, -1500, -500, 500]
    lifetimes = [chaos.connection_lifetime_ms(random.Random(7)) for _ in range(2)]
    assert lifetimes[0] == lifetimes[1], "seeded: the same stream gives the same lifetimes"
    rng = random.Random(3)
    assert all(1500 <= (chaos.connection_lifetime_ms(rng) or 0) <= 4500 for _ in range(100))
    with pytest.raises(ValueError, match="disconnect_every_ms"):
        FaultProfile(disconnect_every_ms=-1)
