"""Typed payloads per channel: the only contract between plugins.

One module per channel (``corec.messages.<channel>``). Importing this package
registers every payload type with the codec.
"""

from corec.messages import (
    alert_data,
    alerts,
    capital_data,
    dead_letter,
    exchange_data,
    macro_data,
    market_data,
    settlement_data,
    system,
    trading_results,
    user_data,
)

__all__ = [
    "alert_data",
    "alerts",
    "capital_data",
    "dead_letter",
    "exchange_data",
    "macro_data",
    "market_data",
    "settlement_data",
    "system",
    "trading_results",
    "user_data",
]
