"""The paper broker's fill prices and fees."""

from __future__ import annotations

from decimal import Decimal

from corec.exchanges.paper import PaperBroker
from corec.messages.market_data import MarketSnapshot

D = Decimal


def snapshot(bid: str, ask: str) -> MarketSnapshot:
    mid = (D(bid) + D(ask)) / 2
    return MarketSnapshot(
        exchange="binance",
        market="spot",
        symbol="DOGE/USDT",
        bid=D(bid),
        ask=D(ask),
        last=None,
        mid=mid,
        price=mid,
        spread_bps=None,
        return_pct=None,
        window_s=3600,
        exchange_ts_ns=0,
    )


def test_a_slipped_fill_is_rounded_against_us_to_8_decimals() -> None:
    broker = PaperBroker(slippage_bps=D(5))
    quote = snapshot("0.12345678", "0.12345679")
    # buy: 0.12345679 × 1.0005 = 0.123518518395 -> up to 0.12351852
    assert broker.fill_price("buy", quote) == D("0.12351852")
    # sell: 0.12345678 × 0.9995 = 0.12339505161 -> down to 0.12339505
    assert broker.fill_price("sell", quote) == D("0.12339505")


def test_without_slippage_the_quote_is_the_fill() -> None:
    broker = PaperBroker()
    quote = snapshot("0.123456781", "0.123456789")
    assert broker.fill_price("buy", quote) == D("0.123456789")
    assert broker.fill_price("sell", quote) == D("0.123456781")
    # the fee is charged: 1000 × 0.123456789 × 0.0005 = 0.0617283945 -> 0.06172840
    assert broker.fee_usd(D(1000), D("0.123456789")) == D("0.06172840")
