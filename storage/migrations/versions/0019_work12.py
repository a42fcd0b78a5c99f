"""the claimant's record: the resident's verdict on a need resolved through a claim, kept on
the claim itself (solved, satisfaction, when), so a volunteer's or a unit's figures read one row

Revision ID: 19c
Revises: 0018
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "19c"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("claims") as batch:
        batch.add_column(sa.Column("solved", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("satisfaction", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("claims") as batch:
        batch.drop_column("rated_at")
        batch.drop_column("satisfaction")
        batch.drop_column("solved")
