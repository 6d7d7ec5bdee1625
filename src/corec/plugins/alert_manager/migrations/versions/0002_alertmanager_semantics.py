"""alert state, acknowledgements, silences, the notification outbox and delivery attempts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("state", sa.String(length=16), server_default="firing", nullable=False)
        )
        batch_op.add_column(sa.Column("ends_ts_ns", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("acked_ts_ns", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("acked_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("muted_by", sa.String(length=128), nullable=True))
        batch_op.add_column(
            sa.Column("resolvable", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index(batch_op.f("ix_alerts_state"), ["state"], unique=False)
    op.create_table(
        "silences",
        sa.Column("silence_id", sa.String(length=64), nullable=False),
        sa.Column("matchers_json", sa.Text(), nullable=False),
        sa.Column("starts_ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("ends_ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("comment", sa.Text(), server_default="", nullable=False),
        sa.Column("created_ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("expired_ts_ns", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("silence_id", name=op.f("pk_silences")),
    )
    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_silences_ends_ts_ns"), ["ends_ts_ns"], unique=False)
    op.create_table(
        "notifications",
        sa.Column("notification_id", sa.String(length=64), nullable=False),
        sa.Column("receiver", sa.String(length=64), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("payload_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("next_attempt_ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("done_ts_ns", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("notification_id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notifications_receiver"), ["receiver"], unique=False)
        batch_op.create_index(batch_op.f("ix_notifications_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_notifications_next_attempt_ts_ns"), ["next_attempt_ts_ns"], unique=False
        )
    op.create_table(
        "delivery_attempts",
        sa.Column("attempt_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("notification_id", sa.String(length=64), nullable=False),
        sa.Column("receiver", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("retry_after_s", sa.Numeric(precision=20, scale=3), nullable=True),
        sa.Column("duration_ms", sa.Numeric(precision=20, scale=3), nullable=False),
        sa.PrimaryKeyConstraint("attempt_id", name=op.f("pk_delivery_attempts")),
    )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_attempts_notification_id"), ["notification_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("delivery_attempts")
    op.drop_table("notifications")
    op.drop_table("silences")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_state"))
        batch_op.drop_column("resolvable")
        batch_op.drop_column("muted_by")
        batch_op.drop_column("acked_by")
        batch_op.drop_column("acked_ts_ns")
        batch_op.drop_column("ends_ts_ns")
        batch_op.drop_column("state")
