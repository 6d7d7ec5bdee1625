"""Conventions shared by every query endpoint the API (and other readers) call.

A query endpoint is a request endpoint (``<plugin>.<verb>``) that reads or changes a
plugin's records on behalf of a person. Its request and reply payloads live in the
plugin's message module; the pieces they share live here:

- :class:`Refused`: the reply for a client's mistake (unknown member, bad filter,
  amount below the minimum, unknown id, not available in this mode). A responder
  *returns* it instead of raising, so the caller can tell a refusal (the client's to
  fix: 404/409/422/403/503 over HTTP) from a failure (a raise: the node's to fix).
- Paging: list requests carry ``limit`` (1..:data:`MAX_PAGE_LIMIT`, default
  :data:`DEFAULT_PAGE_LIMIT`) and ``offset`` (≥ 0); list replies carry ``total`` (the
  matching rows before paging) and ``items``. :func:`page` cuts a list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Final, Literal, TypeVar

from corec.core.events import Payload

DEFAULT_PAGE_LIMIT: Final = 100
MAX_PAGE_LIMIT: Final = 1000

RefusalCode = Literal["not_found", "invalid", "conflict", "forbidden", "unavailable"]
"""Why a query was refused: ``not_found`` (no such record), ``invalid`` (a value is
wrong: ``field`` says which), ``conflict`` (the record's state does not allow it: a
withdrawal above equity, an id used for something else), ``forbidden`` (credentials
not accepted), ``unavailable`` (not now: rate-limited, not in replay mode)."""


class Refused(Payload, frozen=True, kw_only=True):
    """A query endpoint's answer to a request it will not carry out.

    Fields:
        code: see :data:`RefusalCode`.
        message: one line for a person, saying what was wrong; never a secret.
        field: the request field at fault (``"member"``, ``"amount_usd"``), if one is.
        retry_after_s: for ``unavailable``: when asking again may succeed (seconds).
    """

    TYPE: ClassVar[str] = "refused"
    code: RefusalCode
    message: str
    field: str | None = None
    retry_after_s: int | None = None


T = TypeVar("T")


def page(rows: Sequence[T], limit: int, offset: int) -> tuple[int, tuple[T, ...]]:
    """``(total, rows[offset:offset + limit])`` of an already filtered, ordered list.

    Raises:
        ValueError: ``limit`` outside 1..MAX_PAGE_LIMIT or ``offset`` negative.
    """
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_LIMIT}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    return len(rows), tuple(rows[offset : offset + limit])


def paging_refusal(limit: object, offset: object) -> Refused | None:
    """``Refused(invalid)`` naming ``limit`` or ``offset`` when either is out of range
    (``limit`` 1..:data:`MAX_PAGE_LIMIT`, ``offset`` ≥ 0, both integers, not booleans),
    else ``None``: the first check of every list responder."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_LIMIT:
        return Refused(
            code="invalid",
            message=f"limit must be between 1 and {MAX_PAGE_LIMIT}, got {limit!r}",
            field="limit",
        )
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        return Refused(
            code="invalid", message=f"offset must be >= 0, got {offset!r}", field="offset"
        )
    return None
