"""trading_execution's configuration section."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, model_validator

from corec.core.config import FrozenModel
from corec.core.plugin import PluginConfig
from corec.messages.exchange_data import Market


class SmaCrossSettings(FrozenModel):
    """One moving-average crossover strategy on one instrument.

    Fields:
        name: unique strategy name (appears in allocations and trades).
        exchange, market, symbol: the instrument traded (from ``market_data``).
        fast, slow: SMA lengths in one-minute closes (fast < slow).
        stop_loss_pct: stop distance from entry in percent; also sizes the allocation.
        sides: ``long_short`` trades both crosses; ``long_only`` only goes long.
    """

    name: str = Field(default="sma_cross", min_length=1, max_length=64)
    exchange: str = Field(default="ftx", min_length=1)
    market: Market = "futures"
    symbol: str = Field(default="BTC/USD:USD", min_length=1)
    fast: int = Field(default=20, ge=1)
    slow: int = Field(default=60, ge=2)
    stop_loss_pct: Decimal = Field(default=Decimal(2), gt=0, lt=100)
    sides: Literal["long_short", "long_only"] = "long_short"

    @model_validator(mode="after")
    def _check(self) -> SmaCrossSettings:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        return self


class TradingExecutionConfig(PluginConfig):
    """trading_execution settings.

    Fields:
        mode: ``paper`` (simulated fills; the only mode in this version).
        taker_fee_rate: paper taker fee as a fraction of notional (0.0005 = 0.05 %).
        slippage_bps: paper fills move this many bps against the order.
        strategies: the strategy instances to run.
    """

    mode: Literal["paper"] = "paper"
    taker_fee_rate: Decimal = Field(default=Decimal("0.0005"), ge=0, lt=1)
    slippage_bps: Decimal = Field(default=Decimal(0), ge=0)
    strategies: tuple[SmaCrossSettings, ...] = (SmaCrossSettings(),)

    @model_validator(mode="after")
    def _unique(self) -> TradingExecutionConfig:
        names = [s.name for s in self.strategies]
        if len(set(names)) != len(names):
            raise ValueError("strategies: names must be unique")
        return self
