"""alert_manager: classifies, deduplicates and records alerts."""
