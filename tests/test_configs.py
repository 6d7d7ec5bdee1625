"""The shipped configurations load, and say what the README says they do."""

from __future__ import annotations

from pathlib import Path

from corec.core.config import load_config
from corec.core.registry import discover_plugins
from corec.plugins.exchange_sync.config import ExchangeSyncConfig
from corec.plugins.market_monitor.config import MarketMonitorConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def load(name: str):  # type: ignore[no-untyped-def]
    classes = discover_plugins()
    return load_config(CONFIGS / name, {n: cls.Config for n, cls in classes.items()})


def test_live_config_follows_the_five_exchanges_spot_and_futures() -> None:
    config = load("live.yaml")
    sync = config.sections["exchange_sync"]
    assert isinstance(sync, ExchangeSyncConfig)
    assert sync.source == "ccxt"
    ids = {
        name: (e.spot.id if e.spot else None, e.futures.id if e.futures else None)
        for name, e in sync.ccxt.exchanges.items()
    }
    assert ids == {
        "binance": ("binance", "binanceusdm"),
        "kucoin": ("kucoin", "kucoinfutures"),
        "bybit": ("bybit", "bybit"),
        "okx": ("okx", "okx"),
        "kraken": ("kraken", "krakenfutures"),
    }
    assert sync.ccxt.interval_s == 300
    assert sync.ccxt.stagger() == 60  # one exchange a minute
    assert sync.ccxt.breaker_failures == 3 and sync.ccxt.breaker_reset_s == 900
    monitor = config.sections["market_monitor"]
    assert isinstance(monitor, MarketMonitorConfig)
    assert monitor.stale_after_s == 2 * sync.ccxt.interval_s
    strategy = config.sections["trading_execution"].strategies[0]  # type: ignore[attr-defined]
    assert (strategy.exchange, strategy.market) == ("binance", "futures")


def test_default_exchanges_are_the_five() -> None:
    defaults = ExchangeSyncConfig().ccxt
    assert sorted(defaults.exchanges) == ["binance", "bybit", "kraken", "kucoin", "okx"]
    assert all(e.spot and e.futures for e in defaults.exchanges.values())
    assert defaults.stagger() == 60
