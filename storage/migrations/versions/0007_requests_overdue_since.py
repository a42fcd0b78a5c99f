"""requests.overdue_since: the first deadline the current round of work missed

"Overdue" (docs/metrics.md) reads this column, so /stats, /overdue, the digest and the ledger
agree without reading the timeline. Existing rows are filled from their escalation and overdue
entries since the last resolution.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("overdue_since", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        """
        UPDATE requests SET overdue_since = (
            SELECT MIN(e.at) FROM request_events e
            WHERE e.request_id = requests.id
              AND e.action IN ('escalate', 'overdue')
              AND (e.note LIKE 'why:accept!_overdue%' ESCAPE '!'
                   OR e.note LIKE 'why:resolve!_overdue%' ESCAPE '!')
              AND (requests.resolved_at IS NULL OR e.at > requests.resolved_at)
        )
        WHERE status IN ('new', 'assigned', 'in_progress')
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("overdue_since")
