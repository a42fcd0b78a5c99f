"""units.syllables: a unit name's pinyin read with the phrase dictionary, kept with the unit

Finding a place ranks units by their names' pinyin, read word by word (重庆 chong qing) with
pypinyin's phrase dictionary: 55 MiB of the bot's memory, loaded at the first place typed
(issue 14). The roster import now reads each name once and keeps the reading here; the units
already imported are read now, in a child process (storage.pinyin.readings_elsewhere) so that
this migration, run at the bot's start, does not leave the dictionary in the bot. Should that
fail, the column stays empty and the bot reads those names itself when first searched: the
same results, at the old cost in memory.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03

"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.pinyin import readings_elsewhere

revision: str = "0022"
down_revision: str | Sequence[str] | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)


def upgrade() -> None:
    with op.batch_alter_table("units") as batch:
        batch.add_column(sa.Column("syllables", sa.Text(), nullable=True))
    units = sa.table("units", sa.column("code", sa.String()), sa.column("name", sa.String()))
    syllables = sa.table("units", sa.column("code", sa.String()), sa.column("syllables"))
    bind = op.get_bind()
    rows = bind.execute(sa.select(units.c.code, units.c.name)).all()
    if not rows:
        return
    try:
        readings = readings_elsewhere([name for _, name in rows])
    except Exception:  # the bot reads these names itself when first searched (see above)
        log.exception("could not read the units' names as pinyin; they are read when searched")
        return
    bind.execute(
        sa.update(syllables)
        .where(syllables.c.code == sa.bindparam("unit_code"))
        .values(syllables=sa.bindparam("reading")),
        [{"unit_code": code, "reading": r} for (code, _), r in zip(rows, readings, strict=True)],
    )


def downgrade() -> None:
    with op.batch_alter_table("units") as batch:
        batch.drop_column("syllables")
