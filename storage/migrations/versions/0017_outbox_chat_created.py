"""outbox by chat and time: the index "in touch in the last half hour" reads

`handlers.cards.in_touch` asks whether a chat had a message in the last 30 minutes. With the
index on `chat_id` alone it read every row the chat ever had (58–70 ms at 25,000 rows for one
chat, issue 14); (chat_id, created_at) reads only the last half hour. It serves every lookup
by chat the old index served, so that one goes (one index less to write per message).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_outbox_chat_created", "outbox", ["chat_id", "created_at"], unique=False)
    op.drop_index("ix_outbox_chat_id", table_name="outbox")


def downgrade() -> None:
    op.create_index("ix_outbox_chat_id", "outbox", ["chat_id"], unique=False)
    op.drop_index("ix_outbox_chat_created", table_name="outbox")
