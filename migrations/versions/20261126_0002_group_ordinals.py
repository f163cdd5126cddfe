"""ordinals per culture group: drop studies.n_assigned

A participant's ordinal (which picks the Latin-square row) is now the place taken in the culture group's
quota, counted by culture_groups.filled, so the study-wide counter, one row every assignment had to lock,
is gone.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 23:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("n_assigned")


def downgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("n_assigned", sa.Integer(), nullable=False, server_default="0"))
