"""personal data: erasure, informed family members, sensitive consent, anonymised requests,
phone access log

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("beneficiaries") as batch:
        batch.add_column(sa.Column("informed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("requests") as batch:
        batch.add_column(
            sa.Column("sensitive_consent_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("anonymised_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "phone_access",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("numbers", sa.Integer(), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"]),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_phone_access_at", "phone_access", ["at"])


def downgrade() -> None:
    op.drop_index("ix_phone_access_at", table_name="phone_access")
    op.drop_table("phone_access")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("anonymised_at")
        batch.drop_column("sensitive_consent_at")
    with op.batch_alter_table("beneficiaries") as batch:
        batch.drop_column("informed_at")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("erased_at")
