"""shared needs: the village's open needs of a category by one index

The report flow asks, before a resident describes their need, for the open needs of the same
category in the village's grids (domain/shared.py `similar_open`). `ix_requests_grid_created`
would read every request the village ever had when none is open (the usual answer);
(grid_code, category, status) reads only the open ones of that category.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_requests_grid_category_status",
        "requests",
        ["grid_code", "category", "status"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_requests_grid_category_status", table_name="requests")
