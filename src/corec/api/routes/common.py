"""Helpers the route modules share: list replies with paging echoed back."""

from __future__ import annotations

from typing import Any

import msgspec

from corec.api.models import builtins


def listing(reply: msgspec.Struct, limit: int, offset: int) -> dict[str, Any]:
    """A list reply (``total`` + ``items``) as the API's page: ``{total, limit, offset,
    items}`` with the items as builtins for the response model."""
    return {
        "total": reply.total,  # type: ignore[attr-defined]
        "limit": limit,
        "offset": offset,
        "items": [builtins(item) for item in reply.items],  # type: ignore[attr-defined]
    }
