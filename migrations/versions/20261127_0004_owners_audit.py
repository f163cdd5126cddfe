"""study owners and collaborators, the audit log, server-side researcher sessions, sign-in throttling

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "study_members",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("researcher_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["researcher_id"], ["researchers.id"], name=op.f("fk_study_members_researcher_id_researchers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_study_members_study_id_studies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("study_id", "researcher_id", name=op.f("pk_study_members")),
    )
    op.create_index(op.f("ix_study_members_researcher_id"), "study_members", ["researcher_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_audit_events_study_id_studies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_study_id"), "audit_events", ["study_id"])
    op.create_table(
        "researcher_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("researcher_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["researcher_id"], ["researchers.id"], name=op.f("fk_researcher_sessions_researcher_id_researchers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_researcher_sessions")),
    )
    op.create_index(op.f("ix_researcher_sessions_researcher_id"), "researcher_sessions", ["researcher_id"])
    op.create_table(
        "sign_in_throttle",
        sa.Column("key", sa.String(length=96), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.Double(), nullable=False),
        sa.Column("next_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sign_in_throttle")),
    )


def downgrade() -> None:
    op.drop_table("sign_in_throttle")
    op.drop_index(op.f("ix_researcher_sessions_researcher_id"), table_name="researcher_sessions")
    op.drop_table("researcher_sessions")
    op.drop_index(op.f("ix_audit_events_study_id"), table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index(op.f("ix_study_members_researcher_id"), table_name="study_members")
    op.drop_table("study_members")
