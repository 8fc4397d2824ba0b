"""areas: a second, coarser level above themes (a product area, a topic)

Revision ID: 0011
Revises: 0010

- ``areas``: one row per area, its name and keywords; ``label_locked`` when a person named it, so the name
  survives re-clustering.
- ``themes.area_id``: the theme's area (null: none yet); ``themes.area_locked`` when a person moved the
  theme into that area, so later re-clusterings keep it there.
"""

from alembic import op
import sqlalchemy as sa

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'areas',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('label', sa.String(256), nullable=False),
        sa.Column('keywords', sa.JSON(), nullable=False),
        sa.Column('label_locked', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table('themes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('area_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('area_locked', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index('ix_themes_area_id', ['area_id'], unique=False)
        batch_op.create_foreign_key('fk_themes_area_id', 'areas', ['area_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('themes', schema=None) as batch_op:
        batch_op.drop_constraint('fk_themes_area_id', type_='foreignkey')
        batch_op.drop_index('ix_themes_area_id')
        batch_op.drop_column('area_locked')
        batch_op.drop_column('area_id')
    op.drop_table('areas')
