"""exchange_sync's configuration section."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from corec.core.config import FrozenModel
from corec.core.plugin import PluginConfig
from corec.messages.exchange_data import Market


class ReplaySettings(FrozenModel):
    """Replay of a recording (see :mod:`corec.exchanges.replay`).

    Fields:
        path: the CSV; default the bundled ``btc-perp_1m_2022-01.csv``. Relative
            paths are relative to the working directory.
        format: ``auto`` (by header), ``ohlcv`` or ``trades``.
        exchange, market, symbol: the instrument the recording is of.
        bar_s: bar length (OHLCV) in seconds.
        volume_unit: an OHLCV volume's unit (the bundled recording's is USD: ``quote``).
        speed: ``max`` (as fast as the pipeline goes) or N × real time (e.g. 60).
        stop_at_end: stop the node when the recording ends.
        resume: continue after the last row replayed (saved with every batch and at
            stop), so a second run publishes and stores nothing twice; with
            ``node.fresh_start`` the cursor is deleted with the database.
    """

    path: Path | None = None
    format: Literal["auto", "ohlcv", "trades"] = "auto"
    exchange: str = Field(default="ftx", min_length=1)
    market: Market = "futures"
    symbol: str = Field(default="BTC/USD:USD", min_length=1)
    bar_s: int = Field(default=60, gt=0)
    volume_unit: Literal["quote", "base"] = "quote"
    speed: Literal["max"] | float = "max"
    stop_at_end: bool = True
    resume: bool = True

    @field_validator("speed", mode="before")
    @classmethod
    def _positive_speed(cls, value: Any) -> Any:
        if value == "max":
            return value
        try:
            factor = float(value)
        except (TypeError, ValueError):
            factor = 0.0
        if not factor > 0:
            raise ValueError("must be 'max' or a positive real-time multiplier such as 60")
        return factor

    @field_validator("path")
    @classmethod
    def _recording_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"no recording at {path} (relative paths start in {Path.cwd()})")
        return path

    def speed_factor(self) -> float | None:
        """The real-time multiplier, or ``None`` for ``max``."""
        return None if self.speed == "max" else float(self.speed)


class VenueSettings(FrozenModel):
    """One exchange and market to poll.

    Fields:
        exchange: CCXT id (``binance``, ``binanceusdm``, ``okx`` …).
        market: ``spot`` or ``futures``.
        symbols: CCXT unified symbols (``BTC/USDT``, ``BTC/USDT:USDT``).
        api_url: replaces the scheme and host of the exchange's API URLs (testnets,
            proxies, recorded-response servers).
        sandbox: use the exchange's testnet (CCXT ``set_sandbox_mode``).
    """

    exchange: str = Field(min_length=1)
    market: Market
    symbols: tuple[str, ...] = Field(min_length=1)
    api_url: str | None = None
    sandbox: bool = False


def _default_venues() -> tuple[VenueSettings, ...]:
    pairs = [
        ("binance", "spot", ("BTC/USDT", "ETH/USDT")),
        ("binanceusdm", "futures", ("BTC/USDT:USDT", "ETH/USDT:USDT")),
        ("kucoin", "spot", ("BTC/USDT", "ETH/USDT")),
        ("kucoinfutures", "futures", ("BTC/USDT:USDT", "ETH/USDT:USDT")),
        ("bybit", "spot", ("BTC/USDT", "ETH/USDT")),
        ("bybit", "futures", ("BTC/USDT:USDT", "ETH/USDT:USDT")),
        ("okx", "spot", ("BTC/USDT", "ETH/USDT")),
        ("okx", "futures", ("BTC/USDT:USDT", "ETH/USDT:USDT")),
        ("kraken", "spot", ("BTC/USD", "ETH/USD")),
        ("krakenfutures", "futures", ("BTC/USD:USD", "ETH/USD:USD")),
    ]
    return tuple(VenueSettings(exchange=e, market=m, symbols=s) for e, m, s in pairs)  # type: ignore[arg-type]


class CcxtSettings(FrozenModel):
    """Polling public tickers through CCXT.

    Fields:
        venues: exchanges and markets to poll (default: the five, spot and futures).
        interval_s: each venue is polled every ``interval_s``; venues are staggered
            evenly across the interval.
        timeout_s: per HTTP request.
        retry_attempts: attempts per poll for temporary errors (backoff with jitter).
        breaker_failures, breaker_reset_s: a venue's breaker opens after this many
            failed polls in a row, and probes again after ``breaker_reset_s``.
    """

    venues: tuple[VenueSettings, ...] = Field(default_factory=_default_venues, min_length=1)
    interval_s: float = Field(default=300.0, gt=0)
    timeout_s: float = Field(default=10.0, gt=0)
    retry_attempts: int = Field(default=3, ge=1)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_reset_s: float = Field(default=900.0, gt=0)


class ExchangeSyncConfig(PluginConfig):
    """exchange_sync settings.

    Fields:
        source: ``replay`` (a recording) or ``ccxt`` (live public tickers).
        replay, ccxt: settings of each source.
        store_tickers: store every ticker in the ``tickers`` table.
        flush_rows: tickers buffered before one batched insert.
    """

    source: Literal["replay", "ccxt"] = "replay"
    replay: ReplaySettings = ReplaySettings()
    ccxt: CcxtSettings = CcxtSettings()
    store_tickers: bool = True
    flush_rows: int = Field(default=5000, gt=0)
