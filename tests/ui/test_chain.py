"""The option chain: quotes that move, the at-the-money strike highlighted, and a click on a bid
or an ask opens the launch dialog with that spread filled in."""

from __future__ import annotations

from collections.abc import Callable

from engine.catalog import load_market_model
from tests.ui.conftest import DeskHarness, until
from ui.dialogs.launch import LaunchDialog
from ui.format import rupees
from ui.panels.chain import ATM_COLOUR


async def test_the_chain_shows_moving_quotes_and_a_click_fills_the_launch_dialog(desk: DeskHarness) -> None:
    window = await desk.open()
    chain = window.chain
    chain.underlying.setCurrentText("NIFTY")
    assert chain.expiry.currentText() == "26DEC"
    strikes = [r.strike for r in chain.model.rows()]
    assert strikes == sorted(strikes) and {23800, 24000, 24200} <= set(strikes)

    def quoted() -> bool:
        return all(r.ce_quote and r.pe_quote for r in chain.model.rows() if r.ce and r.pe)

    await until(quoted, what="every strike quoted")
    broker = await desk.open_broker()
    row = chain.model.row(24000)
    assert row is not None and row.ce_quote is not None
    assert (row.ce_quote.bid_paise, row.ce_quote.ask_paise) == broker.core.best_bid_ask("NIFTY26DEC24000CE")
    before = {r.strike: (r.ce_quote, r.pe_quote) for r in chain.model.rows()}
    for _ in range(5):
        await broker.step()  # the market moves

    def moved() -> bool:
        chain.refresh()
        return any((r.ce_quote, r.pe_quote) != before[r.strike] for r in chain.model.rows())

    await until(moved, what="quotes that move")
    row = chain.model.row(24000)
    assert row is not None and row.ce_quote is not None
    assert (row.ce_quote.bid_paise, row.ce_quote.ask_paise) == broker.core.best_bid_ask("NIFTY26DEC24000CE")
    # ATM: the strike nearest the spot (24,050: the margin model's reference)
    (atm,) = [r for r in chain.model.rows() if r.atm]
    assert atm.strike in (24000, 24100)
    strike_col = [c.title for c in chain.model.columns].index("Strike")
    r = chain.model.rows().index(atm)
    assert chain.model.data(chain.model.index(r, strike_col), 8).color().name() == ATM_COLOUR  # BackgroundRole

    # a CE bid sells that call, covered by the next call up: a bear call spread 24000/24100
    r24000 = chain.model.rows().index(chain.model.row(24000))
    chain.view.clicked.emit(chain.model.index(r24000, 0))
    dialog = next(d for d in reversed(window.dialogs) if isinstance(d, LaunchDialog))
    assert dialog.isVisible() and dialog.template.currentText() == "bear call spread"
    assert (dialog.risk_strike.currentText(), dialog.hedge_strike.currentText()) == ("24000", "24100")
    assert dialog.spec is not None and dialog.send.isEnabled()
    dialog.reject()
    # a PE ask buys that put, covering the next put up: a bull put spread 24000/23900
    r23900 = chain.model.rows().index(chain.model.row(23900))
    pe_ask = [c.title for c in chain.model.columns].index("PE ask")
    chain.view.clicked.emit(chain.model.index(r23900, pe_ask))
    dialog = next(d for d in reversed(window.dialogs) if isinstance(d, LaunchDialog) and d.isVisible())
    assert dialog.template.currentText() == "bull put spread"
    assert (dialog.risk_strike.currentText(), dialog.hedge_strike.currentText()) == ("24000", "23900")
    dialog.reject()


async def test_the_chain_follows_the_underlyings_spot(desk: DeskHarness) -> None:
    broker = await desk.open_broker(market=load_market_model())
    await broker.step()  # the exchange's first step: the day's open
    window = await desk.open()
    chain = window.chain
    chain.underlying.setCurrentText("NIFTY")

    def spot_shown(paise: int) -> Callable[[], bool]:
        def check() -> bool:
            chain.refresh()
            return chain.spot_label.text().startswith(f"spot {rupees(paise)}")

        return check

    spot = broker.core.spot("NIFTY")
    assert spot is not None
    await until(spot_shown(spot), what="the broker's spot, not the margin model's reference")

    def calls_quoted() -> bool:
        chain.refresh()
        return all(r.ce_quote is not None for r in chain.model.rows() if r.ce)

    await until(calls_quoted, what="every call quoted")
    opened = {r.strike: r.ce_quote for r in chain.model.rows()}
    # NIFTY rallies 250 points: every call rises, the ATM strike moves up with it
    broker.core.set_spot("NIFTY", spot + 25_000)
    await broker.step()
    moved = broker.core.spot("NIFTY")
    assert moved is not None and moved > spot + 20_000
    await until(spot_shown(moved), what="the new spot")
    (atm,) = [r for r in chain.model.rows() if r.atm]
    assert atm.strike == min((r.strike for r in chain.model.rows()), key=lambda k: abs(k * 100 - moved))
    change = [c.title for c in chain.model.columns].index("CE chg")
    for i, r in enumerate(chain.model.rows()):
        if r.ce is None:
            continue  # a strike listed with a put only
        before = opened[r.strike]
        assert r.ce_quote is not None and before is not None and r.ce_quote.last_paise is not None
        assert before.last_paise is not None and r.ce_quote.last_paise > before.last_paise, r.strike
        assert r.ce_quote.open_paise == before.last_paise  # the open is the first step's price
        shown = chain.model.data(chain.model.index(i, change))
        assert shown == rupees(r.ce_quote.last_paise - r.ce_quote.open_paise, signed=True)
