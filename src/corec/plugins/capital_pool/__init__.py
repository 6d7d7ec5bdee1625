"""capital_pool: members' shares of one pool, as an exact double-entry, unitized ledger."""
