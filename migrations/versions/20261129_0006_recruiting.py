"""studies.recruiting: whether a study takes new participants

A researcher closes a study to new participants (a pilot done, a problem found) and reopens it, from the
dashboard or `culturelab study close|reopen`; participants who started meanwhile may finish. Every study
that exists is open, as before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 07:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("recruiting", sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("recruiting")
