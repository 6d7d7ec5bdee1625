"""market_monitor plugin: ``exchange_data`` in, ``market_data`` and alerts out.

Per ticker a :class:`MarketSnapshot`; after each ticker batch, a
:class:`ConsolidatedQuote` per symbol the batch touched (see :mod:`.consolidate`).
Alerts: ``price_move``, ``stale_data`` (per venue), ``cross_exchange_gap`` (per
symbol) and ``futures_basis`` (per exchange and contract), each once per excursion.

Query endpoint ``market_monitor.consolidated`` (:mod:`.queries`): every symbol's
consolidated quote now, from the same latest tickers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from corec.core import channels
from corec.core.clock import NS_PER_S, format_ts
from corec.core.errors import InvalidEvent
from corec.core.events import Event, Payload
from corec.core.plugin import Plugin, PluginContext, PluginHealth
from corec.core.queries import Refused
from corec.messages.exchange_data import OpenOrdersSnapshot, Ticker, TickerBatch, pair_of
from corec.messages.market_data import (
    CONSOLIDATED,
    ConsolidatedQuote,
    ConsolidatedQuotes,
    ConsolidatedRequest,
    MarketSnapshot,
)
from corec.plugins.market_monitor.analytics import (
    InstrumentState,
    PriceWindow,
    mid_price,
    reference_price,
    spread_bps,
)
from corec.plugins.market_monitor.config import MarketMonitorConfig
from corec.plugins.market_monitor.consolidate import GroupKey, consolidate_symbol
from corec.plugins.market_monitor.queries import consolidated_quotes

Key = tuple[str, str, str]
BasisKey = tuple[str, str]
"""(exchange, futures symbol)."""


class MarketMonitorPlugin(Plugin):
    """Per instrument: mid, spread (bps), window return; per symbol across venues: best
    bid/ask, gap, basis. Alerts on big moves, silence, wide gaps and wide basis."""

    name = "market_monitor"
    Config = MarketMonitorConfig
    consumes = (channels.EXCHANGE_DATA,)
    publishes = (channels.MARKET_DATA, channels.ALERTS)
    serves = (CONSOLIDATED,)
    status_key = None

    config: MarketMonitorConfig

    async def start(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.instruments: dict[Key, InstrumentState] = {}
        self.window_ns = self.config.window_s * NS_PER_S
        self.stale_ns = int(self.config.stale_after_s * NS_PER_S)
        self.snapshots = 0
        self.move_alerts = 0
        self.stale_alerts = 0
        # consolidated view: latest ticker per venue, grouped by (market, symbol)
        self.latest: dict[GroupKey, dict[str, Ticker]] = {}
        self.futures_of: dict[str, set[str]] = {}  # pair -> futures symbols seen
        self.consolidated = 0
        self.interval_ns = int(self.config.consolidate_interval_s * NS_PER_S)
        self._published_at: dict[GroupKey, int] = {}
        self._held: dict[GroupKey, None] = {}  # changed, but published less than interval ago
        self.gaps: dict[GroupKey, Decimal] = {}  # symbols with two fresh venues or more
        self.basis: dict[BasisKey, Decimal] = {}
        self._gap_alerted: set[GroupKey] = set()
        self._basis_alerted: set[BasisKey] = set()
        self.gap_alerts = 0
        self.basis_alerts = 0
        self._next_stale_scan_ns = 0
        ctx.subscribe(channels.EXCHANGE_DATA, self._on_exchange_data)
        ctx.serve(CONSOLIDATED, self._consolidated)
        if not ctx.clock.is_simulated:
            ctx.spawn("stale_check", self._check_stale_periodically)
            if self.interval_ns:
                ctx.spawn("consolidate", self._publish_held_periodically)

    async def _consolidated(self, request: Payload) -> ConsolidatedQuotes | Refused:
        if not isinstance(request, ConsolidatedRequest):
            return Refused(
                code="invalid",
                message=f"{CONSOLIDATED} takes ConsolidatedRequest, got {type(request).__name__}",
            )
        return consolidated_quotes(
            self.latest, request, now_ns=self.ctx.clock.now_ns(), stale_after_ns=self.stale_ns
        )

    async def _on_exchange_data(self, event: Event) -> None:
        batch = event.payload
        if not isinstance(batch, TickerBatch):
            if isinstance(batch, OpenOrdersSnapshot):
                return  # account data, not prices
            raise InvalidEvent(
                f"exchange_data carries {type(batch).__name__}, expected TickerBatch"
            )
        touched: dict[GroupKey, None] = {}
        for ticker in batch.tickers:
            if await self._on_ticker(ticker):
                touched[(ticker.market, ticker.symbol)] = None
        if self.ctx.clock.is_simulated:
            now = self.ctx.clock.now_ns()
            if now >= self._next_stale_scan_ns:
                self._next_stale_scan_ns = now + int(self.config.stale_check_interval_s * NS_PER_S)
                touched.update(await self._scan_stale(now))
        if touched:
            await self._publish_consolidated(touched)

    async def _on_ticker(self, ticker: Ticker) -> bool:
        """Publish the ticker's snapshot; True when it is the venue's new latest."""
        key = (ticker.exchange, ticker.market, ticker.symbol)
        state = self.instruments.get(key)
        if state is None:
            state = self.instruments[key] = InstrumentState(window=PriceWindow(self.window_ns))
        ts = ticker.exchange_ts_ns
        if ts < state.last_ts_ns:
            return False  # an older ticker than one already seen: nothing new to say
        received, last_received = ticker.received_ts_ns, state.last_received_ns
        gap_ns = received - last_received if last_received else 0
        if gap_ns > self.stale_ns and not state.stale:
            await self._stale_alert(
                key,
                gap_ns,
                f"no data between {format_ts(last_received)} and {format_ts(received)}",
            )
        state.stale = False
        state.last_ts_ns = ts
        state.last_received_ns = max(received, last_received)
        price = reference_price(ticker)
        mid = mid_price(ticker.bid, ticker.ask, ticker.last)
        if price is None or mid is None:
            return False
        group = (ticker.market, ticker.symbol)
        venues = self.latest.get(group)
        if venues is None:
            venues = self.latest[group] = {}
            if ticker.market == "futures":
                self.futures_of.setdefault(pair_of(ticker.symbol), set()).add(ticker.symbol)
        venues[ticker.exchange] = ticker
        return_pct = state.window.add(ts, price)
        await self.ctx.publish(
            channels.MARKET_DATA,
            MarketSnapshot(
                exchange=ticker.exchange,
                market=ticker.market,
                symbol=ticker.symbol,
                bid=ticker.bid,
                ask=ticker.ask,
                last=ticker.last,
                mid=mid,
                price=price,
                spread_bps=spread_bps(ticker.bid, ticker.ask),
                return_pct=return_pct,
                window_s=self.config.window_s,
                exchange_ts_ns=ts,
            ),
        )
        self.snapshots += 1
        if return_pct is not None:
            await self._check_move(key, state, price, return_pct)
        return True

    async def _publish_consolidated(self, touched: dict[GroupKey, None]) -> None:
        """Publish the consolidated quote of each touched symbol (and of the futures of a
        touched spot pair: their basis moved), then check gap and basis.

        With ``consolidate_interval_s``, a symbol published less than that ago is held
        back and published once the interval has passed (at the next batch, or by the
        periodic task on a live clock), so no venue's update is lost, only delayed.
        """
        for market, symbol in list(touched):
            if market == "spot":
                for futures in sorted(self.futures_of.get(symbol, ())):
                    touched[("futures", futures)] = None
        now = self.ctx.clock.now_ns()
        if self.interval_ns:
            touched = self._due(touched, now)
        for group in touched:
            market, symbol = group
            spot = self.latest.get(("spot", pair_of(symbol))) if market == "futures" else None
            quote = consolidate_symbol(
                self.latest[group].values(),
                spot=spot.values() if spot else (),
                now_ns=now,
                stale_after_ns=self.stale_ns,
            )
            if quote is None:
                continue
            await self.ctx.publish(channels.MARKET_DATA, quote)
            self.consolidated += 1
            if len(quote.venues) > 1:
                await self._check_gap(group, quote)
            if market == "futures" and (quote.basis or self.basis):
                await self._check_basis(quote)

    def _due(self, touched: dict[GroupKey, None], now: int) -> dict[GroupKey, None]:
        """The symbols to publish now: held ones whose interval has passed, and touched
        ones not published within the interval (the others are held)."""
        interval, published_at, held = self.interval_ns, self._published_at, self._held
        due: dict[GroupKey, None] = {}
        for group in list(held):
            if now - published_at[group] >= interval:
                del held[group]
                due[group] = None
        for group in touched:
            last = published_at.get(group)
            if last is None or now - last >= interval:
                held.pop(group, None)
                due[group] = None
            else:
                held[group] = None
        for group in due:
            published_at[group] = now
        return due

    async def _publish_held_periodically(self) -> None:
        while not await self.ctx.sleep(self.config.consolidate_interval_s):
            if self._held:
                await self._publish_consolidated({})

    async def _check_gap(self, group: GroupKey, quote: ConsolidatedQuote) -> None:
        if sum(not v.stale for v in quote.venues) < 2:
            self.gaps.pop(group, None)
            return  # nothing to compare: the alert state waits for two venues again
        gap = quote.gap_bps
        self.gaps[group] = gap
        threshold = self.config.gap_alert_bps
        if gap < threshold:
            self._gap_alerted.discard(group)
            return
        if group in self._gap_alerted:
            return
        self._gap_alerted.add(group)
        self.gap_alerts += 1
        message = (
            f"{quote.symbol} {quote.market}: {quote.high_mid_exchange} mid {quote.high_mid} is "
            f"{gap} bps above {quote.low_mid_exchange} mid {quote.low_mid} "
            f"(alert at {threshold} bps)"
        )
        if quote.spread_bps is not None and quote.spread_bps < 0:
            message += (
                f"; books crossed: bid {quote.best_bid} on {quote.best_bid_exchange} "
                f"above ask {quote.best_ask} on {quote.best_ask_exchange}"
            )
        await self.ctx.alert(
            "cross_exchange_gap",
            message,
            severity="high" if gap >= 2 * threshold else "medium",
            labels={
                "market": quote.market,
                "symbol": quote.symbol,
                "pair": quote.pair,
                "high_exchange": str(quote.high_mid_exchange),
                "low_exchange": str(quote.low_mid_exchange),
            },
        )

    async def _check_basis(self, quote: ConsolidatedQuote) -> None:
        quoted = set()
        for b in quote.basis:
            key = (b.exchange, b.futures_symbol)
            quoted.add(b.exchange)
            self.basis[key] = b.basis_bps
            threshold = self.config.basis_alert_bps
            size = abs(b.basis_bps)
            if size < threshold:
                self._basis_alerted.discard(key)
                continue
            if key in self._basis_alerted:
                continue
            self._basis_alerted.add(key)
            self.basis_alerts += 1
            await self.ctx.alert(
                "futures_basis",
                f"{b.futures_symbol} on {b.exchange}: futures mid {b.futures_mid} vs "
                f"{b.spot_symbol} spot mid {b.spot_mid}, basis {b.basis_bps:+} bps "
                f"(alert at ±{threshold} bps)",
                severity="high" if size >= 2 * threshold else "medium",
                labels={
                    "exchange": b.exchange,
                    "pair": b.spot_symbol,
                    "symbol": b.futures_symbol,
                    "direction": "contango" if b.basis_bps > 0 else "backwardation",
                },
            )
        for v in quote.venues:  # no basis now (a leg stale or missing): drop the old figure
            if v.exchange not in quoted:
                self.basis.pop((v.exchange, quote.symbol), None)

    async def _check_move(
        self, key: Key, state: InstrumentState, price: Decimal, return_pct: Decimal
    ) -> None:
        threshold = self.config.move_alert_pct
        if abs(return_pct) < threshold:
            state.move_alerted = False
            return
        if state.move_alerted:
            return
        state.move_alerted = True
        self.move_alerts += 1
        exchange, market, symbol = key
        ref_ts, ref_price = state.window.reference()
        direction = "up" if return_pct > 0 else "down"
        minutes = self.config.window_s // 60
        await self.ctx.alert(
            "price_move",
            f"{symbol} on {exchange} {market} moved {return_pct:+}% in {minutes} min "
            f"({ref_price} -> {price}, since {format_ts(ref_ts)})",
            severity="high" if abs(return_pct) >= 2 * threshold else "medium",
            labels={
                "exchange": exchange,
                "market": market,
                "symbol": symbol,
                "direction": direction,
            },
        )

    async def _stale_alert(self, key: Key, silent_ns: int, detail: str) -> None:
        self.stale_alerts += 1
        exchange, market, symbol = key
        await self.ctx.alert(
            "stale_data",
            f"{symbol} on {exchange} {market}: no ticker for {silent_ns // NS_PER_S} s ({detail})",
            severity="medium",
            labels={"exchange": exchange, "market": market, "symbol": symbol},
        )

    async def _scan_stale(self, now_ns: int) -> dict[GroupKey, None]:
        """Alert on venues silent for longer than ``stale_after_s``; return their symbols,
        whose consolidated quotes change (a stale venue leaves best bid/ask, gap, basis)."""
        went_stale: dict[GroupKey, None] = {}
        for key, state in self.instruments.items():
            silent = now_ns - state.last_received_ns
            if not state.stale and silent > self.stale_ns:
                state.stale = True
                await self._stale_alert(
                    key, silent, f"last update at {format_ts(state.last_received_ns)}"
                )
                _, market, symbol = key
                if (market, symbol) in self.latest:
                    went_stale[(market, symbol)] = None
        return went_stale

    async def _check_stale_periodically(self) -> None:
        while not await self.ctx.sleep(self.config.stale_check_interval_s):
            went_stale = await self._scan_stale(self.ctx.clock.now_ns())
            if went_stale:
                await self._publish_consolidated(went_stale)

    def health(self) -> PluginHealth:
        stale = [f"{e}:{m}:{s}" for (e, m, s), st in self.instruments.items() if st.stale]
        details: dict[str, Any] = {
            "instruments": len(self.instruments),
            "snapshots_published": self.snapshots,
            "move_alerts": self.move_alerts,
            "stale_alerts": self.stale_alerts,
            "stale": stale,
            "pairs": len({pair_of(symbol) for _, symbol in self.latest}),
            "consolidated_published": self.consolidated,
            "consolidated_held": len(self._held),
            "gap_alerts": self.gap_alerts,
            "basis_alerts": self.basis_alerts,
            "gaps_bps": {f"{m}:{s}": str(gap) for (m, s), gap in self.gaps.items()},
            "basis_bps": {f"{e}:{s}": str(bps) for (e, s), bps in self.basis.items()},
        }
        return PluginHealth(status="degraded" if stale else "ok", details=details)
