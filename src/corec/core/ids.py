"""Identifiers: unique, time-ordered (UUIDv7, RFC 9562) as canonical text."""

from __future__ import annotations

import uuid_utils


def new_id() -> str:
    """A new UUIDv7 as 36-character text; ids created later sort after earlier ones."""
    return str(uuid_utils.uuid7())
