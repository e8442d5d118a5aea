"""Review finding 7: an order the kill switch holds back at the moment of sending was never a
wave; the leg does not lose one, and the wave goes out after the resume."""

from __future__ import annotations

from engine.core.commands import Launch, SetTradingState
from engine.core.effects import Place
from engine.core.inputs import PlaceUnsent
from engine.core.model import GroupState
from engine.core.placing import send_refusal
from engine.core.state import EngineConfig
from engine.core.trading_state import TradingState
from tests.core.stepkit import RISK, TRADER, Desk, of, spread


def test_a_wave_held_back_by_halt_at_send_time_is_sent_after_resume() -> None:
    desk = Desk(EngineConfig(max_waves=1))
    (hedge,) = of(desk.give(Launch(spread("G1", 150), TRADER)), Place)
    desk.ack(hedge)
    effects = desk.fill(hedge.request.client_order_id, 150)
    (risk,) = of(effects, Place)  # decided while ACTIVE
    desk.give(SetTradingState(TradingState.HALTED, TRADER))  # lands before the interpreter sends it
    why = send_refusal(desk.state, risk)
    assert why
    desk.step(PlaceUnsent(desk.now_ns, risk.request.client_order_id, f"not sent: {why}"))
    effects = desk.give(SetTradingState(TradingState.ACTIVE, RISK))
    assert desk.group().state is not GroupState.FAILED, desk.group().reason
    assert [p.request.qty for p in of(effects, Place)] == [150], "the held risk wave is never sent"
