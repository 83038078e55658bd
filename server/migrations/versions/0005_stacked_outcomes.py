"""Stacked outcomes: a record may hold several training seeds' outcomes (a reference row's
selection seed, whose score is the mean over the recipe's training seeds).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


# A plain ADD / DROP COLUMN, not a batch operation (see 0003): on SQLite, batch mode rebuilds
# the table, which fails on tables referenced by foreign keys. Existing rows hold one seed.
def upgrade() -> None:
    op.add_column(
        "outcome",
        sa.Column("seeds", sa.Integer(), nullable=False, server_default=sa.text("1")),
    )


def downgrade() -> None:
    op.drop_column("outcome", "seeds")
