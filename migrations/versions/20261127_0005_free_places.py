"""free_places: the pool of quota places given back (idle, withdrawn or deleted before completing)

Places given back before this revision were kept on the timed-out participant's row (its ordinal) until
taken; they move to the pool, together with the places that participants who withdrew before completing
still held (they now come back too). Places of participants deleted before this revision are not known
any more and stay taken.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 22:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pool = op.create_table(
        "free_places",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("culture_group", sa.String(length=64), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_free_places_study_id_studies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("study_id", "culture_group", "ordinal", name=op.f("pk_free_places")),
    )
    participants = sa.table(
        "participants",
        sa.column("study_id"),
        sa.column("culture_group"),
        sa.column("ordinal"),
        sa.column("status"),
        sa.column("status_reason"),
        sa.column("completed_at"),
    )
    given_back = sa.and_(
        participants.c.ordinal.is_not(None),
        sa.or_(
            participants.c.status_reason == "timed_out",
            sa.and_(participants.c.status == "withdrawn", participants.c.completed_at.is_(None)),
        ),
    )
    columns = [participants.c.study_id, participants.c.culture_group, participants.c.ordinal]
    op.execute(pool.insert().from_select([c.name for c in columns], sa.select(*columns).where(given_back)))
    op.execute(participants.update().where(given_back).values(ordinal=None))


def downgrade() -> None:
    # The places in the pool stay taken under the earlier revision (it kept them on participants' rows).
    op.drop_table("free_places")
