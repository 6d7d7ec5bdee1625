"""market_monitor plugin: ``exchange_data`` in, ``market_data`` and alerts out."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from corec.core import channels
from corec.core.clock import NS_PER_S, format_ts
from corec.core.errors import InvalidEvent
from corec.core.events import Event
from corec.core.plugin import Plugin, PluginContext, PluginHealth
from corec.messages.exchange_data import Ticker, TickerBatch
from corec.messages.market_data import MarketSnapshot
from corec.plugins.market_monitor.analytics import (
    InstrumentState,
    PriceWindow,
    mid_price,
    reference_price,
    spread_bps,
)
from corec.plugins.market_monitor.config import MarketMonitorConfig

Key = tuple[str, str, str]


class MarketMonitorPlugin(Plugin):
    """Per instrument: mid, spread (bps), window return; alerts on big moves and silence."""

    name = "market_monitor"
    Config = MarketMonitorConfig
    consumes = (channels.EXCHANGE_DATA,)
    publishes = (channels.MARKET_DATA, channels.ALERTS)
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
        self._next_stale_scan_ns = 0
        ctx.subscribe(channels.EXCHANGE_DATA, self._on_exchange_data)
        if not ctx.clock.is_simulated:
            ctx.spawn("stale_check", self._check_stale_periodically)

    async def _on_exchange_data(self, event: Event) -> None:
        batch = event.payload
        if not isinstance(batch, TickerBatch):
            raise InvalidEvent(
                f"exchange_data carries {type(batch).__name__}, expected TickerBatch"
            )
        for ticker in batch.tickers:
            await self._on_ticker(ticker)
        if self.ctx.clock.is_simulated:
            now = self.ctx.clock.now_ns()
            if now >= self._next_stale_scan_ns:
                self._next_stale_scan_ns = now + int(self.config.stale_check_interval_s * NS_PER_S)
                await self._scan_stale(now)

    async def _on_ticker(self, ticker: Ticker) -> None:
        key = (ticker.exchange, ticker.market, ticker.symbol)
        state = self.instruments.get(key)
        if state is None:
            state = self.instruments[key] = InstrumentState(window=PriceWindow(self.window_ns))
        ts = ticker.exchange_ts_ns
        if ts < state.last_ts_ns:
            return  # an older ticker than one already seen: nothing new to say
        gap_ns = ts - state.last_ts_ns if state.last_ts_ns else 0
        if gap_ns > self.stale_ns and not state.stale:
            await self._stale_alert(
                key, gap_ns, f"no data between {format_ts(state.last_ts_ns)} and {format_ts(ts)}"
            )
        state.stale = False
        state.last_ts_ns = ts
        price = reference_price(ticker)
        mid = mid_price(ticker.bid, ticker.ask, ticker.last)
        if price is None or mid is None:
            return
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

    async def _scan_stale(self, now_ns: int) -> None:
        for key, state in self.instruments.items():
            silent = now_ns - state.last_ts_ns
            if not state.stale and silent > self.stale_ns:
                state.stale = True
                await self._stale_alert(key, silent, f"last at {format_ts(state.last_ts_ns)}")

    async def _check_stale_periodically(self) -> None:
        while not await self.ctx.sleep(self.config.stale_check_interval_s):
            await self._scan_stale(self.ctx.clock.now_ns())

    def health(self) -> PluginHealth:
        stale = [f"{e}:{m}:{s}" for (e, m, s), st in self.instruments.items() if st.stale]
        details: dict[str, Any] = {
            "instruments": len(self.instruments),
            "snapshots_published": self.snapshots,
            "move_alerts": self.move_alerts,
            "stale_alerts": self.stale_alerts,
            "stale": stale,
        }
        return PluginHealth(status="degraded" if stale else "ok", details=details)
