"""responses.hidden_ms: how long the page was hidden or out of focus during the trial

Measured by the participant's browser (visibilitychange, blur/focus), like jsPsych's interaction data, so
that analysis can exclude answers given after the participant left the tab. Empty for answers stored before
this column existed and for clients that do not measure it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 18:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("hidden_ms", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("hidden_ms")
