"""exchange_sync: every call to the exchanges, or the replay of a real recording."""
