"""you said we did: published themes for the public page

Revision ID: 0010
Revises: 0009

- ``published_themes``: one row per published theme with the product manager's own texts (title, what
  people asked for, what was done), redacted when saved; unpublishing deletes the row. Nothing in it
  names an item, an author or an owner.
"""

from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'published_themes',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('theme_id', sa.Integer(), sa.ForeignKey('themes.id', ondelete='CASCADE'), nullable=False),
        sa.Column('entry_uuid', sa.String(36), nullable=False),
        sa.Column('title', sa.String(200), nullable=False),
        sa.Column('you_said', sa.Text(), nullable=False),
        sa.Column('we_did', sa.Text(), nullable=False),
        sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('theme_id', name='uq_published_theme_theme_id'),
        sa.UniqueConstraint('entry_uuid', name='uq_published_theme_entry_uuid'),
    )
    op.create_index('ix_published_themes_updated_at', 'published_themes', ['updated_at'])


def downgrade() -> None:
    op.drop_index('ix_published_themes_updated_at', table_name='published_themes')
    op.drop_table('published_themes')
