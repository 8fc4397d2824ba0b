"""champions: co-creation invitations and consent

Revision ID: 0009
Revises: 0008

- ``champion_invitations``: one invitation per (theme, author pseudonym) to co-create (a beta, an
  interview, a design review), where it was posted (channel, thread), its sending state, and the
  author's answer (accepted / declined) with who recorded it and when. The unique constraint is what
  keeps anyone from being invited twice for a theme; an erased author's row keeps no pseudonym, thread
  or answer (NULLs never collide in it).
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'champion_invitations',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('theme_id', sa.Integer(), sa.ForeignKey('themes.id', ondelete='CASCADE'), nullable=False),
        sa.Column('author_pseudonym', sa.String(64), nullable=True),
        sa.Column('kind', sa.String(32), nullable=False),
        sa.Column('channel', sa.String(128), nullable=True),
        sa.Column('thread_ref', sa.String(512), nullable=True),
        sa.Column('state', sa.String(32), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('reply_ref', sa.String(256), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('invited_by', sa.String(128), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('answer', sa.String(16), nullable=True),
        sa.Column('answered_by', sa.String(128), nullable=True),
        sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint('theme_id', 'author_pseudonym', name='uq_champion_invitation'),
    )
    op.create_index('ix_champion_invitations_author_pseudonym', 'champion_invitations', ['author_pseudonym'])


def downgrade() -> None:
    op.drop_index('ix_champion_invitations_author_pseudonym', table_name='champion_invitations')
    op.drop_table('champion_invitations')
