"""Channel names: the one place they are spelled (DESIGN.md, "Channels").

Request endpoints are named ``<plugin>.<verb>`` and are spelled by the plugin that
serves them, in its message module (for example ``corec.messages.capital_data``).
"""

from __future__ import annotations

from typing import Final

EXCHANGE_DATA: Final = "exchange_data"
MARKET_DATA: Final = "market_data"
MACRO_DATA: Final = "macro_data"
CAPITAL_DATA: Final = "capital_data"
TRADING_RESULTS: Final = "trading_results"
SETTLEMENT_DATA: Final = "settlement_data"
ALERTS: Final = "alerts"
ALERT_DATA: Final = "alert_data"
SYSTEM: Final = "system"
DEAD_LETTER: Final = "dead_letter"

ALL: Final = frozenset(
    {
        EXCHANGE_DATA,
        MARKET_DATA,
        MACRO_DATA,
        CAPITAL_DATA,
        TRADING_RESULTS,
        SETTLEMENT_DATA,
        ALERTS,
        ALERT_DATA,
        SYSTEM,
        DEAD_LETTER,
    }
)
