"""Market data sources and brokers: CCXT adapters, the recording replay, the paper broker."""
