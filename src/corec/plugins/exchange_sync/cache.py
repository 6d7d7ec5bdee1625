"""The latest ticker per (exchange, market, symbol), with a TTL; optionally in Redis.

:class:`TickerCache` lives in the node and answers ``exchange_sync.latest``.
:class:`RedisTickerMirror` copies it to Redis for other processes (``corec prices``,
API workers): one key per instrument, ``corec:<instance>:ticker:<exchange>:<market>:<symbol>``,
holding the msgpack-encoded :class:`~corec.messages.exchange_data.Ticker` and expiring
with the TTL, plus a set ``corec:<instance>:tickers`` indexing the keys. Writes are
batched: :meth:`RedisTickerMirror.put` only marks an instrument dirty; :meth:`flush`
(run every ``flush_interval_s`` and at stop) sends them in one pipeline, so a fast
replay costs one round trip per flush, not one per ticker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from corec.core.clock import NS_PER_S
from corec.core.errors import StoreError
from corec.messages.exchange_data import Ticker, pair_of

Key = tuple[str, str, str]

REDIS_TIMEOUT_S = 5.0
"""Timeout of every Redis connect and command."""

_encoder = msgspec.msgpack.Encoder(decimal_format="string")
_decoder = msgspec.msgpack.Decoder(Ticker)


def matches(ticker: Ticker, exchange: str | None, market: str | None, symbol: str | None) -> bool:
    """True when ``ticker`` passes the filters (``None`` matches anything; a pair
    ``BTC/USDT`` matches ``BTC/USDT`` and ``BTC/USDT:USDT``)."""
    if exchange is not None and ticker.exchange != exchange:
        return False
    if market is not None and ticker.market != market:
        return False
    if symbol is not None and ticker.symbol != symbol:
        return ":" not in symbol and pair_of(ticker.symbol) == symbol
    return True


class TickerCache:
    """In-process latest tickers.

    Args:
        ttl_s: a ticker received more than ``ttl_s`` before ``now_ns`` is not served.

    A ticker replaces the cached one unless it is older (by exchange timestamp).
    """

    def __init__(self, *, ttl_s: float) -> None:
        self.ttl_ns = int(ttl_s * NS_PER_S)
        self._latest: dict[Key, Ticker] = {}

    def put(self, tickers: Iterable[Ticker]) -> list[Ticker]:
        """Cache ``tickers``; return the ones that became the latest of their instrument."""
        latest, changed = self._latest, []
        for ticker in tickers:
            key = (ticker.exchange, ticker.market, ticker.symbol)
            current = latest.get(key)
            if current is None or ticker.exchange_ts_ns >= current.exchange_ts_ns:
                latest[key] = ticker
                changed.append(ticker)
        return changed

    def latest(
        self,
        now_ns: int,
        *,
        exchange: str | None = None,
        market: str | None = None,
        symbol: str | None = None,
    ) -> list[Ticker]:
        """Fresh tickers matching the filters (see :func:`matches`), sorted by key."""
        oldest = now_ns - self.ttl_ns
        return [
            ticker
            for key, ticker in sorted(self._latest.items())
            if ticker.received_ts_ns >= oldest and matches(ticker, exchange, market, symbol)
        ]

    def get(self, exchange: str, market: str, symbol: str) -> Ticker | None:
        """The latest ticker of one instrument, however old; ``None`` if never seen."""
        return self._latest.get((exchange, market, symbol))

    def __len__(self) -> int:
        return len(self._latest)


def redis_prefix(instance_id: str) -> str:
    """Key prefix of one node's cache: ``corec:<instance_id>:``."""
    return f"corec:{instance_id}:"


class RedisTickerMirror:
    """Copies :class:`TickerCache` updates to Redis (see the module docstring).

    Args:
        url: ``redis://host:port/db``.
        instance_id: the node's ``instance_id`` (keys are per node).
        ttl_s: key expiry (Redis wall time).

    Raises (from :meth:`flush` and :meth:`read`):
        StoreError: Redis is unreachable or answered an error (URL redacted).
    """

    def __init__(self, url: str, *, instance_id: str, ttl_s: float) -> None:
        import redis.asyncio as redis  # imported on use: most nodes run without Redis

        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        self._url = url
        self.prefix = redis_prefix(instance_id)
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self._dirty: dict[Key, Ticker] = {}
        self.written = 0

    def put(self, tickers: Iterable[Ticker]) -> None:
        """Mark ``tickers`` for the next :meth:`flush`."""
        for ticker in tickers:
            self._dirty[(ticker.exchange, ticker.market, ticker.symbol)] = ticker

    async def flush(self) -> int:
        """Write the marked tickers in one pipeline; return how many were written."""
        if not self._dirty:
            return 0
        dirty, self._dirty = self._dirty, {}
        index = self.prefix + "tickers"
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for (exchange, market, symbol), ticker in dirty.items():
                    key = f"{self.prefix}ticker:{exchange}:{market}:{symbol}"
                    pipe.set(key, _encoder.encode(ticker), px=self.ttl_ms)
                    pipe.sadd(index, key)
                pipe.pexpire(index, self.ttl_ms)
                await pipe.execute()
        except Exception as exc:
            for key, ticker in dirty.items():  # keep them for the next flush
                self._dirty.setdefault(key, ticker)
            raise _store_error(self._url, exc) from exc
        self.written += len(dirty)
        return len(dirty)

    async def close(self) -> None:
        """Close the connection pool (never raises)."""
        try:
            await self._client.aclose()
        except Exception:
            pass


async def read_redis_tickers(url: str, instance_id: str) -> list[Ticker]:
    """Every ticker a node mirrored to Redis and not yet expired.

    Raises:
        StoreError: Redis is unreachable or holds something that is not a ticker.
    """
    import redis.asyncio as redis

    client: Any = redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )
    prefix = redis_prefix(instance_id)
    try:
        keys = sorted(await client.smembers(prefix + "tickers"))
        values = await client.mget(keys) if keys else []
    except Exception as exc:
        raise _store_error(url, exc) from exc
    finally:
        await client.aclose()
    try:
        return [_decoder.decode(value) for value in values if value is not None]
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise StoreError(f"the ticker cache in Redis holds a malformed entry: {exc}") from exc


def _store_error(url: str, exc: BaseException) -> StoreError:
    from sqlalchemy.engine import make_url

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:
        shown = url.split("@")[-1]
    return StoreError(f"Redis at {shown}: {type(exc).__name__}: {exc}")
