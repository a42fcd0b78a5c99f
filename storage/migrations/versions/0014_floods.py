"""floods: per-person update counting and the nuisance mark on accounts

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("updates_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("updates_count", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("nuisance_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("nuisance_by_staff_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_accounts_nuisance_by_staff_id", "staff", ["nuisance_by_staff_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_constraint("fk_accounts_nuisance_by_staff_id", type_="foreignkey")
        batch.drop_column("nuisance_by_staff_id")
        batch.drop_column("nuisance_at")
        batch.drop_column("updates_count")
        batch.drop_column("updates_since")
