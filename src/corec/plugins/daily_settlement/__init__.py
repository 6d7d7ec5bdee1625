"""daily_settlement: the pool's daily NAV, returns and distributions."""
