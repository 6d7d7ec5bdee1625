"""user_management's tables: users, their tokens (digests only), and the log of changes
to users (what ``system`` hears as :class:`~corec.messages.user_data.UserChanged`).

Times are UTC nanoseconds of the wall clock. No plaintext secret is ever stored:
``password_hash`` is argon2id, ``token_digest`` SHA-256 (see ``tokens.py``).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, String, Table

from corec.core.store import plugin_metadata

metadata = plugin_metadata()

users = Table(
    "users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),  # admin, member, viewer
    Column("member", String(64), nullable=True),  # the pool member this user is
    Column("password_hash", String(255), nullable=True),  # argon2id; None: tokens only
    Column("created_ts_ns", BigInteger, nullable=False),
    Column("updated_ts_ns", BigInteger, nullable=False),
    Column("revoked_ts_ns", BigInteger, nullable=True),  # set: no login, no token works
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_digest", String(64), primary_key=True),  # SHA-256 hex of the token
    Column("token_id", String(36), nullable=False, unique=True),  # public handle (UUIDv7)
    Column("user_name", String(64), ForeignKey("users.name"), nullable=False, index=True),
    Column("kind", String(8), nullable=False),  # api, access, refresh
    Column("label", String(200), nullable=False),
    Column("session_id", String(36), nullable=True, index=True),  # a login's tokens
    Column("created_ts_ns", BigInteger, nullable=False),
    Column("expires_ts_ns", BigInteger, nullable=True),  # None: never (API tokens only)
    Column("revoked_ts_ns", BigInteger, nullable=True),
)

user_changes = Table(
    "user_changes",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("user_name", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("change", String(16), nullable=False),  # added, token_created, revoked, password_set
    Column("ts_ns", BigInteger, nullable=False),
)
