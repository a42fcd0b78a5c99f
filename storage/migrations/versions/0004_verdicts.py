"""verdicts: the resident's verdict after the work, follow-up calls, and the response clock

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMES = ("respond_by", "responded_at", "verdict_due_at", "verdict_asked_at", "rated_at")


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        for name in TIMES:
            batch_op.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("verdict_stage", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("solved", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("satisfaction", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("verdict_comment", sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column("verdict_by", sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column("verdict_account_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("followup_staff_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_requests_verdict_account", "accounts", ["verdict_account_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_requests_followup_staff", "staff", ["followup_staff_id"], ["id"]
        )
    with op.batch_alter_table("beneficiaries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_beneficiaries_account", "accounts", ["account_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("beneficiaries", schema=None) as batch_op:
        batch_op.drop_constraint("fk_beneficiaries_account", type_="foreignkey")
        batch_op.drop_column("account_id")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_constraint("fk_requests_followup_staff", type_="foreignkey")
        batch_op.drop_constraint("fk_requests_verdict_account", type_="foreignkey")
        for name in (
            "followup_staff_id",
            "verdict_account_id",
            "verdict_by",
            "verdict_comment",
            "satisfaction",
            "solved",
            "verdict_stage",
        ):
            batch_op.drop_column(name)
        for name in reversed(TIMES):
            batch_op.drop_column(name)
