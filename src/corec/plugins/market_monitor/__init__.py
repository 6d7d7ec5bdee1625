"""market_monitor: turns exchange_data into market_data, and watches moves and staleness."""
