"""The launch dialog shows what a spread costs at the current prices: each leg's bid and ask, the
expected net credit, max loss and breakeven (equal to an independent computation from the leg
prices), the margin required against the margin free now, the stop order, and a payoff chart."""

from __future__ import annotations

from tests.ui.conftest import DeskHarness, until
from tests.ui.test_launch_and_tree import HEDGE, RISK_SYMBOL, _fill_launch
from ui.format import rupees


async def test_the_dialog_prices_the_spread_like_an_independent_computation(desk: DeskHarness) -> None:
    window = await desk.open()
    dialog = _fill_launch(window, "C1", lots=2)
    dialog.stop_trigger.setText("250.00")
    await until(lambda: dialog.figures is not None and dialog.figures.net_credit_paise is not None, what="quotes")
    broker = await desk.open_broker()
    hedge_bid, hedge_ask = broker.core.best_bid_ask(HEDGE)
    risk_bid, risk_ask = broker.core.best_bid_ask(RISK_SYMBOL)
    dialog.update_costs()
    f = dialog.figures
    assert f is not None
    qty, width = 150, 20_000  # 2 lots of 75; strikes 24,000 and 24,200 (paise per unit)
    credit = (risk_bid - hedge_ask) * qty
    assert f.net_credit_paise == credit
    assert f.max_loss_paise == width * qty - credit and f.max_profit_paise == credit
    assert f.breakevens_paise == (2_400_000 + credit // qty,)
    text = dialog.costs.text()
    assert f"bid {rupees(hedge_bid)} · ask {rupees(hedge_ask)}" in text
    assert f"bid {rupees(risk_bid)} · ask {rupees(risk_ask)}" in text
    assert f"Expected net credit {rupees(credit)}" in text and f"max loss {rupees(width * qty - credit)}" in text
    assert "Worst-case margin ₹" in dialog.preview.text() and "free now" in dialog.preview.text()
    assert "Stop-loss: SL-LIMIT BUY 150 NIFTY26DEC24000CE, trigger ₹250.00, limit ₹251.25" in text
    xs, ys = dialog.payoff_curve.getData()
    assert len(xs) == 121 and max(ys) == credit / 100 and min(ys) == -(width * qty - credit) / 100
    assert dialog.spot_line.value() == 24_050  # today's spot: the margin model's reference
    dialog.reject()
