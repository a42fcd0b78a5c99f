"""upward_ratings: a lower unit rates how the level above handled a need it passed up

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "upward_ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("rater_unit_code", sa.String(length=32), nullable=False),
        sa.Column("rater_level", sa.String(length=16), nullable=False),
        sa.Column("rater_staff_id", sa.Integer(), nullable=True),
        sa.Column("rated_unit_code", sa.String(length=32), nullable=False),
        sa.Column("rated_level", sa.String(length=16), nullable=False),
        sa.Column("how", sa.String(length=12), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rating", sa.String(length=16), nullable=True),
        sa.Column("comment", sa.String(length=1000), nullable=True),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"]),
        sa.ForeignKeyConstraint(["rater_unit_code"], ["units.code"]),
        sa.ForeignKeyConstraint(["rated_unit_code"], ["units.code"]),
        sa.ForeignKeyConstraint(["rater_staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_upward_ratings_request_unit",
        "upward_ratings",
        ["request_id", "rater_unit_code"],
        unique=True,
    )
    op.create_index("ix_upward_ratings_due", "upward_ratings", ["state", "due_at"], unique=False)
    op.create_index(
        "ix_upward_ratings_rated_unit_code", "upward_ratings", ["rated_unit_code"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_upward_ratings_rated_unit_code", table_name="upward_ratings")
    op.drop_index("ix_upward_ratings_due", table_name="upward_ratings")
    op.drop_index("ux_upward_ratings_request_unit", table_name="upward_ratings")
    op.drop_table("upward_ratings")
