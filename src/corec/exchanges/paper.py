"""The paper broker: fills market orders at the current price plus a taker fee.

A buy fills at the ask (or the last price when the source has no book), a sell at the
bid (or last), moved against us by ``slippage_bps`` and rounded against us to 8
decimals (a real fill is on the market's tick; an unrounded slipped price times an
8-decimal quantity would not fit the ledger's 18 stored decimals). The fee is
``quantity × price × taker_fee_rate``, rounded up (charged) to 8 decimals. Default
taker fee: 0.05 % (5 bps), a typical VIP-0 perpetual taker fee on the five exchanges.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from corec.core import money
from corec.core.errors import InvalidInput
from corec.messages.market_data import MarketSnapshot

OrderSide = Literal["buy", "sell"]
BPS = Decimal(10_000)


@dataclass(frozen=True)
class Fill:
    """One simulated fill: ``quantity`` (base) at ``price`` (quote), ``fee_usd`` charged."""

    side: OrderSide
    quantity: Decimal
    price: Decimal
    fee_usd: Decimal
    ts_ns: int

    @property
    def notional_usd(self) -> Decimal:
        """``quantity × price``."""
        return self.quantity * self.price


class PaperBroker:
    """Simulated market-order execution against the latest market snapshot.

    Args:
        taker_fee_rate: fee as a fraction of notional (0.0005 = 0.05 %).
        slippage_bps: price moved against the order, in basis points (default 0).
    """

    def __init__(
        self, *, taker_fee_rate: Decimal = Decimal("0.0005"), slippage_bps: Decimal = Decimal(0)
    ) -> None:
        if taker_fee_rate < 0 or slippage_bps < 0:
            raise ValueError("taker_fee_rate and slippage_bps must be >= 0")
        self.taker_fee_rate = taker_fee_rate
        self.slippage_bps = slippage_bps

    def fill_price(self, side: OrderSide, snapshot: MarketSnapshot) -> Decimal:
        """The price a market ``side`` order fills at now."""
        if side == "buy":
            base = snapshot.ask if snapshot.ask is not None else snapshot.price
            if not self.slippage_bps:
                return base
            return money.charge(base * (1 + self.slippage_bps / BPS), money.PRICE_QUANTUM)
        base = snapshot.bid if snapshot.bid is not None else snapshot.price
        if not self.slippage_bps:
            return base
        return money.pay(base * (1 - self.slippage_bps / BPS), money.PRICE_QUANTUM)

    def fee_usd(self, quantity: Decimal, price: Decimal) -> Decimal:
        """Taker fee of a fill, rounded up to 8 decimals."""
        return money.charge(quantity * price * self.taker_fee_rate)

    def quantity_for(
        self, budget_usd: Decimal, side: OrderSide, snapshot: MarketSnapshot
    ) -> Decimal:
        """The largest quantity whose notional plus fee fits in ``budget_usd``.

        Raises:
            InvalidInput: the budget buys nothing (not even one quantum).
        """
        price = self.fill_price(side, snapshot)
        quantity = money.quantity_down(money.divide(budget_usd, price * (1 + self.taker_fee_rate)))
        while quantity > 0 and quantity * price + self.fee_usd(quantity, price) > budget_usd:
            quantity -= money.QUANTITY_QUANTUM
        if quantity <= 0:
            raise InvalidInput(f"{budget_usd} USD buys no {snapshot.symbol} at {price}")
        return quantity

    def market_order(
        self, side: OrderSide, quantity: Decimal, snapshot: MarketSnapshot, ts_ns: int
    ) -> Fill:
        """Fill a market order of ``quantity`` now.

        Raises:
            InvalidInput: ``quantity`` is not positive.
        """
        if quantity <= 0:
            raise InvalidInput(f"order quantity must be positive, got {quantity}")
        price = self.fill_price(side, snapshot)
        return Fill(
            side=side,
            quantity=quantity,
            price=price,
            fee_usd=self.fee_usd(quantity, price),
            ts_ns=ts_ns,
        )
