"""requests by creation time: the index /stats and the export read a period through

A district's month is about 8% of a year's requests; without this index every report scans
the whole table (bench/README.md has the figures).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_requests_created", "requests", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_requests_created", table_name="requests")
