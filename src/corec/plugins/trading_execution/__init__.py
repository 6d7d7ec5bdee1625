"""trading_execution: strategies, the paper broker, positions and closed trades."""
