"""exchange_sync's configuration section."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from corec.core.config import FrozenModel
from corec.core.plugin import PluginConfig
from corec.messages.exchange_data import Market

_NAME = re.compile(r"[a-z][a-z0-9_]*")


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


class MarketSettings(FrozenModel):
    """One market (spot or futures) of an exchange.

    Fields:
        id: the CCXT class that serves this market (``binance`` spot, ``binanceusdm``
            USDT-margined futures; ``bybit`` and ``okx`` serve both).
        symbols: CCXT unified symbols (``BTC/USDT`` spot, ``BTC/USDT:USDT`` perpetual).
        api_url: replaces the scheme and host of this market's API URLs (testnets,
            proxies, recorded-response servers); default the exchange's ``api_url``.
    """

    id: str = Field(min_length=1)
    symbols: tuple[str, ...] = Field(min_length=1)
    api_url: str | None = None

    @field_validator("symbols")
    @classmethod
    def _distinct(cls, symbols: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"symbols are listed twice: {sorted(symbols)}")
        return symbols


class ExchangeSettings(FrozenModel):
    """One exchange: its spot and/or futures market, overrides and credentials.

    Fields:
        spot, futures: the markets to follow (at least one).
        api_url: replaces the scheme and host of every API URL of both markets.
        sandbox: use the exchange's testnet (CCXT ``set_sandbox_mode``).
        credentials_env: prefix of the environment variables holding the API
            credentials: ``<prefix>_API_KEY``, ``<prefix>_API_SECRET``,
            ``<prefix>_API_PASSPHRASE`` (KuCoin, OKX), each also readable from a file
            named by ``<VAR>_FILE``; default ``COREC_<NAME>`` (``COREC_BINANCE_API_KEY``).
            Open orders are polled only for exchanges with credentials.
    """

    spot: MarketSettings | None = None
    futures: MarketSettings | None = None
    api_url: str | None = None
    sandbox: bool = False
    credentials_env: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*$")

    @model_validator(mode="after")
    def _has_a_market(self) -> ExchangeSettings:
        if self.spot is None and self.futures is None:
            raise ValueError("give at least one of spot and futures")
        return self

    def markets(self) -> list[tuple[Market, MarketSettings]]:
        """``[(market, settings), ...]`` for the markets configured, spot first."""
        pairs: list[tuple[Market, MarketSettings | None]] = [
            ("spot", self.spot),
            ("futures", self.futures),
        ]
        return [(market, settings) for market, settings in pairs if settings is not None]


def _default_exchanges() -> dict[str, ExchangeSettings]:
    def market(ccxt_id: str, *symbols: str) -> MarketSettings:
        return MarketSettings(id=ccxt_id, symbols=symbols)

    usdt_spot = ("BTC/USDT", "ETH/USDT")
    usdt_perps = ("BTC/USDT:USDT", "ETH/USDT:USDT")
    return {
        "binance": ExchangeSettings(
            spot=market("binance", *usdt_spot), futures=market("binanceusdm", *usdt_perps)
        ),
        "kucoin": ExchangeSettings(
            spot=market("kucoin", *usdt_spot), futures=market("kucoinfutures", *usdt_perps)
        ),
        "bybit": ExchangeSettings(
            spot=market("bybit", *usdt_spot), futures=market("bybit", *usdt_perps)
        ),
        "okx": ExchangeSettings(spot=market("okx", *usdt_spot), futures=market("okx", *usdt_perps)),
        "kraken": ExchangeSettings(
            spot=market("kraken", "BTC/USD", "ETH/USD"),
            futures=market("krakenfutures", "BTC/USD:USD", "ETH/USD:USD"),
        ),
    }


class CcxtSettings(FrozenModel):
    """Live market data and open orders through CCXT.

    Fields:
        exchanges: CoreC's name of each exchange (used in events, tables and alerts)
            → its markets (default: the five, spot and USDT-margined perpetuals).
        mode: ``poll`` (REST ``fetch_tickers``) or ``stream`` (ccxt.pro
            ``watch_tickers`` where the exchange has it; polling where it has not, and
            while a stream keeps failing).
        interval_s: each exchange is polled every ``interval_s``.
        stagger_s: delay between two exchanges' polls; default ``interval_s`` ÷ the
            number of exchanges (five exchanges, 300 s: one every 60 s).
        orders_interval_s: open orders are polled this often, for every exchange
            with credentials.
        timeout_s: per HTTP request.
        retry_attempts: attempts per poll for temporary errors (exponential backoff
            with jitter, honouring ``Retry-After``).
        breaker_failures, breaker_reset_s: an exchange's breaker opens after this many
            failed polls in a row, and lets one probe through after ``breaker_reset_s``.
        markets_cache_ttl_s: markets (``load_markets``) are cached on disk under
            ``<data_dir>/exchange_sync/markets/`` for this long.
        skip_unknown_symbols: a symbol an exchange does not list is skipped with a
            warning instead of failing the start.
        stream_failures_before_poll: stream errors in a row after which the exchange
            is polled instead, until ``breaker_reset_s`` has passed.
    """

    exchanges: dict[str, ExchangeSettings] = Field(default_factory=_default_exchanges)
    mode: Literal["poll", "stream"] = "poll"
    interval_s: float = Field(default=300.0, gt=0)
    stagger_s: float | None = Field(default=None, ge=0)
    orders_interval_s: float = Field(default=60.0, gt=0)
    timeout_s: float = Field(default=10.0, gt=0)
    retry_attempts: int = Field(default=3, ge=1)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_reset_s: float = Field(default=900.0, gt=0)
    markets_cache_ttl_s: float = Field(default=86_400.0, ge=0)
    skip_unknown_symbols: bool = False
    stream_failures_before_poll: int = Field(default=3, ge=1)

    @field_validator("exchanges")
    @classmethod
    def _names(cls, exchanges: dict[str, ExchangeSettings]) -> dict[str, ExchangeSettings]:
        if not exchanges:
            raise ValueError("configure at least one exchange")
        for name in exchanges:
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"exchange name {name!r} must be lower-case letters, digits and '_'"
                )
        return exchanges

    def stagger(self) -> float:
        """Seconds between two exchanges' polls."""
        if self.stagger_s is not None:
            return self.stagger_s
        return self.interval_s / len(self.exchanges)


class ExchangeSyncConfig(PluginConfig):
    """exchange_sync settings.

    Fields:
        source: ``replay`` (a recording) or ``ccxt`` (live public tickers).
        replay, ccxt: settings of each source.
        store_tickers: store every ticker in the ``tickers`` table.
        flush_rows: tickers buffered before one batched insert.
        cache_url: keep the latest tickers in Redis too (``redis://host:6379/0``), so
            other processes (``corec prices``, API workers) read them; default: in
            process only. Read by request: ``exchange_sync.latest``.
        cache_ttl_s: a cached ticker older than this (received time) is not served.
        retention_s: tickers and open-order snapshots older than this are deleted
            (``None``: kept forever); checked every ``prune_interval_s``.
    """

    source: Literal["replay", "ccxt"] = "replay"
    replay: ReplaySettings = ReplaySettings()
    ccxt: CcxtSettings = CcxtSettings()
    store_tickers: bool = True
    flush_rows: int = Field(default=5000, gt=0)
    cache_url: str | None = None
    cache_ttl_s: float = Field(default=1800.0, gt=0)
    retention_s: float | None = Field(default=7 * 86_400.0, gt=0)
    prune_interval_s: float = Field(default=3600.0, gt=0)

    @field_validator("cache_url")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"must be a redis:// URL, got {url!r}")
        return url
