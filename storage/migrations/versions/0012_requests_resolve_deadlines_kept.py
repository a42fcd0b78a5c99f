"""requests.resolve_missed_due_at, requests.resolved_due_at: resolve deadlines kept

The resolve deadline (`resolve_due_at`) is cleared when a request is resolved, so the ledger's
"Resolve deadline" column emptied while "Resolved on time" still answered. These keep the
deadline it was measured against: the first resolve deadline that passed (set by the sweep),
and the holder's deadline when it was resolved. Rows resolved before this revision keep them
empty: the deadline was not recorded.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(
            sa.Column("resolve_missed_due_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("resolved_due_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("resolved_due_at")
        batch.drop_column("resolve_missed_due_at")
