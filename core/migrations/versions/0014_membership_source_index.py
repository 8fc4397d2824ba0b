"""an index on who placed each membership

Revision ID: 0014
Revises: 0013

- ``ix_theme_memberships_source``: the people's placements (source "human") are read on every round of
  theme assignment (new near-copies follow them) and by every re-clustering; without the index each read
  scans every membership, a second or more at a million items (bench/million_bench.py).
"""

from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_theme_memberships_source', 'theme_memberships', ['source'])


def downgrade() -> None:
    op.drop_index('ix_theme_memberships_source', table_name='theme_memberships')
