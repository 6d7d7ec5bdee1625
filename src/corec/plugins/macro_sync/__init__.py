"""macro_sync: daily macro series (VIX, S&P 500, …) from a recording or FRED."""
