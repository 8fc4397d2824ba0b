"""theme edits and incremental assignment: merged_into_id (a person's merge), radius (join distance)

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('themes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('merged_into_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('radius', sa.Float(), nullable=True))
        batch_op.create_index('ix_themes_merged_into_id', ['merged_into_id'], unique=False)
        batch_op.create_foreign_key('fk_themes_merged_into_id', 'themes', ['merged_into_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('themes', schema=None) as batch_op:
        batch_op.drop_constraint('fk_themes_merged_into_id', type_='foreignkey')
        batch_op.drop_index('ix_themes_merged_into_id')
        batch_op.drop_column('radius')
        batch_op.drop_column('merged_into_id')
