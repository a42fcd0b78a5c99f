"""volunteers: the Telegram id the roster gives an imported volunteer, so that they are
recognised when they first open the bot (before that there is no account to name)

Revision ID: 19a
Revises: 0018
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "19a"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("volunteers", sa.Column("telegram_id", sa.BigInteger(), nullable=True))
    op.create_index("ux_volunteers_telegram_id", "volunteers", ["telegram_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_volunteers_telegram_id", table_name="volunteers")
    with op.batch_alter_table("volunteers") as batch:
        batch.drop_column("telegram_id")
