"""outbox by chat and name: a card's rows in a chat, read on every card sent or edited

A task card's rows are looked up by chat and name (`ref_key`) several times an escalation: was
a card of its own sent, or only a burst's summary card (a range of names), the card's last
sent copy, its rows before an edit. With one index on `chat_id` (and `created_at`) and one on
`ref_key`, SQLite without fresh statistics took the chat's index and read every row of the
chat: in a backlog of 1,000 escalations to one grid member, 3.5 ms an escalation and growing
with the backlog (issue 14). (chat_id, ref_key) answers each of them from the index.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_outbox_chat_ref", "outbox", ["chat_id", "ref_key"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_chat_ref", table_name="outbox")
