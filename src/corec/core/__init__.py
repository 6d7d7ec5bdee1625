"""The nucleus and its kit: events, codec, bus, plugin host, config, store, resilience.

Imports only the standard library and third-party packages (checked by import-linter).
"""
