"""staff reachability (opened_at, refused_at, refused_reason) and digest_deliveries

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.add_column(sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("refused_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("refused_reason", sa.String(length=32), nullable=True))
    # Staff who have already written to the bot have an account with their Telegram id: they
    # opened it when that account was made.
    op.execute(
        "UPDATE staff SET opened_at = (SELECT accounts.created_at FROM accounts "
        "WHERE accounts.telegram_id = staff.telegram_id) "
        "WHERE telegram_id IS NOT NULL"
    )
    op.create_table(
        "digest_deliveries",
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("staff_id", "day"),
    )


def downgrade() -> None:
    op.drop_table("digest_deliveries")
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("refused_reason")
        batch.drop_column("refused_at")
        batch.drop_column("opened_at")
