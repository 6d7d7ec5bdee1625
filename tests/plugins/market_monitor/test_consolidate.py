"""The consolidated view as pure figures: best bid/ask, mid, spread, gap, basis, staleness."""

from __future__ import annotations

from decimal import Decimal

import pytest

from corec.core import channels
from corec.core.clock import NS_PER_S, ReplayClock
from corec.core.codec import Codec
from corec.core.events import make_event
from corec.messages.exchange_data import Ticker
from corec.messages.market_data import BasisQuote, ConsolidatedQuote, VenueQuote
from corec.plugins.market_monitor.consolidate import (
    basis_bps,
    consolidate,
    consolidate_symbol,
    venue_quote,
)

D = Decimal
T0 = 1_700_000_040 * NS_PER_S
NOW = T0 + 2 * NS_PER_S + 123_456_789  # ages of tickers at T0: 2.123 s
STALE_NS = 600 * NS_PER_S


def tick(
    exchange: str,
    symbol: str,
    bid: str | None = None,
    ask: str | None = None,
    *,
    last: str | None = None,
    ts_ns: int = T0,
    seq: int = 0,
) -> Ticker:
    return Ticker(
        exchange=exchange,
        market="futures" if ":" in symbol else "spot",
        symbol=symbol,
        bid=None if bid is None else D(bid),
        ask=None if ask is None else D(ask),
        last=None if last is None else D(last),
        exchange_ts_ns=ts_ns,
        received_ts_ns=ts_ns,
        seq=seq,
    )


def one(*tickers: Ticker, now_ns: int = NOW) -> ConsolidatedQuote:
    [quote] = consolidate(tickers, now_ns=now_ns, stale_after_ns=STALE_NS)
    return quote


def test_two_exchanges_best_bid_ask_mid_spread_and_gap() -> None:
    quote = one(
        tick("kraken", "BTC/USDT", "100.8", "101.6"), tick("binance", "BTC/USDT", "100", "101")
    )

    assert quote.venues == (
        VenueQuote(
            exchange="binance",
            symbol="BTC/USDT",
            bid=D(100),
            ask=D(101),
            last=None,
            mid=D("100.5"),
            spread_bps=D("99.5025"),
            exchange_ts_ns=T0,
            age_s=D("2.123"),
            stale=False,
        ),
        VenueQuote(
            exchange="kraken",
            symbol="BTC/USDT",
            bid=D("100.8"),
            ask=D("101.6"),
            last=None,
            mid=D("101.2"),
            spread_bps=D("79.0514"),
            exchange_ts_ns=T0,
            age_s=D("2.123"),
            stale=False,
        ),
    )
    assert (quote.pair, quote.market, quote.symbol) == ("BTC/USDT", "spot", "BTC/USDT")
    assert (quote.best_bid, quote.best_bid_exchange) == (D("100.8"), "kraken")
    assert (quote.best_ask, quote.best_ask_exchange) == (D(101), "binance")
    assert quote.mid == D("100.9")
    assert str(quote.spread_bps) == "19.8216"  # 0.2 / 100.9 × 10 000
    assert (quote.high_mid, quote.high_mid_exchange) == (D("101.2"), "kraken")
    assert (quote.low_mid, quote.low_mid_exchange) == (D("100.5"), "binance")
    assert str(quote.gap_bps) == "69.6517"  # 0.7 / 100.5 × 10 000
    assert quote.basis == ()
    assert quote.as_of_ts_ns == NOW


def test_crossed_venues_give_a_negative_spread() -> None:
    quote = one(
        tick("binance", "BTC/USDT", "100", "100.2"),
        tick("okx", "BTC/USDT", "100.5", "100.7"),
        tick("kraken", "BTC/USDT", "99.9", "100.1"),
    )
    assert [v.exchange for v in quote.venues] == ["binance", "kraken", "okx"]
    assert (quote.best_bid, quote.best_bid_exchange) == (D("100.5"), "okx")
    assert (quote.best_ask, quote.best_ask_exchange) == (D("100.1"), "kraken")
    assert quote.mid == D("100.3")
    assert str(quote.spread_bps) == "-39.8804"  # (100.1 - 100.5) / 100.3 × 10 000
    assert (quote.high_mid_exchange, quote.low_mid_exchange) == ("okx", "kraken")
    assert str(quote.gap_bps) == "60.0000"  # (100.6 - 100.0) / 100.0 × 10 000


def test_stale_venue_is_listed_but_excluded() -> None:
    quote = one(
        tick("binance", "BTC/USDT", "100", "101"),
        tick("okx", "BTC/USDT", "100.5", "100.7"),
        tick("bybit", "BTC/USDT", "90", "200", ts_ns=T0 - 601 * NS_PER_S),  # 603.123 s old
        tick("kraken", "BTC/USDT", "100.8", "101.6", ts_ns=NOW - STALE_NS),  # exactly 600 s
    )
    by_exchange = {v.exchange: v for v in quote.venues}
    assert by_exchange["bybit"].stale is True
    assert by_exchange["bybit"].age_s == D("603.123")
    assert by_exchange["kraken"].stale is False  # at the limit is still fresh
    assert by_exchange["kraken"].age_s == D("600.000")
    # bybit's bid 90 / mid 145 would otherwise be the low mid and the high mid
    assert (quote.best_bid, quote.best_bid_exchange) == (D("100.8"), "kraken")
    assert (quote.best_ask, quote.best_ask_exchange) == (D("100.7"), "okx")
    assert str(quote.spread_bps) == "-9.9256"
    assert (quote.high_mid_exchange, quote.low_mid_exchange) == ("kraken", "binance")
    assert str(quote.gap_bps) == "69.6517"


def test_every_venue_stale_leaves_no_prices() -> None:
    quote = one(tick("binance", "BTC/USDT", "100", "101"), now_ns=T0 + STALE_NS + 1)
    assert [v.stale for v in quote.venues] == [True]
    assert quote.best_bid is None and quote.best_ask is None
    assert quote.mid is None and quote.spread_bps is None
    assert quote.high_mid is None and quote.low_mid_exchange is None
    assert quote.gap_bps == 0


def test_one_venue_has_zero_gap() -> None:
    quote = one(tick("binance", "ETH/USDT", "2024.61", "2024.62"))
    assert quote.mid == D("2024.615")
    assert str(quote.spread_bps) == "0.0494"
    assert (quote.high_mid_exchange, quote.low_mid_exchange) == ("binance", "binance")
    assert str(quote.gap_bps) == "0.0000"


def test_last_only_venues_use_last_as_mid_and_have_no_spread() -> None:
    quote = one(
        tick("ftx", "BTC/USD:USD", last="46377.0"), tick("binance", "BTC/USD:USD", last="46400")
    )
    assert [(v.exchange, v.mid, v.spread_bps) for v in quote.venues] == [
        ("binance", D(46400), None),
        ("ftx", D("46377.0"), None),
    ]
    assert quote.best_bid is None and quote.best_ask is None
    assert quote.mid == D("46388.5")  # (highest mid + lowest mid) / 2 without a book
    assert quote.spread_bps is None
    assert str(quote.gap_bps) == "4.9594"  # 23 / 46377 × 10 000

    [alone] = consolidate(
        [tick("ftx", "BTC/USD:USD", last="46377.0")], now_ns=NOW, stale_after_ns=STALE_NS
    )
    assert alone.mid == D("46377.0") and str(alone.mid) == "46377.0"


def test_book_and_last_only_venues_together() -> None:
    quote = one(tick("binance", "BTC/USDT", "100", "101"), tick("ftx", "BTC/USDT", last="102"))
    assert (quote.best_bid, quote.best_ask) == (D(100), D(101))  # from the book only
    assert quote.mid == D("100.5")
    assert (quote.high_mid, quote.high_mid_exchange) == (D(102), "ftx")
    assert str(quote.gap_bps) == "149.2537"  # 1.5 / 100.5 × 10 000


def test_basis_compares_the_two_markets_of_one_exchange_only() -> None:
    quotes = consolidate(
        [
            tick("binance", "BTC/USDT", "100", "101"),  # spot mid 100.5
            tick("kraken", "BTC/USDT", "99", "100"),  # kraken has no futures
            tick("binance", "BTC/USDT:USDT", "100.9", "101.1"),  # futures mid 101.0
            tick("okx", "BTC/USDT:USDT", "101.4", "101.6"),  # okx has no spot
        ],
        now_ns=NOW,
        stale_after_ns=STALE_NS,
    )
    spot, futures = quotes
    assert (spot.market, futures.market) == ("spot", "futures")
    assert spot.basis == ()
    assert futures.pair == "BTC/USDT"
    assert futures.basis == (
        BasisQuote(
            exchange="binance",
            spot_symbol="BTC/USDT",
            futures_symbol="BTC/USDT:USDT",
            spot_mid=D("100.5"),
            futures_mid=D("101.0"),
            basis_bps=D("49.7512"),  # 0.5 / 100.5 × 10 000
        ),
    )
    assert str(futures.basis[0].basis_bps) == "49.7512"


def test_basis_needs_both_legs_fresh_and_can_be_negative() -> None:
    old = T0 - 601 * NS_PER_S
    quotes = consolidate(
        [
            tick("binance", "BTC/USDT", "100", "101"),
            tick("binance", "BTC/USDT:USDT", "99.4", "99.6"),  # mid 99.5: backwardation
            tick("okx", "BTC/USDT", "100", "101", ts_ns=old),  # stale spot leg
            tick("okx", "BTC/USDT:USDT", "101", "102"),
            tick("bybit", "BTC/USDT", "100", "101"),
            tick("bybit", "BTC/USDT:USDT", "101", "102", ts_ns=old),  # stale futures leg
        ],
        now_ns=NOW,
        stale_after_ns=STALE_NS,
    )
    futures = quotes[1]
    assert [(b.exchange, str(b.basis_bps)) for b in futures.basis] == [("binance", "-99.5025")]
    assert basis_bps(D("100.5"), D("99.5")) == D("-99.5025")


def test_contracts_of_one_pair_are_separate_quotes_sorted() -> None:
    quotes = consolidate(
        [
            tick("okx", "BTC/USDT:USDT-261225", "104", "105"),
            tick("okx", "BTC/USDT:USDT", "101", "102"),
            tick("okx", "BTC/USDT", "100", "101"),
            tick("okx", "ETH/USDT", "2000", "2001"),
            tick("okx", "BTC/USD", last="100"),
        ],
        now_ns=NOW,
        stale_after_ns=STALE_NS,
    )
    assert [(q.pair, q.market, q.symbol) for q in quotes] == [
        ("BTC/USD", "spot", "BTC/USD"),
        ("BTC/USDT", "spot", "BTC/USDT"),
        ("BTC/USDT", "futures", "BTC/USDT:USDT"),
        ("BTC/USDT", "futures", "BTC/USDT:USDT-261225"),
        ("ETH/USDT", "spot", "ETH/USDT"),
    ]
    dated = quotes[3]
    assert dated.gap_bps == 0  # never mixed with the perpetual
    assert [str(b.basis_bps) for b in dated.basis] == ["398.0100"]  # 4 / 100.5 × 10 000


def test_newest_ticker_of_a_venue_counts() -> None:
    quote = one(
        tick("binance", "BTC/USDT", "90", "91", ts_ns=T0 - NS_PER_S),
        tick("binance", "BTC/USDT", "100", "101", ts_ns=T0, seq=1),
        tick("binance", "BTC/USDT", "95", "96", ts_ns=T0, seq=0),
    )
    [venue] = quote.venues
    assert (venue.bid, venue.ask, venue.exchange_ts_ns) == (D(100), D(101), T0)


def test_ticker_without_mid_is_left_out() -> None:
    assert (
        venue_quote(tick("binance", "BTC/USDT", "100"), now_ns=NOW, stale_after_ns=STALE_NS) is None
    )
    assert (
        consolidate([tick("binance", "BTC/USDT", "100")], now_ns=NOW, stale_after_ns=STALE_NS) == []
    )


def test_age_is_rounded_to_the_millisecond_and_may_be_negative() -> None:
    def age(now_ns: int) -> VenueQuote:
        quote = venue_quote(tick("a", "X/Y", last="1"), now_ns=now_ns, stale_after_ns=NS_PER_S)
        assert quote is not None
        return quote

    assert age(T0 + 1_499_999).age_s == D("0.001")
    assert age(T0 + 1_500_000).age_s == D("0.002")  # half up
    ahead = age(T0 - 2_000_000)  # the exchange's clock runs ahead of ours
    assert ahead.age_s == D("-0.002") and not ahead.stale


def test_consolidate_symbol_refuses_mixed_input() -> None:
    with pytest.raises(ValueError, match="cannot consolidate"):
        consolidate_symbol(
            [tick("binance", "BTC/USDT", "1", "2"), tick("okx", "ETH/USDT", "1", "2")],
            now_ns=NOW,
            stale_after_ns=STALE_NS,
        )
    with pytest.raises(ValueError, match="binance given twice"):
        consolidate_symbol(
            [tick("binance", "BTC/USDT", "1", "2"), tick("binance", "BTC/USDT", "1", "3")],
            now_ns=NOW,
            stale_after_ns=STALE_NS,
        )
    with pytest.raises(ValueError, match="not the spot pair"):
        consolidate_symbol(
            [tick("binance", "BTC/USDT:USDT", "1", "2")],
            spot=[tick("binance", "ETH/USDT", "1", "2")],
            now_ns=NOW,
            stale_after_ns=STALE_NS,
        )
    assert consolidate_symbol([], now_ns=NOW, stale_after_ns=STALE_NS) is None


def test_payload_invariants() -> None:
    quote = one(tick("binance", "BTC/USDT", "100", "101"))
    fields = {f: getattr(quote, f) for f in quote.__struct_fields__}
    with pytest.raises(ValueError, match="best_bid and best_bid_exchange"):
        ConsolidatedQuote(**{**fields, "best_bid_exchange": None})
    with pytest.raises(ValueError, match="gap_bps must be >= 0"):
        ConsolidatedQuote(**{**fields, "gap_bps": D(-1)})
    with pytest.raises(ValueError, match="only quoted on futures"):
        ConsolidatedQuote(
            **{
                **fields,
                "basis": (
                    BasisQuote(
                        exchange="binance",
                        spot_symbol="BTC/USDT",
                        futures_symbol="BTC/USDT:USDT",
                        spot_mid=D(1),
                        futures_mid=D(1),
                        basis_bps=D(0),
                    ),
                ),
            }
        )
    with pytest.raises(ValueError, match="mid must be a positive number"):
        VenueQuote(
            **{
                **{f: getattr(quote.venues[0], f) for f in VenueQuote.__struct_fields__},
                "mid": D(0),
            }
        )


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_consolidated_quote_round_trips_exactly(fmt: str) -> None:
    quotes = consolidate(
        [
            tick("binance", "BTC/USDT", "46377.12345678", "46377.5"),
            tick("binance", "BTC/USDT:USDT", "46390.1", "46390.3"),
            tick("okx", "BTC/USDT:USDT", "46391", "46392", ts_ns=T0 - 601 * NS_PER_S),
        ],
        now_ns=NOW,
        stale_after_ns=STALE_NS,
    )
    codec = Codec(fmt)  # type: ignore[arg-type]
    for quote in quotes:
        event = make_event(
            channels.MARKET_DATA, quote, source="market_monitor@x", clock=ReplayClock(NOW)
        )
        assert codec.decode(codec.encode(event)) == event
