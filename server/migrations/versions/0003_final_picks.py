"""Final picks: a team marks the submissions that count on hidden tests after the reveal.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


# A plain ADD / DROP COLUMN, not a batch operation: on SQLite, batch mode rebuilds the table
# (copy, DROP, rename), and submission is referenced by foreign keys, so the DROP fails on
# any database that holds submissions.
def upgrade() -> None:
    op.add_column(
        "submission",
        sa.Column("picked", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("submission", "picked")
