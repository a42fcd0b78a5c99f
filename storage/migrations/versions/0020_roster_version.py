"""the roster's version: one row the roster import raises, read by each process's roster cache

Units are read on every route, card and label (12 times an escalation, issue 14); each process
keeps them in memory (storage.roster_cache) and looks at this number now and then to learn
that an import, perhaps by another process, has changed them.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "roster_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "version": 1}])


def downgrade() -> None:
    op.drop_table("roster_version")
