"""Batched, idempotent storage of tickers and the replay cursor."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from corec.core.store import Store
from corec.core.store.upsert import insert_ignoring_duplicates, upsert
from corec.messages.exchange_data import Ticker
from corec.plugins.exchange_sync import models as m


def ticker_row(t: Ticker) -> dict[str, Any]:
    """The ``tickers`` row of a ticker."""
    return {
        "exchange": t.exchange,
        "market": t.market,
        "symbol": t.symbol,
        "bid": t.bid,
        "ask": t.ask,
        "last": t.last,
        "base_volume": t.base_volume,
        "quote_volume": t.quote_volume,
        "exchange_ts_ns": t.exchange_ts_ns,
        "received_ts_ns": t.received_ts_ns,
        "seq": t.seq,
    }


class TickerWriter:
    """Buffers tickers and writes them in batches, skipping ones already stored.

    A ticker is identified by (exchange, market, symbol, exchange_ts_ns, seq); storing
    the same recording twice, or an unchanged exchange ticker polled twice, adds
    nothing. With a ``cursor`` (recording, last timestamp, rows replayed), a flush also
    records how far the replay got, in the same transaction.
    """

    def __init__(self, store: Store, *, flush_rows: int) -> None:
        self.store = store
        self.flush_rows = flush_rows
        self._buffer: list[dict[str, Any]] = []
        self._insert = insert_ignoring_duplicates(m.tickers, store.dialect, m.TICKER_KEY)
        self._cursor_upsert = upsert(
            m.replay_cursor, store.dialect, ["recording"], ["last_ts_ns", "rows_replayed"]
        )
        self.flushed = 0

    @property
    def buffered(self) -> int:
        """Tickers waiting for the next flush."""
        return len(self._buffer)

    def add(self, ticker: Ticker) -> bool:
        """Buffer one ticker; True when the buffer is full and should be flushed."""
        self._buffer.append(ticker_row(ticker))
        return len(self._buffer) >= self.flush_rows

    async def flush(self, *, cursor: tuple[str, int, int] | None = None) -> None:
        """Write the buffer (and the cursor ``(recording, last_ts_ns, rows)``) in one transaction."""
        rows, self._buffer = self._buffer, []
        if not rows and cursor is None:
            return
        insert_rows, cursor_upsert = self._insert, self._cursor_upsert

        def write(conn: Connection) -> None:
            if rows:
                conn.execute(insert_rows, rows)
            if cursor is not None:
                recording, last_ts_ns, replayed = cursor
                conn.execute(
                    cursor_upsert,
                    [{"recording": recording, "last_ts_ns": last_ts_ns, "rows_replayed": replayed}],
                )

        await self.store.write(write)
        self.flushed += len(rows)


async def read_cursor(store: Store, recording: str) -> tuple[int, int]:
    """``(last_ts_ns, rows_replayed)`` of a recording, ``(0, 0)`` if never replayed."""
    query = select(m.replay_cursor.c.last_ts_ns, m.replay_cursor.c.rows_replayed).where(
        m.replay_cursor.c.recording == recording
    )
    row = await store.read(lambda conn: conn.execute(query).first())
    return (row.last_ts_ns, row.rows_replayed) if row else (0, 0)


async def ticker_stats(store: Store) -> tuple[int, int | None]:
    """``(tickers stored, newest exchange_ts_ns)``."""
    query = select(func.count(), func.max(m.tickers.c.exchange_ts_ns))
    row = await store.read(lambda conn: conn.execute(query).one())
    return int(row[0]), row[1]
