"""beneficiary links: one-time codes that tie a family member's own account to their entry;
voice notes kept on timeline entries

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "beneficiary_links",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("beneficiary_id", sa.Integer(), nullable=False),
        sa.Column("created_by_account_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by_account_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["beneficiary_id"], ["beneficiaries.id"]),
        sa.ForeignKeyConstraint(["created_by_account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["used_by_account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_index("ix_beneficiary_links_beneficiary_id", "beneficiary_links", ["beneficiary_id"])
    with op.batch_alter_table("request_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media_kind", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("media_file_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("request_events", schema=None) as batch_op:
        batch_op.drop_column("media_file_id")
        batch_op.drop_column("media_kind")
    op.drop_index("ix_beneficiary_links_beneficiary_id", table_name="beneficiary_links")
    op.drop_table("beneficiary_links")
