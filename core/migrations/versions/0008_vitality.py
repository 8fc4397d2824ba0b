"""community vitality: decline alert episodes per channel

Revision ID: 0008
Revises: 0007

- ``decline_episodes``: a run of weeks in which a channel's posts fell every week, with the notice sent
  to its owner (once per episode); unique per (channel, peak week), so concurrent workers make one.
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'decline_episodes',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('channel', sa.String(128), nullable=False),
        sa.Column('peak_week', sa.DateTime(timezone=True), nullable=False),
        sa.Column('detected_week', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_week', sa.DateTime(timezone=True), nullable=True),
        sa.Column('weekly_posts', sa.JSON(), nullable=False),
        sa.Column('owner', sa.String(128), nullable=True),
        sa.Column('target_type', sa.String(64), nullable=True),
        sa.Column('notice_state', sa.String(32), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint('channel', 'peak_week', name='uq_decline_channel_peak'),
    )
    op.create_index('ix_decline_episodes_channel', 'decline_episodes', ['channel'])


def downgrade() -> None:
    op.drop_index('ix_decline_episodes_channel', table_name='decline_episodes')
    op.drop_table('decline_episodes')
