"""deadlines: the clocks of a request's current owner, and the sweep's index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMES = (
    "level_assigned_at",
    "accept_due_at",
    "accept_remind_at",
    "resolve_due_at",
    "resolve_remind_at",
    "paused_at",
    "next_due_at",
)
STAGES = ("accept_reminder_stage", "resolve_reminder_stage")


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        for name in TIMES:
            batch_op.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
        for name in STAGES:
            batch_op.add_column(
                sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0"))
            )
        batch_op.create_index("ix_requests_next_due", ["next_due_at"], unique=False)
    # Requests already open are due at once: the first sweep starts their clocks (from then).
    op.execute(
        "UPDATE requests SET next_due_at = CURRENT_TIMESTAMP "
        "WHERE status IN ('assigned', 'in_progress') AND assignee_staff_id IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_next_due")
        for name in reversed(STAGES):
            batch_op.drop_column(name)
        for name in reversed(TIMES):
            batch_op.drop_column(name)
