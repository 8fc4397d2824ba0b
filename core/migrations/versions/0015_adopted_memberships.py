"""memberships adopted from the waiting pool

Revision ID: 0015
Revises: 0014

- ``theme_memberships.adopted``: the item was adopted by its nearest theme from the waiting pool, outside
  the theme's radius (clustering/incremental.py). It is in that theme at once (issue 17's latency), and the
  most recent such memberships stay candidates for a new theme, which takes them over if one emerges.
- ``ix_theme_memberships_adopted_item``: every assignment pass reads the most recent adopted memberships.
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('theme_memberships') as batch:
        batch.add_column(sa.Column('adopted', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index('ix_theme_memberships_adopted_item', 'theme_memberships', ['adopted', 'item_id'])


def downgrade() -> None:
    op.drop_index('ix_theme_memberships_adopted_item', table_name='theme_memberships')
    with op.batch_alter_table('theme_memberships') as batch:
        batch.drop_column('adopted')
