"""the supply side: organisations, volunteers, claims (offers to volunteers), supporters of a
shared need, and the request's live claim, shared mark, supporter count and merge target

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=100), nullable=False, unique=True),
        sa.Column("name_en", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("unit_code", sa.String(), sa.ForeignKey("units.code"), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_table(
        "volunteers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=True, unique=True
        ),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True, unique=True),
        sa.Column("telegram_id", sa.BigInteger(), nullable=True),
        sa.Column("unit_code", sa.String(), sa.ForeignKey("units.code"), nullable=False),
        sa.Column("categories", sa.String(length=500), nullable=False),
        sa.Column("party_member", sa.Boolean(), nullable=False),
        sa.Column(
            "organisation_id", sa.Integer(), sa.ForeignKey("organisations.id"), nullable=True
        ),
        sa.Column("is_contact", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("decided_at", WHEN, nullable=True),
        sa.Column("decided_by_staff_id", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
        sa.Column("paused_at", WHEN, nullable=True),
        sa.Column("left_at", WHEN, nullable=True),
    )
    op.create_index("ix_volunteers_unit_status", "volunteers", ["unit_code", "status"])
    op.create_index("ux_volunteers_telegram_id", "volunteers", ["telegram_id"], unique=True)
    op.create_index("ix_volunteers_organisation_id", "volunteers", ["organisation_id"])
    op.create_table(
        "claims",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("request_id", sa.Integer(), sa.ForeignKey("requests.id"), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("offered_by_staff_id", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("offered_at", WHEN, nullable=False),
        sa.Column(
            "reach_unit_code", sa.String(length=32), sa.ForeignKey("units.code"), nullable=False
        ),
        sa.Column("widen_at", WHEN, nullable=True),
        sa.Column("volunteer_id", sa.Integer(), sa.ForeignKey("volunteers.id"), nullable=True),
        sa.Column(
            "organisation_id", sa.Integer(), sa.ForeignKey("organisations.id"), nullable=True
        ),
        sa.Column("claimed_at", WHEN, nullable=True),
        sa.Column("done_at", WHEN, nullable=True),
        sa.Column("done_note", sa.String(length=1000), nullable=True),
        sa.Column("done_media_kind", sa.String(length=8), nullable=True),
        sa.Column("done_media_file_id", sa.String(length=200), nullable=True),
        sa.Column("hours", sa.Float(), nullable=True),
        sa.Column("confirm_due_at", WHEN, nullable=True),
        sa.Column("confirmed_at", WHEN, nullable=True),
        sa.Column("ended_at", WHEN, nullable=True),
        sa.Column("next_due_at", WHEN, nullable=True),
        sa.Column("solved", sa.Boolean(), nullable=True),
        sa.Column("satisfaction", sa.String(length=16), nullable=True),
        sa.Column("rated_at", WHEN, nullable=True),
    )
    op.create_index("ix_claims_request_id", "claims", ["request_id"])
    op.create_index("ix_claims_state_due", "claims", ["state", "next_due_at"])
    op.create_index("ix_claims_volunteer_state", "claims", ["volunteer_id", "state"])
    op.create_table(
        "supporters",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("request_id", sa.Integer(), sa.ForeignKey("requests.id"), nullable=False),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column(
            "beneficiary_id", sa.Integer(), sa.ForeignKey("beneficiaries.id"), nullable=False
        ),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("verdict_asked_at", WHEN, nullable=True),
        sa.Column("solved", sa.Boolean(), nullable=True),
        sa.Column("satisfaction", sa.String(length=16), nullable=True),
        sa.Column("comment", sa.String(length=1000), nullable=True),
        sa.Column("rated_at", WHEN, nullable=True),
    )
    op.create_index("ix_supporters_account_id", "supporters", ["account_id"])
    op.create_index(
        "ux_supporters_request_beneficiary",
        "supporters",
        ["request_id", "beneficiary_id"],
        unique=True,
    )
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("claim_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("shared_at", WHEN, nullable=True))
        batch.add_column(
            sa.Column("supporter_count", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_requests_merged_into_id", "requests", ["merged_into_id"], ["id"]
        )
        batch.create_index("ix_requests_claim_id", ["claim_id"])


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_index("ix_requests_claim_id")
        batch.drop_constraint("fk_requests_merged_into_id", type_="foreignkey")
        batch.drop_column("merged_into_id")
        batch.drop_column("supporter_count")
        batch.drop_column("shared_at")
        batch.drop_column("claim_id")
    op.drop_index("ux_supporters_request_beneficiary", table_name="supporters")
    op.drop_index("ix_supporters_account_id", table_name="supporters")
    op.drop_table("supporters")
    op.drop_index("ix_claims_volunteer_state", table_name="claims")
    op.drop_index("ix_claims_state_due", table_name="claims")
    op.drop_index("ix_claims_request_id", table_name="claims")
    op.drop_table("claims")
    op.drop_index("ix_volunteers_organisation_id", table_name="volunteers")
    op.drop_index("ux_volunteers_telegram_id", table_name="volunteers")
    op.drop_index("ix_volunteers_unit_status", table_name="volunteers")
    op.drop_table("volunteers")
    op.drop_table("organisations")
