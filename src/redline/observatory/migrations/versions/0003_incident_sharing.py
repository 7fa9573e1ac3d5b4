"""Incident sharing: a FIRST TLP 2.0 label and the organisations an AMBER incident is for.
Existing incidents become TLP:RED, which is who could read them before.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("tlp", sa.String(length=16), nullable=False,
                                   server_default="RED"))
        batch.add_column(sa.Column("share_with", sa.JSON(), nullable=False,
                                   server_default="[]"))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("share_with")
        batch.drop_column("tlp")
