"""Time series for the charts: fixed-size numpy ring buffers fed by a sampler (no Qt here)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


class RingBuffer:
    """The last ``capacity`` (t, value) samples; ``view()`` returns them oldest first."""

    def __init__(self, capacity: int) -> None:
        self._t = np.zeros(capacity, dtype=np.float64)
        self._v = np.zeros(capacity, dtype=np.float64)
        self._n = 0
        self._head = 0

    def append(self, t: float, value: float) -> None:
        self._t[self._head] = t
        self._v[self._head] = value
        self._head = (self._head + 1) % len(self._t)
        self._n = min(self._n + 1, len(self._t))

    def __len__(self) -> int:
        return self._n

    def view(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        if self._n < len(self._t):
            return self._t[: self._n].copy(), self._v[: self._n].copy()
        return np.roll(self._t, -self._head), np.roll(self._v, -self._head)


SERIES = ("exposure", "event_rate", "commit_p50", "commit_p99", "clock_offset", "desk_pnl", "group_pnl")


@dataclass
class MetricsSampler:
    """Turns cumulative engine counters into rates per sample interval."""

    capacity: int = 1200
    series: dict[str, RingBuffer] = field(default_factory=dict)
    _last_t: float | None = None
    _last_events: int = 0

    def __post_init__(self) -> None:
        self.series = {name: RingBuffer(self.capacity) for name in SERIES}

    def sample(
        self,
        t_s: float,
        events: int,
        uncovered_qty: int,
        offset_ms: int | None,
        commit_us: tuple[int, int] | None = None,
    ) -> None:
        if self._last_t is not None and t_s > self._last_t:
            d_events = events - self._last_events
            self.series["event_rate"].append(t_s, d_events / (t_s - self._last_t))
        self._last_t, self._last_events = t_s, events
        if commit_us is not None:
            self.series["commit_p50"].append(t_s, float(commit_us[0]))
            self.series["commit_p99"].append(t_s, float(commit_us[1]))
        self.series["exposure"].append(t_s, float(uncovered_qty))
        if offset_ms is not None:
            self.series["clock_offset"].append(t_s, float(offset_ms))

    def sample_trading(
        self, t_s: float, desk_pnl_paise: int | None, group_pnl_paise: int | None, uncovered_lots: dict[str, float]
    ) -> None:
        """Trading figures over clock time: the desk's P&L and the selected group's (rupees), and
        the short lots not covered by a hedge, per underlying."""
        if desk_pnl_paise is not None:
            self.series["desk_pnl"].append(t_s, desk_pnl_paise / 100)
        if group_pnl_paise is not None:
            self.series["group_pnl"].append(t_s, group_pnl_paise / 100)
        for underlying, lots in uncovered_lots.items():
            key = f"uncovered:{underlying}"
            if key not in self.series:
                self.series[key] = RingBuffer(self.capacity)
            self.series[key].append(t_s, lots)
