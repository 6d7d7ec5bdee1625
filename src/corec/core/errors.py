"""The one exception hierarchy of CoreC.

Catch the narrowest class that fits; every class derives from :class:`CorecError`::

    CorecError
    ├── ConfigError                 a configuration file or override is invalid (exit 2)
    ├── InvalidInput                a caller's value is refused; nothing was written (exit 2)
    │   └── InvalidEvent            an event or payload breaks its channel's contract
    ├── BusError                    the bus could not deliver
    │   ├── NoResponder             nobody serves the requested endpoint
    │   ├── RequestTimeout          the responder did not answer in time
    │   └── RequestFailed           the responder raised; carries its error
    ├── StoreError                  the database refused or failed
    │   └── ConcurrencyConflict     another writer got there first; reload and retry
    ├── ExchangeError               an exchange call failed (CCXT errors are mapped here)
    │   ├── TemporaryExchangeError  worth retrying: timeouts, 429/418, 5xx, network
    │   └── PermanentExchangeError  never retried: bad keys, permissions, unknown symbol
    ├── CircuitOpenError            a circuit breaker is open; the call was not made
    └── PluginError                 a plugin failed to start, stop or run

Errors that carry user-facing meaning (``InvalidInput``, ``ConfigError``) have messages
that say what was wrong and where, so the CLI can print them as they are.
"""

from __future__ import annotations


class CorecError(Exception):
    """Base class of every error CoreC raises on purpose."""


class ConfigError(CorecError):
    """A configuration value is invalid.

    Attributes:
        source: the file (or ``environment``) the value came from.
        problems: one line per problem, each ``[line N: ]field.path: what was expected``.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(
            f"{source}: invalid configuration\n" + "\n".join(f"  {p}" for p in problems)
        )


class InvalidInput(CorecError):
    """A value given by a caller (CLI, API, another plugin) was refused; nothing was written."""


class InvalidEvent(InvalidInput):
    """An event or its payload breaks the contract of its channel."""


class BusError(CorecError):
    """The bus could not deliver a message or a request."""


class NoResponder(BusError):
    """``request`` named an endpoint that nobody serves."""


class RequestTimeout(BusError):
    """The responder of an endpoint did not answer within the timeout."""


class RequestFailed(BusError):
    """The responder of an endpoint raised; ``__cause__`` is its error."""


class StoreError(CorecError):
    """The database refused or failed an operation."""


class ConcurrencyConflict(StoreError):
    """Another writer appended first (optimistic concurrency); reload state and retry."""


class ExchangeError(CorecError):
    """An exchange call failed. ``exchange`` names the venue."""

    def __init__(self, exchange: str, message: str, *, retry_after_s: float | None = None) -> None:
        self.exchange = exchange
        self.retry_after_s = retry_after_s
        super().__init__(f"{exchange}: {message}")


class TemporaryExchangeError(ExchangeError):
    """Worth retrying with backoff: timeouts, rate limits (429/418), 5xx, network errors.

    ``retry_after_s`` is set when the exchange said how long to wait (``Retry-After``).
    """


class PermanentExchangeError(ExchangeError):
    """Never retried: authentication, permissions, unknown symbol, bad request."""


class CircuitOpenError(CorecError):
    """The circuit breaker ``name`` is open; the call was not attempted."""

    def __init__(self, name: str, retry_in_s: float) -> None:
        self.name = name
        self.retry_in_s = retry_in_s
        super().__init__(f"circuit {name!r} is open; next probe in {retry_in_s:.0f} s")


class PluginError(CorecError):
    """A plugin failed to start, stop or run."""
